#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice {

inline constexpr int64_t kMicrosPerSecond = 1'000'000;
inline constexpr int64_t kMicrosPerDay = 86'400LL * kMicrosPerSecond;

/// Return days since 1970-01-01 for a proleptic Gregorian date.
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d);
/// Split days since 1970-01-01 into year, month (1-12) and day (1-31).
void CivilFromDays(int64_t days, int64_t* y, unsigned* m, unsigned* d);

/// Write `micros` as "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" into `out` (at least 32 bytes); return
/// the number of bytes written. Fractions are printed only when non-zero.
int FormatTimestamp(int64_t micros, char* out);
std::string FormatTimestamp(int64_t micros);

/// Parse "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS[.f]" or "...T...", with "Z" or "+HH:MM" offsets.
Result<int64_t> ParseTimestamp(std::string_view text);

/// Return the current wall-clock time in µs since the epoch.
int64_t NowMicros();
/// Return the date of `micros` as "YYYY-MM-DD" (UTC).
std::string FormatDate(int64_t micros);
/// Return today's date as "YYYY-MM-DD" (UTC).
inline std::string UtcDate() { return FormatDate(NowMicros()); }

}  // namespace sluice
