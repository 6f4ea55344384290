// The processes collector: every /proc/[pid]/stat for the counts by state and the CPU time
// and memory of each process, then /proc/[pid]/status of the few reported by name (the top
// `top_processes` by CPU and by resident memory). Each /proc/[pid]/stat, and the status of
// each process reported by name, stays open from one sample to the next (up to a quarter of the
// descriptors the process may have): an open and a close per file per sample were two thirds
// of the collector's system calls.

#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <utility>

#include "sluice/connectors/procfs/collectors.h"
#include "sluice/connectors/procfs/collectors_internal.h"

namespace sluice::procfs {

namespace {

constexpr std::array<std::string_view, 9> kStates = {"running", "sleeping", "disk_sleep",
                                                     "zombie",  "stopped",  "tracing_stop",
                                                     "idle",    "dead",     "other"};

size_t StateIndex(char state) {
  switch (state) {
    case 'R':
      return 0;
    case 'S':
      return 1;
    case 'D':
      return 2;
    case 'Z':
      return 3;
    case 'T':
      return 4;
    case 't':
      return 5;
    case 'I':
      return 6;
    case 'X':
    case 'x':
      return 7;
    default:
      return 8;
  }
}

class ProcessCollector final : public Collector {
 public:
  explicit ProcessCollector(const CollectorConfig& c)
      : env_(c.env),
        root_(c.root),
        hz_(static_cast<double>(c.clock_ticks)),
        page_size_(static_cast<uint64_t>(c.page_size)),
        top_(static_cast<size_t>(std::max(c.top_processes, 0))) {
    struct rlimit files;
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
      max_kept_ = files.rlim_cur == RLIM_INFINITY
                      ? kMaxKept
                      : std::min<size_t>(static_cast<size_t>(files.rlim_cur / 4), kMaxKept);
    }
  }
  ~ProcessCollector() override {
    for (const KeptPidFile& k : kept_) env_->Release(k.handle);
    for (const KeptPidFile& k : status_) env_->Release(k.handle);
  }

  std::string_view name() const override { return "processes"; }

  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (const int err = env_->ListPids(root_.c_str(), &pids_); err != 0) {
      char text[128];
      why->Set("{}: {}", root_, ErrnoText(err, text, sizeof(text)));
      return Outcome::kFailed;
    }
    // In pid order, to walk the kept files alongside (/proc lists them so already).
    if (!std::is_sorted(pids_.begin(), pids_.end())) std::sort(pids_.begin(), pids_.end());
    cur_.clear();
    next_kept_.clear();
    size_t k = 0;  // kept_[k] is the first kept file of a pid not yet seen
    std::array<uint64_t, kStates.size()> by_state{};
    uint64_t threads = 0, unreadable = 0;
    const auto release_below = [&](int32_t pid) {  // the processes that are gone
      for (; k < kept_.size() && kept_[k].pid < pid; ++k) env_->Release(kept_[k].handle);
    };
    for (const int32_t pid : pids_) {
      release_below(pid);
      int handle = -1;
      if (k < kept_.size() && kept_[k].pid == pid) handle = kept_[k++].handle;
      const int err = ReadPidFile(pid, "stat", &handle, next_kept_.size() < max_kept_);
      if (handle >= 0) next_kept_.push_back({pid, handle});
      // A process that ended since the directory was listed is no longer there: not an error.
      if (err == ENOENT || err == ESRCH || (err == 0 && buf_.size() == 0)) continue;
      if (err != 0) {
        ++unreadable;
        continue;
      }
      PidStat st;
      if (!ParsePidStat(buf_.view(), &st, why)) {
        why->Prefix(path_);
        release_below(INT32_MAX);
        std::swap(kept_, next_kept_);
        return Outcome::kFailed;
      }
      ++by_state[StateIndex(st.state)];
      threads += st.threads;
      Proc& p = cur_.emplace_back();
      p.pid = st.pid;
      p.start_time = st.start_time;
      p.ticks = st.utime + st.stime;
      p.rss_bytes = st.rss_pages * page_size_;
      p.threads = st.threads;
      p.comm_size = static_cast<uint8_t>(std::min(st.comm.size(), p.comm.size()));
      std::memcpy(p.comm.data(), st.comm.data(), p.comm_size);
    }
    release_below(INT32_MAX);
    std::swap(kept_, next_kept_);
    for (size_t s = 0; s < kStates.size(); ++s) {
      out->Add("processes", static_cast<double>(by_state[s]), {{"state", kStates[s]}});
    }
    out->Add("threads", static_cast<double>(threads));
    out->Add("processes_unreadable", static_cast<double>(unreadable));
    std::sort(cur_.begin(), cur_.end(), [](const Proc& a, const Proc& b) { return a.pid < b.pid; });
    if (has_prev_) SetCpuRates(static_cast<double>(now_us - prev_us_) / 1e6);
    if (!AddTop(out, why)) return Outcome::kFailed;
    std::swap(prev_, cur_);
    prev_us_ = now_us;
    has_prev_ = true;
    return Outcome::kOk;
  }

