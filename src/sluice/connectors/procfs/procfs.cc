#include "sluice/connectors/procfs/procfs.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "sluice/connectors/procfs/sampler.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice {

namespace {

using procfs::Outcome;
using procfs::Sampler;
using procfs::SamplerOptions;

/// The longest Next waits for the next sample before answering "nothing yet", so that the
/// engine settles acknowledgements and counts idle time (until-idle) under a long interval.
/// A stop ends the wait at once (NodeContext::WaitUnlessStopping): the wait is not a poll.
constexpr int64_t kMaxWaitUs = 1'000'000;
constexpr int64_t kMinIntervalUs = 10'000;
constexpr int kMaxThreads = 8;
constexpr int kMaxTopProcesses = 1000;

// NodeOptions::ForTest does not fill in defaults: each option falls back to the schema's.
std::string StringOr(const NodeOptions& o, const std::string& name, std::string fallback) {
  return o.Has(name) ? o.GetString(name) : fallback;
}
int64_t IntOr(const NodeOptions& o, const std::string& name, int64_t fallback) {
  return o.Has(name) ? o.GetInt(name) : fallback;
}
std::vector<std::string> ListOr(const NodeOptions& o, const std::string& name,
                                std::vector<std::string> fallback) {
  return o.Has(name) ? o.GetStringList(name) : fallback;
}

/// Samples the host every `interval` on the run's clock; each sample is one batch.
/// Every method is called from the source's own thread.
class ProcfsSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Make(const NodeOptions& o) {
    auto s = std::unique_ptr<ProcfsSource>(new ProcfsSource());
    SamplerOptions& so = s->options_;
    so.config.root = StringOr(o, "root", "/proc");
    while (so.config.root.size() > 1 && so.config.root.back() == '/') so.config.root.pop_back();
    struct stat st;
    if (::stat(so.config.root.c_str(), &st) != 0) {
      return o.ErrorAt("root", fmt::format("'{}': {}", so.config.root, std::strerror(errno)));
    }
    if (!S_ISDIR(st.st_mode)) {
      return o.ErrorAt("root", fmt::format("'{}' is not a directory", so.config.root));
    }
    s->interval_us_ = o.Has("interval") ? o.GetDurationMicros("interval") : 1'000'000;
    if (s->interval_us_ < kMinIntervalUs) return o.ErrorAt("interval", "must be at least 10ms");
    s->samples_ = IntOr(o, "samples", 0);
    if (s->samples_ < 0) return o.ErrorAt("samples", "must be >= 0 (0: sample until stopped)");
    so.collectors = ListOr(o, "collectors", {});
    if (so.collectors.empty() && o.Has("collectors")) {
      return o.ErrorAt("collectors", "lists no collector (leave it out to run them all)");
    }
    for (const std::string& c : so.collectors) {
      const auto& all = procfs::CollectorNames();
      if (std::find(all.begin(), all.end(), c) == all.end()) {
        return o.ErrorAt("collectors", fmt::format("unknown collector '{}' (collectors: {})", c,
                                                   fmt::join(all, ", ")));
      }
    }
    const int64_t threads = IntOr(o, "threads", 1);
    if (threads < 1 || threads > kMaxThreads) {
      return o.ErrorAt("threads", fmt::format("must be between 1 and {}", kMaxThreads));
    }
    so.threads = static_cast<int>(threads);
    const int64_t top = IntOr(o, "top_processes", 5);
    if (top < 0 || top > kMaxTopProcesses) {
      return o.ErrorAt("top_processes", fmt::format("must be between 0 and {}", kMaxTopProcesses));
    }
    so.config.top_processes = static_cast<int>(top);
    so.config.disk_exclude = ListOr(o, "disks_exclude", so.config.disk_exclude);
    so.config.fs_types_exclude = ListOr(o, "filesystem_types_exclude", so.config.fs_types_exclude);
    so.config.mount_points_exclude =
        ListOr(o, "mount_points_exclude", so.config.mount_points_exclude);
    for (const std::string& m : so.config.mount_points_exclude) {
      if (m.empty() || m[0] != '/') {
        return o.ErrorAt("mount_points_exclude", fmt::format("'{}' is not an absolute path", m));
      }
    }
    s->host_ = StringOr(o, "host", "");
    return std::unique_ptr<Source>(std::move(s));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    auto sampler = Sampler::Make(options_);
    if (!sampler.ok()) return sampler.status().WithContext("node '{}'", ctx->id());
    sampler_ = std::move(*sampler);
    if (host_.empty()) host_ = procfs::HostName(options_.config.root, options_.config.env);
    for (const auto& r : sampler_->results()) {
      error_counters_.push_back("collector_errors_" + std::string(r->name));
    }
    empty_ = Batch::MakeUnchecked(Sampler::Schema(), EmptyColumns(), 0);
    return Status::OK();
  }

