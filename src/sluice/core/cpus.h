#pragma once

// How many CPUs this process may keep busy at once: the default number of workers a segment
// runs on (`settings.workers: 0`).

#include <functional>
#include <optional>
#include <string>

namespace sluice {

/// Return a file's text, or nullopt when it cannot be read.
using ReadTextFile = std::function<std::optional<std::string>(const std::string& path)>;

/// Read a file of the running system (what CgroupCpuQuota reads by default).
std::optional<std::string> ReadSystemFile(const std::string& path);

/// Return the CPU time the process's cgroups allow it, in CPUs (1.5 for 150 ms of every
/// 100 ms), or 0 when no quota applies: the smallest quota set on the process's cgroup or any
/// ancestor up to the hierarchy's mount, in cgroup v2 (`cpu.max`) and in v1's cpu controller
/// (`cpu.cfs_quota_us` over `cpu.cfs_period_us`). The cgroups and their mounts are found in
/// /proc/self/cgroup and /proc/self/mountinfo. What cannot be read or parsed sets no quota.
double CgroupCpuQuota(const ReadTextFile& read = ReadSystemFile);

/// Return the CPUs this process may use at once: those in its affinity mask (`taskset`,
/// cpusets), capped by its cgroup's CPU quota rounded up — a container given `--cpus=1.5` on a
/// 4-CPU host gets 2; at least 1.
int AvailableCpus();

/// Return the CPUs in this process's affinity mask (at least 1).
int AffinityCpus();

}  // namespace sluice
