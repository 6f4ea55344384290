#pragma once

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"
#include "sluice/io/encoded.h"

namespace sluice {

/// Return the options that say how batches become objects — format, compression, level and
/// key_column — declared once for the `encode` transform and the `object_store` sink.
const OptionSchema& ObjectEncodingOptions();

/// Return the encoding the ObjectEncodingOptions of a node give (absent options take their
/// defaults). kConfigError names the offending option.
Result<io::ObjectEncoding> ObjectEncodingFromNode(const NodeOptions& options);

/// Register `encode`: serialize each batch to JSONL or CSV and compress it (gzip or zstd), one
/// object per batch, through io::ObjectEncoder (as the `object_store` sink does). Every column
/// is written, whatever its name; the output batch keeps the input's tags. Stateless, so
/// `parallelism: N` compresses N batches at once.
void RegisterEncodeNode(NodeRegistry* registry);

}  // namespace sluice
