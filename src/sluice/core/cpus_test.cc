#include "sluice/core/cpus.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>

namespace sluice {
namespace {

// A system's files, as CgroupCpuQuota reads them.
class FakeFiles {
 public:
  FakeFiles& Set(const std::string& path, std::string text) {
    files_[path] = std::move(text);
    return *this;
  }
  ReadTextFile Reader() const {
    return [this](const std::string& path) -> std::optional<std::string> {
      auto it = files_.find(path);
      if (it == files_.end()) return std::nullopt;
      return it->second;
    };
  }

 private:
  std::map<std::string, std::string> files_;
};

// Debian 12 with systemd: cgroup v2 only, mounted at /sys/fs/cgroup.
constexpr char kV2Mountinfo[] =
    "22 28 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "25 28 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro\n";

TEST(CgroupCpuQuota, V2TakesTheSmallestQuotaOnTheCgroupOrAnAncestor) {
  FakeFiles files;
  files.Set("/proc/self/mountinfo", kV2Mountinfo)
      .Set("/proc/self/cgroup", "0::/system.slice/sluice.service\n")
      .Set("/sys/fs/cgroup/cpu.max", "max 100000\n")  // the root has no quota
      .Set("/sys/fs/cgroup/system.slice/cpu.max", "250000 100000\n")
      .Set("/sys/fs/cgroup/system.slice/sluice.service/cpu.max", "max 100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 2.5);
  // A smaller quota on the service itself wins.
  files.Set("/sys/fs/cgroup/system.slice/sluice.service/cpu.max", "150000 100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 1.5);
}

TEST(CgroupCpuQuota, NoQuotaAnywhereIsZero) {
  FakeFiles files;
  files.Set("/proc/self/mountinfo", kV2Mountinfo)
      .Set("/proc/self/cgroup", "0::/user.slice/user-0.slice/session-1.scope\n")
      .Set("/sys/fs/cgroup/user.slice/cpu.max", "max 100000\n");
  EXPECT_EQ(CgroupCpuQuota(files.Reader()), 0);
  // Nothing readable at all (no /proc): no quota, not an error.
  EXPECT_EQ(CgroupCpuQuota(FakeFiles().Reader()), 0);
}

TEST(CgroupCpuQuota, V1CpuControllerInADockerStyleNamespacedMount) {
  // Without a cgroup namespace, /proc/self/cgroup names the container's cgroup and the mount's
  // root is that same cgroup: its files are at the mount point itself.
  FakeFiles files;
  files
      .Set("/proc/self/mountinfo",
           "30 25 0:26 /docker/abc123 /sys/fs/cgroup/cpu,cpuacct ro,nosuid,nodev,noexec,relatime "
           "master:11 - cgroup cgroup rw,cpu,cpuacct\n"
           "31 25 0:27 /docker/abc123 /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory\n")
      .Set("/proc/self/cgroup",
           "12:memory:/docker/abc123\n4:cpu,cpuacct:/docker/abc123\n0::/docker/abc123\n")
      .Set("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "50000\n")
      .Set("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 0.5);
  // -1 is v1's "no quota".
  files.Set("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  EXPECT_EQ(CgroupCpuQuota(files.Reader()), 0);
}

TEST(CgroupCpuQuota, HybridHierarchiesTakeTheSmallerOfV1AndV2) {
  // This machine's layout: v1 controllers, and a v2 hierarchy with none at /unified.
  FakeFiles files;
  files
      .Set("/proc/self/mountinfo",
           "40 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
           "41 30 0:36 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
           "42 30 0:37 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n")
      .Set("/proc/self/cgroup", "2:cpuacct:/\n1:cpu:/batch/job7\n0::/batch/job7\n")
      .Set("/sys/fs/cgroup/cpu/batch/cpu.cfs_quota_us", "300000")
      .Set("/sys/fs/cgroup/cpu/batch/cpu.cfs_period_us", "100000")
      // cpuacct is not the cpu controller: its files are never read.
      .Set("/sys/fs/cgroup/cpuacct/cpu.cfs_quota_us", "10000")
      .Set("/sys/fs/cgroup/cpuacct/cpu.cfs_period_us", "100000");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 3.0);
  files.Set("/sys/fs/cgroup/unified/batch/job7/cpu.max", "120000 100000");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 1.2);
}

TEST(CgroupCpuQuota, MountPointsWithEscapedCharacters) {
  FakeFiles files;
  files
      .Set("/proc/self/mountinfo",
           "25 28 0:23 / /run/my\\040cgroups rw - cgroup2 none rw\n"
           "26 28 0:24 / /weird\\134dir rw - cgroup cgroup rw,cpuset,cpu\n")
      .Set("/proc/self/cgroup", "0::/a\n3:cpuset,cpu:/b\n")
      .Set("/run/my cgroups/a/cpu.max", "400000 100000")
      .Set("/weird\\dir/b/cpu.cfs_quota_us", "350000")
      .Set("/weird\\dir/b/cpu.cfs_period_us", "100000");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 3.5);
}

TEST(CgroupCpuQuota, MalformedFilesSetNoQuota) {
  for (const char* cpu_max :
       {"", "max", "100000", "abc 100000", "100000 0", "-5 100000", "100000 100000 7", "1e5 100000",
        "100000 x", " 100000 100000", "99999999999999999999999 100000"}) {
    FakeFiles files;
    files.Set("/proc/self/mountinfo", kV2Mountinfo)
        .Set("/proc/self/cgroup", "0::/\n")
        .Set("/sys/fs/cgroup/cpu.max", cpu_max);
    EXPECT_EQ(CgroupCpuQuota(files.Reader()), 0) << "'" << cpu_max << "'";
  }
  // Lines that are not mountinfo or /proc/self/cgroup lines are skipped.
  FakeFiles files;
  files
      .Set("/proc/self/mountinfo",
           "garbage\n- cgroup2\n1 2 3 4 5 - cgroup2\n25 28 0:23 / /sys/fs/cgroup rw - cgroup2 x "
           "rw\n")
      .Set("/proc/self/cgroup", "nonsense\n0::relative\n0::/ok\n")
      .Set("/sys/fs/cgroup/ok/cpu.max", "200000 100000");
  EXPECT_DOUBLE_EQ(CgroupCpuQuota(files.Reader()), 2.0);
}

TEST(CgroupCpuQuota, ACgroupOutsideTheMountIsNotRead) {
  // The mount shows /docker/other; the process is in /docker/abc: nothing of it is visible.
  FakeFiles files;
  files
      .Set("/proc/self/mountinfo",
           "30 25 0:26 /docker/other /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n")
      .Set("/proc/self/cgroup", "0::/docker/abc\n")
      .Set("/sys/fs/cgroup/cpu.max", "100000 100000");
  EXPECT_EQ(CgroupCpuQuota(files.Reader()), 0);
  // A prefix that is not a whole directory name is not an ancestor either.
  files.Set("/proc/self/cgroup", "0::/docker/otherwise\n");
  EXPECT_EQ(CgroupCpuQuota(files.Reader()), 0);
}

TEST(AvailableCpus, IsAtLeastOneAndAtMostTheAffinityMask) {
  const int cpus = AvailableCpus();
  EXPECT_GE(cpus, 1);
  EXPECT_LE(cpus, AffinityCpus());
  const double quota = CgroupCpuQuota();
  if (quota > 0 && quota < AffinityCpus()) {
    EXPECT_EQ(cpus, std::max(1, static_cast<int>(std::ceil(quota))));
  } else {
    EXPECT_EQ(cpus, AffinityCpus());
  }
}

}  // namespace
}  // namespace sluice
