#pragma once

#include <string_view>

#include <fmt/format.h>

namespace sluice {

enum class LogLevel : uint8_t { kDebug, kInfo, kWarn, kError, kOff };

/// Set the lowest level written to stderr (default kInfo). Thread-safe.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();
/// Write one line to stderr atomically with respect to other log lines.
void LogLine(LogLevel level, std::string_view message);

template <typename... Args>
void Log(LogLevel level, fmt::format_string<Args...> f, Args&&... args) {
  if (level < GetLogLevel()) return;
  LogLine(level, fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace sluice
