#pragma once

#include <string>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/engine/registry.h"
#include "sluice/io/encoded.h"

namespace sluice {

/// Return the text of row `row` of `column` as used in object keys ("" for null): integers in
/// decimal, timestamps as compact UTC ("20240101T000000Z"), strings as they are.
std::string KeyText(const Column& column, int64_t row);

/// Register `encode`: serialize each batch to JSONL or CSV and compress it (gzip or zstd), one
/// object per batch. Stateless, so `parallelism: N` compresses N batches at once.
void RegisterEncodeNode(NodeRegistry* registry);

}  // namespace sluice