 private:
  struct Proc {
    int32_t pid = 0;
    uint64_t start_time = 0;
    uint64_t ticks = 0;
    uint64_t rss_bytes = 0;
    uint64_t threads = 0;
    double cpu_per_second = -1;  // -1: not known (new since the last sample)
    std::array<char, 64> comm{};
    uint8_t comm_size = 0;
    std::string_view comm_view() const { return {comm.data(), comm_size}; }
  };

  // Read /proc/<pid>/<file> into buf_, its path left in path_, through `*handle` when it is
  // kept (>= 0); when it is not and `may_keep`, keep it open in `*handle` if the env can. -1
  // when it is not kept. A kept file that fails to read belonged to a process that ended,
  // whose pid may be another process's now: read by path.
  int ReadPidFile(int32_t pid, std::string_view file, int* handle, bool may_keep) {
    if (*handle >= 0) {
      if (env_->ReadKept(*handle, &buf_, true) == 0 && buf_.size() > 0) {
        return FormatPath(pid, file);  // for the messages about its content
      }
      env_->Release(*handle);
      *handle = -1;
    }
    if (const int err = FormatPath(pid, file); err != 0) return err;
    if (may_keep && !by_path_) {
      int err = env_->Keep(path_, handle);
      if (err == 0) {
        err = env_->ReadKept(*handle, &buf_, true);
        if (err != 0) {
          env_->Release(*handle);
          *handle = -1;
        }
        return err;
      }
      if (err != ENOTSUP) return err;  // the open failed as a read by path would have
      by_path_ = true;                 // a recorded tree, or an env that reads by path
    }
    return env_->ReadRecord(path_, &buf_);
  }

  // Put /proc/<pid>/<file> into path_ (no allocation).
  int FormatPath(int32_t pid, std::string_view file) {
    auto r = fmt::format_to_n(path_, sizeof(path_) - 1, "{}/{}/{}", root_, pid, file);
    *r.out = '\0';
    return r.size >= sizeof(path_) ? ENAMETOOLONG : 0;
  }

  // Take the kept status file of `pid` from the last sample's, or -1.
  int TakeStatus(int32_t pid) {
    auto it = std::lower_bound(status_.begin(), status_.end(), pid,
                               [](const KeptPidFile& k, int32_t p) { return k.pid < p; });
    if (it == status_.end() || it->pid != pid) return -1;
    return std::exchange(it->handle, -1);
  }
  // Close the status files of the processes no longer reported; keep this sample's.
  void SettleStatus() {
    for (const KeptPidFile& k : status_) {
      if (k.handle >= 0) env_->Release(k.handle);
    }
    std::sort(next_status_.begin(), next_status_.end(),
              [](const KeptPidFile& a, const KeptPidFile& b) { return a.pid < b.pid; });
    std::swap(status_, next_status_);
    next_status_.clear();
  }

  // The same pid with the same start time is the same process: CPU seconds per second since
  // the last sample. A pid reused by a new process gets no rate this time.
  void SetCpuRates(double seconds) {
    if (seconds <= 0) return;
    for (Proc& p : cur_) {
      auto it = std::lower_bound(prev_.begin(), prev_.end(), p.pid,
                                 [](const Proc& a, int32_t pid) { return a.pid < pid; });
      if (it == prev_.end() || it->pid != p.pid || it->start_time != p.start_time) continue;
      if (p.ticks < it->ticks) continue;
      p.cpu_per_second = static_cast<double>(p.ticks - it->ticks) / hz_ / seconds;
    }
  }

