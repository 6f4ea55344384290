// The collectors of system-wide figures: cpu (/proc/stat), memory (/proc/meminfo), load
// (/proc/loadavg) and pressure (/proc/pressure/*).

#include <array>

#include "sluice/connectors/procfs/collectors.h"
#include "sluice/connectors/procfs/collectors_internal.h"

namespace sluice::procfs {

using internal::KeptFile;
using internal::RateOf;
using internal::ReadOrFail;

namespace {

constexpr std::array<std::string_view, 8> kModes = {"user",   "nice", "system",  "idle",
                                                    "iowait", "irq",  "softirq", "steal"};

std::array<uint64_t, 8> ModeTicks(const CpuTicks& t) {
  return {t.user, t.nice, t.system, t.idle, t.iowait, t.irq, t.softirq, t.steal};
}

class CpuCollector final : public Collector {
 public:
  explicit CpuCollector(const CollectorConfig& c)
      : env_(c.env), path_(c.root + "/stat"), hz_(static_cast<double>(c.clock_ticks)) {}

  std::string_view name() const override { return "cpu"; }

  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (ReadOrFail(env_, path_, &file_, &buf_, why) != 0) return Outcome::kFailed;
    if (!ParseStat(buf_.view(), &cur_, why)) {
      why->Prefix(path_);
      return Outcome::kFailed;
    }
    const auto total = ModeTicks(cur_.total);
    for (size_t m = 0; m < kModes.size(); ++m) {
      out->Add("cpu_seconds_total", static_cast<double>(total[m]) / hz_, {{"mode", kModes[m]}});
    }
    for (const auto& [cpu, ticks] : cur_.cpus) {
      const IntText n(cpu);
      const auto t = ModeTicks(ticks);
      for (size_t m = 0; m < kModes.size(); ++m) {
        out->Add("cpu_core_seconds_total", static_cast<double>(t[m]) / hz_,
                 {{"cpu", n.view()}, {"mode", kModes[m]}});
      }
    }
    out->Add("cpus", static_cast<double>(cur_.cpus.size()));
    if (cur_.has_context_switches) {
      out->Add("context_switches_total", static_cast<double>(cur_.context_switches));
    }
    if (cur_.has_interrupts) out->Add("interrupts_total", static_cast<double>(cur_.interrupts));
    if (cur_.has_forks) out->Add("forks_total", static_cast<double>(cur_.forks));
    if (cur_.has_boot_time) out->Add("boot_time_seconds", static_cast<double>(cur_.boot_time));
    if (cur_.has_procs) {
      out->Add("procs_running", static_cast<double>(cur_.procs_running));
      out->Add("procs_blocked", static_cast<double>(cur_.procs_blocked));
    }
    if (has_prev_) AddRates(now_us, out);
    std::swap(prev_, cur_);
    prev_us_ = now_us;
    has_prev_ = true;
    return Outcome::kOk;
  }

 private:
  // Shares of each mode in the time the CPU(s) counted since the last sample. A mode that went
  // backwards (iowait may, on tickless kernels) counts as 0 rather than dropping the CPU.
  static void AddShares(const CpuTicks& before, const CpuTicks& now, std::string_view cpu,
                        SampleRows* out) {
    const auto a = ModeTicks(before), b = ModeTicks(now);
    std::array<double, 8> d{};
    double sum = 0;
    for (size_t m = 0; m < d.size(); ++m) {
      d[m] = b[m] > a[m] ? static_cast<double>(b[m] - a[m]) : 0.0;
      sum += d[m];
    }
    if (sum <= 0) return;
    const bool core = !cpu.empty();
    for (size_t m = 0; m < d.size(); ++m) {
      if (core) {
        out->Add("cpu_core_usage_ratio", d[m] / sum, {{"cpu", cpu}, {"mode", kModes[m]}});
      } else {
        out->Add("cpu_usage_ratio", d[m] / sum, {{"mode", kModes[m]}});
      }
    }
    const double busy = 1.0 - (d[3] + d[4]) / sum;  // not idle, not waiting for I/O
    if (core) {
      out->Add("cpu_core_busy_ratio", busy, {{"cpu", cpu}});
    } else {
      out->Add("cpu_busy_ratio", busy);
    }
  }

