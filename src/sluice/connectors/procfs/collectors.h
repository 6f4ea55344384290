#pragma once

// The collectors of the procfs source: each reads one part of the host (CPU, memory, disks,
// ...) and turns it into rows. A collector keeps its own buffers and its own previous values,
// so collectors share nothing and may run on different threads at once, and one failing
// leaves the others untouched. docs/AGENT.md lists the rows each one makes.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/connectors/procfs/host_env.h"
#include "sluice/connectors/procfs/parsers.h"
#include "sluice/connectors/procfs/sample_rows.h"
#include "sluice/core/result.h"

namespace sluice::procfs {

/// What the collectors are told once, when they are made.
struct CollectorConfig {
  std::string root = "/proc";  ///< The /proc tree to read (a recorded one in tests).
  HostEnv* env = nullptr;      ///< Where files are read from; never null once made.
  int64_t clock_ticks = 100;   ///< USER_HZ: the unit of CPU times in /proc.
  int64_t page_size = 4096;    ///< The unit of a process's resident set in /proc/[pid]/stat.
  int top_processes = 5;       ///< How many processes to report by CPU and by memory.
  /// Disks whose names start with one of these are skipped (loop devices, RAM disks).
  std::vector<std::string> disk_exclude = {"loop", "ram", "zram", "fd"};
  /// Filesystem types not reported (pseudo filesystems); node_exporter's default list.
  std::vector<std::string> fs_types_exclude = {
      "autofs",     "binfmt_misc", "bpf",       "cgroup",   "cgroup2",   "configfs",
      "debugfs",    "devpts",      "devtmpfs",  "fusectl",  "hugetlbfs", "iso9660",
      "mqueue",     "nsfs",        "overlay",   "proc",     "procfs",    "pstore",
      "rpc_pipefs", "securityfs",  "selinuxfs", "squashfs", "sysfs",     "tracefs"};
  /// Mount points not reported: each one and everything below it.
  std::vector<std::string> mount_points_exclude = {"/dev",
                                                   "/proc",
                                                   "/sys",
                                                   "/run/credentials",
                                                   "/var/lib/docker",
                                                   "/var/lib/containers/storage"};
};

/// What a collector's call came to.
enum class Outcome : uint8_t {
  kOk,      ///< Its rows are the sample's.
  kFailed,  ///< It could not read or parse what it needs; its rows are dropped this time.
  kAbsent,  ///< What it reads does not exist on this host (no /proc/pressure): no rows.
};

/// One kind of host metrics. Made once per source; Collect is called once per sample, from one
/// thread at a time (not always the same one).
class Collector {
 public:
  virtual ~Collector() = default;
  /// Return the collector's name ("cpu"), as in the `collectors` option.
  virtual std::string_view name() const = 0;
  /// Append this sample's rows to `out`, taken at monotonic time `now_us`. Rates are computed
  /// against the last call that returned kOk; the first such call, and any after a counter
  /// went backwards, has no rate rows. On kFailed `why` says what went wrong (naming the
  /// file) and the previous values stay those of the last good call.
  virtual Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) = 0;
};

/// Return the names of every collector, in the order their rows appear in a sample.
const std::vector<std::string_view>& CollectorNames();

/// Make the collector called `name`; kInvalidArgument for an unknown name.
Result<std::unique_ptr<Collector>> MakeCollector(std::string_view name,
                                                 const CollectorConfig& config);

std::unique_ptr<Collector> MakeCpuCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakeMemoryCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakeLoadCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakePressureCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakeDiskCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakeNetworkCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakeFilesystemCollector(const CollectorConfig& config);
std::unique_ptr<Collector> MakeProcessCollector(const CollectorConfig& config);

}  // namespace sluice::procfs
