#include "sluice/core/cpus.h"

#include <sched.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>
#include <string_view>
#include <vector>

namespace sluice {

namespace {

// A mounted cgroup hierarchy: v2, or v1 with the cpu controller.
struct CgroupMount {
  std::string root;   // the cgroup the mount shows at its mount point ("/" unless namespaced)
  std::string point;  // where it is mounted
  bool v2 = false;
};

std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t end = std::min(s.find(sep, start), s.size());
    out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

bool HasElement(std::string_view list, std::string_view element) {
  for (std::string_view e : Split(list, ',')) {
    if (e == element) return true;
  }
  return false;
}

// mountinfo writes a space, tab, newline or backslash in a path as \ooo (octal).
std::string Unescape(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      const std::string_view digits = s.substr(i + 1, 3);
      if (std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out += static_cast<char>(((digits[0] - '0') << 6) | ((digits[1] - '0') << 3) |
                                 (digits[2] - '0'));
        i += 3;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

// Lines: "36 35 98:0 /root /mount/point rw,noatime shared:1 - cgroup2 cgroup2 rw".
std::vector<CgroupMount> ParseMountinfo(std::string_view text) {
  std::vector<CgroupMount> mounts;
  for (std::string_view line : Split(text, '\n')) {
    std::vector<std::string_view> f = Split(line, ' ');
    auto dash = std::find(f.begin(), f.end(), std::string_view("-"));
    if (dash == f.end() || dash - f.begin() < 6 || f.end() - dash < 2) continue;
    const std::string_view fstype = *(dash + 1);
    const std::string_view super = f.end() - dash >= 4 ? *(dash + 3) : std::string_view();
    if (fstype == "cgroup2") {
      mounts.push_back({Unescape(f[3]), Unescape(f[4]), true});
    } else if (fstype == "cgroup" && HasElement(super, "cpu")) {
      mounts.push_back({Unescape(f[3]), Unescape(f[4]), false});
    }
  }
  return mounts;
}

// Lines: "0::/path" (v2), "4:cpu,cpuacct:/path" (v1). The path may itself hold ':'.
void ParseProcCgroup(std::string_view text, std::optional<std::string>* v2,
                     std::optional<std::string>* v1_cpu) {
  for (std::string_view line : Split(text, '\n')) {
    const size_t a = line.find(':');
    if (a == std::string_view::npos) continue;
    const size_t b = line.find(':', a + 1);
    if (b == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, a);
    const std::string_view controllers = line.substr(a + 1, b - a - 1);
    const std::string path(line.substr(b + 1));
    if (path.empty() || path[0] != '/') continue;
    if (id == "0" && controllers.empty()) {
      *v2 = path;
    } else if (HasElement(controllers, "cpu")) {
      *v1_cpu = path;
    }
  }
}

std::optional<int64_t> ParsePositive(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v <= 0) return std::nullopt;
  return v;
}

// v2 cpu.max: "max 100000" (no quota) or "150000 100000".
double QuotaV2(const std::string& cpu_max) {
  const std::string_view line = std::string_view(cpu_max).substr(0, cpu_max.find('\n'));
  std::vector<std::string_view> f = Split(line, ' ');
  if (f.size() != 2) return 0;
  const auto quota = ParsePositive(f[0]);
  const auto period = ParsePositive(f[1]);
  if (!quota || !period) return 0;
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

// v1: cpu.cfs_quota_us "-1" (no quota) or "150000"; cpu.cfs_period_us "100000".
double QuotaV1(const std::string& quota_text, const std::string& period_text) {
  const auto quota = ParsePositive(quota_text);
  const auto period = ParsePositive(period_text);
  if (!quota || !period) return 0;
  return static_cast<double>(*quota) / static_cast<double>(*period);
}

// The smallest quota on `cgroup` or an ancestor within `mount`, or 0.
double QuotaUnder(const CgroupMount& mount, const std::string& cgroup, const ReadTextFile& read) {
  std::string rel;
  if (mount.root == "/") {
    rel = cgroup;
  } else if (cgroup.compare(0, mount.root.size(), mount.root) == 0 &&
             (cgroup.size() == mount.root.size() || cgroup[mount.root.size()] == '/')) {
    rel = cgroup.substr(mount.root.size());
  } else {
    return 0;  // the process's cgroup is not visible under this mount
  }
  std::string point = mount.point;
  while (point.size() > 1 && point.back() == '/') point.pop_back();
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  double best = 0;
  // From the process's cgroup up to the mount point, one directory at a time.
  for (int depth = 0; depth < 256; ++depth) {
    const std::string dir = point == "/" ? (rel.empty() ? "/" : rel) : point + rel;
    double q = 0;
    if (mount.v2) {
      if (auto text = read(dir + "/cpu.max")) q = QuotaV2(*text);
    } else {
      auto quota = read(dir + "/cpu.cfs_quota_us");
      auto period = read(dir + "/cpu.cfs_period_us");
      if (quota && period) q = QuotaV1(*quota, *period);
    }
    if (q > 0) best = best > 0 ? std::min(best, q) : q;
    const size_t slash = rel.rfind('/');
    if (rel.empty() || slash == std::string::npos) break;
    rel.resize(slash);
  }
  return best;
}

}  // namespace

std::optional<std::string> ReadSystemFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

double CgroupCpuQuota(const ReadTextFile& read) {
  const auto mountinfo = read("/proc/self/mountinfo");
  const auto cgroup = read("/proc/self/cgroup");
  if (!mountinfo || !cgroup) return 0;
  std::optional<std::string> v2, v1_cpu;
  ParseProcCgroup(*cgroup, &v2, &v1_cpu);
  double best = 0;
  for (const CgroupMount& m : ParseMountinfo(*mountinfo)) {
    const std::optional<std::string>& path = m.v2 ? v2 : v1_cpu;
    if (!path) continue;
    const double q = QuotaUnder(m, *path, read);
    if (q > 0) best = best > 0 ? std::min(best, q) : q;
  }
  return best;
}

int AffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  return std::max(1, CPU_COUNT(&set));
}

int AvailableCpus() {
  const int cpus = AffinityCpus();
  const double quota = CgroupCpuQuota();
  if (quota <= 0) return cpus;
  // A quota of 1.2 CPUs still lets a second thread run a fifth of the time: round up.
  const double capped = std::min(static_cast<double>(cpus), std::ceil(quota));
  return std::max(1, static_cast<int>(capped));
}

}  // namespace sluice
