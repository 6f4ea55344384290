// Fuzz the cgroup CPU quota reader (core/cpus.h): the input is /proc/self/mountinfo, then
// /proc/self/cgroup, then the text every cgroup file holds, separated by NUL bytes. Any input
// gives a quota that is 0 or a positive finite number of CPUs; no crash, leak or UB.

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/cpus.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> parts;
  size_t start = 0;
  while (parts.size() < 2) {
    const size_t end = input.find('\0', start);
    if (end == std::string_view::npos) break;
    parts.emplace_back(input.substr(start, end - start));
    start = end + 1;
  }
  parts.emplace_back(input.substr(std::min(start, input.size())));
  while (parts.size() < 3) parts.emplace_back();
  int reads = 0;
  const double quota = sluice::CgroupCpuQuota([&](const std::string& path) {
    if (++reads > 100000) __builtin_trap();  // a walk that never ends
    if (path == "/proc/self/mountinfo") return std::optional<std::string>(parts[0]);
    if (path == "/proc/self/cgroup") return std::optional<std::string>(parts[1]);
    return std::optional<std::string>(parts[2]);
  });
  if (!(quota == 0 || (quota > 0 && std::isfinite(quota)))) __builtin_trap();
  return 0;
}
