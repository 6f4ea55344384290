#pragma once

#include <cstdint>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice {

/// Parse a byte size: "512MiB", "10MB", "64k", "1048576" (plain numbers are bytes).
Result<int64_t> ParseByteSize(std::string_view text);
/// Parse a duration into microseconds: "90d", "2s", "500ms", "1h30m", "250us".
Result<int64_t> ParseDurationMicros(std::string_view text);
/// Return `n` with thousands separators ("1,234,567", "-1,000").
std::string WithCommas(int64_t n);

}  // namespace sluice
