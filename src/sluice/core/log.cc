#include "sluice/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

namespace sluice {
namespace {
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::mutex g_mu;
}  // namespace

void SetLogLevel(LogLevel level) { g_level.store(level); }
LogLevel GetLogLevel() { return g_level.load(std::memory_order_relaxed); }

void LogLine(LogLevel level, std::string_view message) {
  if (level < GetLogLevel()) return;
  static const char* kNames[] = {"debug", "info", "warn", "error", ""};
  std::string line = fmt::format("[{}] {}\n", kNames[static_cast<int>(level)], message);
  std::lock_guard lock(g_mu);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace sluice