  // Pick the top processes by CPU (when rates are known) then by resident memory, ties to the
  // lower pid, and add their rows, the CPU ones first.
  bool AddTop(SampleRows* out, Failure* why) {
    chosen_.clear();
    if (top_ == 0) return true;
    const auto pick = [&](auto better, bool (*eligible)(const Proc&)) {
      order_.clear();
      for (uint32_t i = 0; i < cur_.size(); ++i) {
        if (eligible(cur_[i])) order_.push_back(i);
      }
      const size_t n = std::min(top_, order_.size());
      std::partial_sort(order_.begin(), order_.begin() + static_cast<ptrdiff_t>(n), order_.end(),
                        [&](uint32_t a, uint32_t b) {
                          if (better(cur_[a], cur_[b])) return true;
                          if (better(cur_[b], cur_[a])) return false;
                          return cur_[a].pid < cur_[b].pid;
                        });
      for (size_t k = 0; k < n; ++k) {
        if (std::find(chosen_.begin(), chosen_.end(), order_[k]) == chosen_.end()) {
          chosen_.push_back(order_[k]);
        }
      }
    };
    pick([](const Proc& a, const Proc& b) { return a.cpu_per_second > b.cpu_per_second; },
         [](const Proc& p) { return p.cpu_per_second >= 0; });
    pick([](const Proc& a, const Proc& b) { return a.rss_bytes > b.rss_bytes; },
         [](const Proc&) { return true; });
    next_status_.clear();
    for (const uint32_t i : chosen_) {
      const Proc& p = cur_[i];
      PidStatus status;
      int handle = TakeStatus(p.pid);
      const int err =
          ReadPidFile(p.pid, "status", &handle, kept_.size() + next_status_.size() < max_kept_);
      if (handle >= 0) next_status_.push_back({p.pid, handle});
      if (err == ENOENT || err == ESRCH || (err == 0 && buf_.size() == 0)) continue;  // ended
      const bool has_status = err == 0;
      if (has_status && !ParsePidStatus(buf_.view(), &status, why)) {
        why->Prefix(path_);
        SettleStatus();
        return false;
      }
      const IntText pid(p.pid), uid(status.uid);
      const std::initializer_list<Label> labels = {
          {"comm", p.comm_view()},
          {"pid", pid.view()},
          {"uid", status.uid >= 0 ? uid.view() : std::string_view()}};
      if (p.cpu_per_second >= 0) {
        out->Add("process_cpu_seconds_per_second", p.cpu_per_second, labels);
      }
      out->Add("process_cpu_seconds_total", static_cast<double>(p.ticks) / hz_, labels);
      out->Add("process_resident_bytes", static_cast<double>(p.rss_bytes), labels);
      out->Add("process_threads", static_cast<double>(p.threads), labels);
      if (has_status)
        out->Add("process_swap_bytes", static_cast<double>(status.swap_bytes), labels);
    }
    SettleStatus();
    return true;
  }

  // A process's /proc/[pid]/stat or status kept open (HostEnv::Keep).
  struct KeptPidFile {
    int32_t pid;
    int handle;
  };
  static constexpr size_t kMaxKept = 16384;

  HostEnv* env_;
  std::string root_;
  double hz_;
  uint64_t page_size_;
  size_t top_;
  char path_[PATH_MAX] = {};
  FileBuffer buf_;
  std::vector<int32_t> pids_;
  std::vector<Proc> cur_, prev_;  // sorted by pid
  std::vector<uint32_t> order_, chosen_;
  std::vector<KeptPidFile> kept_, next_kept_;      // stat, by pid; next_ is built during a sample
  std::vector<KeptPidFile> status_, next_status_;  // status of those reported by name, by pid
  size_t max_kept_ = 256;  // a quarter of RLIMIT_NOFILE, at most kMaxKept: stat and status
  bool by_path_ = false;   // the env keeps no files: every read by path
  int64_t prev_us_ = 0;
  bool has_prev_ = false;
};

}  // namespace

std::unique_ptr<Collector> MakeProcessCollector(const CollectorConfig& config) {
  return std::make_unique<ProcessCollector>(config);
}

}  // namespace sluice::procfs
