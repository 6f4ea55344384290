#pragma once

// The exit codes every sluice command shares (README: 0 ok, 1 failed, 2 bad usage or
// configuration, 3 an alert fired under --fail-on-alert, 130 interrupted).

#include <cstdio>
#include <string>

namespace sluice {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAlert = 3;
inline constexpr int kExitInterrupted = 130;

/// Print "sluice: <message>" on stderr and return `code`.
inline int Fail(int code, const std::string& message) {
  std::fprintf(stderr, "sluice: %s\n", message.c_str());
  return code;
}

}  // namespace sluice
