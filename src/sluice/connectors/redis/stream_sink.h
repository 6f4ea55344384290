#pragma once

// The `redis_stream` sink: one XADD per row, pipelined.

#include <memory>
#include <string>

#include "sluice/core/column.h"
#include "sluice/engine/node.h"
#include "sluice/engine/options.h"

namespace sluice::redis {

/// Append row `row` of `column` to `out` as a stream field's text: integers in decimal, floats
/// in their shortest round-trip form, bools true/false, timestamps ISO-8601 with µs and Z
/// ("2026-01-02T03:04:05.000006Z"), strings, JSON and bytes as they are. The row must not be
/// NULL (NULL fields are left out of the entry).
void AppendFieldText(const Column& column, int64_t row, std::string* out);

OptionSchema StreamSinkOptionSpecs();
Result<std::unique_ptr<Sink>> MakeStreamSink(const NodeOptions& o);

}  // namespace sluice::redis