  void AddRates(int64_t now_us, SampleRows* out) const {
    AddShares(prev_.total, cur_.total, {}, out);
    for (size_t i = 0; i < cur_.cpus.size(); ++i) {
      const auto& [cpu, ticks] = cur_.cpus[i];
      const CpuTicks* before = nullptr;
      if (i < prev_.cpus.size() && prev_.cpus[i].first == cpu) {
        before = &prev_.cpus[i].second;
      } else {
        for (const auto& p : prev_.cpus) {
          if (p.first == cpu) before = &p.second;
        }
      }
      if (before == nullptr) continue;  // a CPU that came online
      const IntText n(cpu);
      AddShares(*before, ticks, n.view(), out);
    }
    const double seconds = static_cast<double>(now_us - prev_us_) / 1e6;
    double rate = 0;
    if (cur_.has_context_switches && prev_.has_context_switches &&
        RateOf(prev_.context_switches, cur_.context_switches, seconds, &rate)) {
      out->Add("context_switches_per_second", rate);
    }
    if (cur_.has_interrupts && prev_.has_interrupts &&
        RateOf(prev_.interrupts, cur_.interrupts, seconds, &rate)) {
      out->Add("interrupts_per_second", rate);
    }
    if (cur_.has_forks && prev_.has_forks && RateOf(prev_.forks, cur_.forks, seconds, &rate)) {
      out->Add("forks_per_second", rate);
    }
  }

  HostEnv* env_;
  std::string path_;
  KeptFile file_;
  double hz_;
  FileBuffer buf_;
  StatFile cur_, prev_;
  int64_t prev_us_ = 0;
  bool has_prev_ = false;
};

class MemoryCollector final : public Collector {
 public:
  explicit MemoryCollector(const CollectorConfig& c) : env_(c.env), path_(c.root + "/meminfo") {}

  std::string_view name() const override { return "memory"; }

  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (ReadOrFail(env_, path_, &file_, &buf_, why) != 0) return Outcome::kFailed;
    if (!ParseMemInfo(buf_.view(), &fields_, why)) {
      why->Prefix(path_);
      return Outcome::kFailed;
    }
    uint64_t total = 0, available = 0, free = 0, buffers = 0, cached = 0;
    bool has_available = false;
    for (const MemInfoField& f : fields_) {
      out->Add(f.in_bytes ? "memory_bytes" : "memory_pages", static_cast<double>(f.value),
               {{"field", f.name}});
      if (f.name == "MemTotal") total = f.value;
      if (f.name == "MemAvailable") available = f.value, has_available = true;
      if (f.name == "MemFree") free = f.value;
      if (f.name == "Buffers") buffers = f.value;
      if (f.name == "Cached") cached = f.value;
    }
    // Kernels before 3.14 have no MemAvailable: estimate it as free + buffers + page cache.
    if (!has_available) available = free + buffers + cached;
    const uint64_t used = total > available ? total - available : 0;
    out->Add("memory_used_bytes", static_cast<double>(used));
    if (total > 0) {
      out->Add("memory_used_ratio", static_cast<double>(used) / static_cast<double>(total));
    }
    return Outcome::kOk;
  }

 private:
  HostEnv* env_;
  std::string path_;
  KeptFile file_;
  FileBuffer buf_;
  std::vector<MemInfoField> fields_;
};

class LoadCollector final : public Collector {
 public:
  explicit LoadCollector(const CollectorConfig& c) : env_(c.env), path_(c.root + "/loadavg") {}

  std::string_view name() const override { return "load"; }

  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    if (ReadOrFail(env_, path_, &file_, &buf_, why) != 0) return Outcome::kFailed;
    LoadAvg load;
    if (!ParseLoadAvg(buf_.view(), &load, why)) {
      why->Prefix(path_);
      return Outcome::kFailed;
    }
    out->Add("load1", load.load1);
    out->Add("load5", load.load5);
    out->Add("load15", load.load15);
    return Outcome::kOk;
  }

 private:
  HostEnv* env_;
  std::string path_;
  KeptFile file_;
  FileBuffer buf_;
};

class PressureCollector final : public Collector {
 public:
  explicit PressureCollector(const CollectorConfig& c) : env_(c.env) {
    for (size_t r = 0; r < kResources.size(); ++r) {
      paths_[r] = c.root + "/pressure/" + std::string(kResources[r]);
    }
  }

  std::string_view name() const override { return "pressure"; }