  Result<BatchPtr> Next(uint64_t seq) override {
    if (samples_ > 0 && taken_ >= samples_) return BatchPtr{};
    Clock* clock = ctx_->clock();
    int64_t now = clock->NowMicros();
    if (taken_ > 0 && now < next_due_) {
      ctx_->WaitUnlessStopping(std::min(next_due_ - now, kMaxWaitUs));
      now = clock->NowMicros();
      if (now < next_due_) return empty_;
    }
    const int64_t ts = NowMicros();
    const auto start = std::chrono::steady_clock::now();
    sampler_->Collect(now);
    const int64_t collect_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count();
    BatchPtr batch = sampler_->ToBatch(ts, host_);
    Account(collect_ns);
    // The next sample is one interval after this one was due; after a stall longer than an
    // interval (a suspended host), one interval from now: missed samples are not made up.
    next_due_ = taken_ == 0 ? now + interval_us_ : next_due_ + interval_us_;
    if (next_due_ <= now) {
      ctx_->stats()->AddCounter(kMissedCounter, (now - next_due_) / interval_us_ + 1);
      next_due_ = now + interval_us_;
    }
    ++taken_;
    last_ts_ = ts;
    return batch;
  }

  Status Close() override {
    sampler_.reset();  // joins the helper threads
    return Status::OK();
  }

  SchemaPtr schema() const override { return Sampler::Schema(); }
  int64_t EstimatedRows() const override { return -1; }
  bool Unbounded() const override { return samples_ == 0; }
  // Samples are taken in time order: no row older than the last sample will follow.
  bool HasWatermark() const override { return true; }
  int64_t Watermark() const override { return last_ts_; }

 private:
  inline static const std::string kSamplesCounter = "samples";
  inline static const std::string kMissedCounter = "missed_samples";
  inline static const std::string kCollectPhase = "collect";
  inline static const std::string kCollectGauge = "collect_seconds";

  static std::vector<Column> EmptyColumns() {
    std::vector<Column> cols;
    for (const Field& f : Sampler::Schema()->fields())
      cols.push_back(ColumnBuilder(f.type).Finish());
    return cols;
  }

  // Count the sample and each failing collector; log a collector's failure when it starts
  // failing and when it recovers, not on every sample.
  void Account(int64_t collect_ns) {
    NodeStats* stats = ctx_->stats();
    stats->AddCounter(kSamplesCounter, 1);
    stats->AddPhase(kCollectPhase, collect_ns);
    stats->SetGauge(kCollectGauge, static_cast<double>(collect_ns) / 1e9);
    const auto& results = sampler_->results();
    failing_.resize(results.size(), false);
    for (size_t i = 0; i < results.size(); ++i) {
      const bool failed = results[i]->outcome == Outcome::kFailed;
      if (failed) stats->AddCounter(error_counters_[i], 1);
      if (failed && !failing_[i]) {
        Log(LogLevel::kWarn, "node '{}': collector '{}' failed: {}", ctx_->id(), results[i]->name,
            results[i]->failure.message());
      } else if (!failed && failing_[i]) {
        Log(LogLevel::kInfo, "node '{}': collector '{}' works again", ctx_->id(), results[i]->name);
      }
      failing_[i] = failed;
    }
  }

  SamplerOptions options_;
  int64_t interval_us_ = 1'000'000;
  int64_t samples_ = 0;
  std::string host_;
  NodeContext* ctx_ = nullptr;
  std::unique_ptr<Sampler> sampler_;
  std::vector<std::string> error_counters_;  // "collector_errors_<name>", per result
  std::vector<bool> failing_;                // per result: failed in the last sample
  BatchPtr empty_;                           // "nothing yet"
  int64_t taken_ = 0;
  int64_t next_due_ = 0;
  int64_t last_ts_ = INT64_MIN;
};

}  // namespace

void RegisterProcfsNodes(NodeRegistry* registry) {
  // The lists' defaults are the collectors' own, written as YAML.
  const procfs::CollectorConfig defaults;
  const auto ListText = [](const std::vector<std::string>& v) {
    return fmt::format("[{}]", fmt::join(v, ", "));
  };
  registry->AddSource(
      "procfs",
      "Sample the host from /proc every interval: CPU, memory, disks, network, filesystems, "
      "processes, load and pressure, one row per metric and label set (docs/AGENT.md).",
      {
          {"root", OptionType::kString, "/proc", "The /proc tree to read.", false, {}},
          {"interval", OptionType::kDuration, "1s", "Time between two samples.", false, {}},
          {"samples",
           OptionType::kInt,
           "0",
           "Samples to take, then end; 0: sample until the run is stopped.",
           false,
           {}},
          {"host",
           OptionType::kString,
           "",
           "The host column's value; default: the file sys/kernel/hostname under root, else the "
           "host name.",
           false,
           {}},
          {"collectors",
           OptionType::kStringList,
           "",
           "Collectors to run (default all): cpu, memory, load, pressure, disk, network, "
           "filesystem, processes.",
           false,
           {}},
          {"threads",
           OptionType::kInt,
           "1",
           "Threads collecting a sample, the source's own included (1-8); more run the "
           "collectors at once (docs/AGENT.md: on a small host they do not pay).",
           false,
           {}},
          {"top_processes",
           OptionType::kInt,
           "5",
           "Processes reported by name: the top N by CPU and the top N by resident memory.",
           false,
           {}},
          {"disks_exclude",
           OptionType::kStringList,
           ListText(defaults.disk_exclude),
           "Disks whose names start with one of these are not reported.",
           false,
           {}},
          {"filesystem_types_exclude",
           OptionType::kStringList,
           ListText(defaults.fs_types_exclude),
           "Filesystem types not reported.",
           false,
           {}},
          {"mount_points_exclude",
           OptionType::kStringList,
           ListText(defaults.mount_points_exclude),
           "Mount points not reported, each with everything below it.",
           false,
           {}},
      },
      &ProcfsSource::Make);
}

}  // namespace sluice
