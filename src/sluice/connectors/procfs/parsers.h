#pragma once

// Parsers of the /proc files the procfs source reads. Each takes a file's text and fills a
// struct the caller keeps (vectors are cleared, their capacity reused), so that parsing
// allocates nothing once the vectors have grown to the host's size. Names in the results are
// views into the text: valid while the text is. A file that does not have the documented shape
// — a truncated line, a missing field, a number beyond 64 bits — is refused with a message
// naming the line, never half-read.

#include <algorithm>
#include <array>
#include <cstdint>
#include <string_view>
#include <vector>

#include <fmt/format.h>

namespace sluice::procfs {

/// Why a parser or a collector failed: a short message in a fixed buffer (no allocation, so
/// a collector that fails every sample still costs nothing on the heap). Longer messages are
/// cut.
class Failure {
 public:
  bool failed() const { return failed_; }
  std::string_view message() const { return {text_.data(), size_}; }
  void Clear() {
    failed_ = false;
    size_ = 0;
  }
  /// Set the message (replacing any earlier one); return false, for `return why->Set(...)`.
  template <typename... Args>
  bool Set(fmt::format_string<Args...> f, Args&&... args) {
    auto r = fmt::format_to_n(text_.data(), text_.size(), f, std::forward<Args>(args)...);
    size_ = std::min(r.size, text_.size());
    failed_ = true;
    return false;
  }
  /// Put "`prefix`: " before the message (the file it is about); the end is cut when the
  /// whole no longer fits.
  void Prefix(std::string_view prefix) {
    const std::array<char, 240> old = text_;
    auto r = fmt::format_to_n(text_.data(), text_.size(), "{}: {}", prefix,
                              std::string_view(old.data(), size_));
    size_ = std::min(r.size, text_.size());
  }

 private:
  std::array<char, 240> text_{};
  size_t size_ = 0;
  bool failed_ = false;
};

/// Time a CPU spent in each mode, in clock ticks (USER_HZ), from a `cpu` line of /proc/stat.
/// Guest time is already counted in user and nice, so it is not kept apart.
struct CpuTicks {
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  uint64_t Total() const { return user + nice + system + idle + iowait + irq + softirq + steal; }
};

/// /proc/stat: the aggregate and per-CPU times and the system-wide counters. Lines other than
/// these are ignored; counters absent from the file stay 0 with their has_ flag false.
struct StatFile {
  CpuTicks total;
  std::vector<std::pair<int32_t, CpuTicks>> cpus;  ///< (cpu number, times), in file order.
  uint64_t context_switches = 0, interrupts = 0, forks = 0, boot_time = 0;
  uint64_t procs_running = 0, procs_blocked = 0;
  bool has_context_switches = false, has_interrupts = false, has_forks = false;
  bool has_boot_time = false, has_procs = false;
};
/// Parse /proc/stat. The `cpu` line is required, with at least user, nice, system and idle.
bool ParseStat(std::string_view text, StatFile* out, Failure* why);

/// One line of /proc/meminfo: "MemTotal:  24683792 kB" is {MemTotal, 24683792 * 1024, true}.
struct MemInfoField {
  std::string_view name;
  uint64_t value = 0;  ///< Bytes when in_bytes, else a count (HugePages_Total).
  bool in_bytes = false;
};
/// Parse /proc/meminfo; MemTotal is required.
bool ParseMemInfo(std::string_view text, std::vector<MemInfoField>* out, Failure* why);

/// One line of /proc/diskstats (kernel Documentation/admin-guide/iostats.rst): the first
/// eleven counters are required; discards (4.18) and flushes (5.5) are 0 when absent.
struct DiskLine {
  std::string_view name;
  uint64_t reads = 0, reads_merged = 0, sectors_read = 0, read_ms = 0;
  uint64_t writes = 0, writes_merged = 0, sectors_written = 0, write_ms = 0;
  uint64_t in_progress = 0, io_ms = 0, weighted_io_ms = 0;
  uint64_t discards = 0, sectors_discarded = 0, flushes = 0;
};
bool ParseDiskStats(std::string_view text, std::vector<DiskLine>* out, Failure* why);

/// One interface of /proc/net/dev (the receive and transmit columns the agent reports).
struct NetLine {
  std::string_view name;
  uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_drops = 0;
  uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_drops = 0;
};
/// Parse /proc/net/dev: two header lines, then "name: 8 receive and 8 transmit counters".
bool ParseNetDev(std::string_view text, std::vector<NetLine>* out, Failure* why);

/// One line of /proc/mounts (fstab format). Fields are raw: spaces, tabs, newlines and
/// backslashes in them are escaped as \040, \011, \012 and \134 (see DecodeMountField).
struct MountLine {
  std::string_view device, mount_point, fs_type;
  bool readonly = false;  ///< "ro" among the options.
};
bool ParseMounts(std::string_view text, std::vector<MountLine>* out, Failure* why);
/// Write `raw` with its octal escapes decoded to `out` (NUL-terminated); return its length
/// without the NUL, or -1 when it does not fit in `size` bytes.
int64_t DecodeMountField(std::string_view raw, char* out, size_t size);

/// /proc/loadavg: "0.52 0.58 0.59 2/812 12345".
struct LoadAvg {
  double load1 = 0, load5 = 0, load15 = 0;
  uint64_t runnable = 0, threads = 0;
};
bool ParseLoadAvg(std::string_view text, LoadAvg* out, Failure* why);

/// One line of a /proc/pressure file: "some avg10=1.00 avg60=0.50 avg300=0.10 total=12345".
struct PressureLine {
  bool present = false;
  double avg10 = 0, avg60 = 0, avg300 = 0;  ///< Percent of time stalled.
  uint64_t total_us = 0;                    ///< Stalled time in total, microseconds.
};
/// A /proc/pressure/{cpu,memory,io} file: the `some` line is required, `full` optional.
struct Pressure {
  PressureLine some, full;
};
bool ParsePressure(std::string_view text, Pressure* out, Failure* why);

/// What the agent takes from /proc/[pid]/stat (proc(5)).
struct PidStat {
  int32_t pid = 0;
  std::string_view comm;  ///< Between the first '(' and the last ')': may hold spaces, ')'.
  char state = '?';
  uint64_t utime = 0, stime = 0;  ///< Clock ticks.
  uint64_t threads = 0;
  uint64_t start_time = 0;  ///< Clock ticks after boot: with pid, identifies the process.
  uint64_t rss_pages = 0;
};
bool ParsePidStat(std::string_view text, PidStat* out, Failure* why);

/// What the agent takes from /proc/[pid]/status; kernel threads have no Vm* lines (0).
struct PidStatus {
  int64_t uid = -1;  ///< Real uid; -1 when the line is absent.
  uint64_t swap_bytes = 0;
};
bool ParsePidStatus(std::string_view text, PidStatus* out, Failure* why);

}  // namespace sluice::procfs