  // A kernel without PSI has no /proc/pressure (ENOENT); one booted with psi=0 refuses to
  // open the files (EOPNOTSUPP): either way there is nothing to collect, which is no failure.
  Outcome Collect(int64_t now_us, SampleRows* out, Failure* why) override {
    std::array<Pressure, 3> now{};
    std::array<bool, 3> present{};
    bool any = false;
    for (size_t r = 0; r < kResources.size(); ++r) {
      const int err = files_[r].Read(env_, paths_[r].c_str(), &buf_);
      if (err == ENOENT || err == EOPNOTSUPP) continue;
      if (err != 0) {
        char text[128];
        why->Set("{}: {}", paths_[r], ErrnoText(err, text, sizeof(text)));
        return Outcome::kFailed;
      }
      if (!ParsePressure(buf_.view(), &now[r], why)) {
        why->Prefix(paths_[r]);
        return Outcome::kFailed;
      }
      present[r] = any = true;
    }
    if (!any) return Outcome::kAbsent;
    const double seconds = static_cast<double>(now_us - prev_us_) / 1e6;
    for (size_t r = 0; r < kResources.size(); ++r) {
      if (!present[r]) continue;
      for (int k = 0; k < 2; ++k) {
        const PressureLine& p = k == 0 ? now[r].some : now[r].full;
        if (!p.present) continue;
        const std::initializer_list<Label> labels = {{"kind", k == 0 ? "some" : "full"},
                                                     {"resource", kResources[r]}};
        out->Add("pressure_stalled_seconds_total", static_cast<double>(p.total_us) / 1e6, labels);
        out->Add("pressure_avg10_ratio", p.avg10 / 100, labels);
        out->Add("pressure_avg60_ratio", p.avg60 / 100, labels);
        out->Add("pressure_avg300_ratio", p.avg300 / 100, labels);
        const PressureLine& before = k == 0 ? prev_[r].some : prev_[r].full;
        double rate = 0;
        if (prev_present_[r] && before.present &&
            RateOf(before.total_us, p.total_us, seconds, &rate)) {
          out->Add("pressure_stalled_ratio", rate / 1e6, labels);
        }
      }
    }
    prev_ = now;
    prev_present_ = present;
    prev_us_ = now_us;
    return Outcome::kOk;
  }

 private:
  static constexpr std::array<std::string_view, 3> kResources = {"cpu", "io", "memory"};

  HostEnv* env_;
  std::array<std::string, 3> paths_;
  std::array<KeptFile, 3> files_;
  FileBuffer buf_;
  std::array<Pressure, 3> prev_{};
  std::array<bool, 3> prev_present_{};
  int64_t prev_us_ = 0;
};

}  // namespace

std::unique_ptr<Collector> MakeCpuCollector(const CollectorConfig& config) {
  return std::make_unique<CpuCollector>(config);
}
std::unique_ptr<Collector> MakeMemoryCollector(const CollectorConfig& config) {
  return std::make_unique<MemoryCollector>(config);
}
std::unique_ptr<Collector> MakeLoadCollector(const CollectorConfig& config) {
  return std::make_unique<LoadCollector>(config);
}
std::unique_ptr<Collector> MakePressureCollector(const CollectorConfig& config) {
  return std::make_unique<PressureCollector>(config);
}

const std::vector<std::string_view>& CollectorNames() {
  static const std::vector<std::string_view> kNames = {
      "cpu", "memory", "load", "pressure", "disk", "network", "filesystem", "processes"};
  return kNames;
}

Result<std::unique_ptr<Collector>> MakeCollector(std::string_view name,
                                                 const CollectorConfig& config) {
  using Factory = std::unique_ptr<Collector> (*)(const CollectorConfig&);
  static constexpr std::pair<std::string_view, Factory> kFactories[] = {
      {"cpu", &MakeCpuCollector},
      {"memory", &MakeMemoryCollector},
      {"load", &MakeLoadCollector},
      {"pressure", &MakePressureCollector},
      {"disk", &MakeDiskCollector},
      {"network", &MakeNetworkCollector},
      {"filesystem", &MakeFilesystemCollector},
      {"processes", &MakeProcessCollector}};
  for (const auto& [n, make] : kFactories) {
    if (n == name) return make(config);
  }
  return Status::Invalid("unknown collector '{}'", name);
}

}  // namespace sluice::procfs
