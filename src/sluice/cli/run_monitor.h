#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/alerts/alerts.h"
#include "sluice/alerts/webhook_notifier.h"
#include "sluice/engine/executor.h"
#include "sluice/observe/metrics.h"
#include "sluice/resilience/clock.h"
#include "sluice/serve/http_server.h"

namespace sluice {

struct RunMonitorOptions {
  std::string run_id{};
  std::string metrics_listen{};  ///< host:port to serve /metrics and /api/v1/run; "" = none.
  std::vector<alerts::AlertRule> alert_rules{};
  int64_t interval_us = 1'000'000;  ///< Sampling period of the time series and the alerts.
  size_t max_samples = 3600;        ///< Past this, the stored series is thinned by half.
};

/// Watches one run while it executes: samples a time series every interval (per-node counters,
/// queue depths, RSS, CPU, memory budget), evaluates the pipeline's alerts, and serves the
/// metrics registry as Prometheus text and the live run state as JSON. All of it reads the
/// engine's own relaxed counters; nothing is added to the engine's hot path. The run must
/// outlive the monitor: MetricsText() still reads its final counters after Stop().
class RunMonitor {
 public:
  RunMonitor(PipelineRun* run, RunMonitorOptions options);
  ~RunMonitor();
  RunMonitor(const RunMonitor&) = delete;
  RunMonitor& operator=(const RunMonitor&) = delete;

  /// Start the sampler, and the HTTP server when asked for (an error if it cannot listen).
  Status Start();
  /// Take a last sample, stop the sampler and the server, and deliver pending webhooks.
  void Stop(const Status& run_status);

  /// Add the v2 fields of the run report: started_at, ended_at, cpu, timeseries, alerts and
  /// each node's inputs, histograms and peak queue depth.
  void AddToReport(nlohmann::json* report) const;
  /// Return the live state served at /api/v1/run: the report so far plus current rates.
  std::string LiveJson();
  /// Return the Prometheus exposition of the run's metrics.
  std::string MetricsText() const { return registry_.PrometheusText(); }
  /// Return true when an alert fired during the run.
  bool AlertFired() const;
  /// Return the port the server listens on (0 without a server).
  int port() const { return server_ != nullptr ? server_->port() : 0; }

 private:
  struct NodeSample {
    int64_t rows_in = 0, rows_out = 0, batches = 0, errors = 0;
    double busy_s = 0, blocked_s = 0;
    size_t queue_depth = 0;
  };
  struct Sample {
    double t = 0;  // seconds since start
    double cpu_s = 0;
    int64_t rss = 0;
    int64_t budget = 0;
    std::vector<NodeSample> nodes;
  };

  void Loop();
  Sample TakeSample() const;
  /// Take in one sample; `final` is the one taken at Stop(), always kept.
  void Record(Sample sample, bool final);
  std::optional<double> Lookup(std::string_view metric, std::string_view node) const;
  void Collect(observe::CollectorSink& sink) const;
  int NodeIndex(std::string_view id) const;

  PipelineRun* run_;
  RunMonitorOptions options_;
  int64_t started_us_ = 0;
  int64_t ended_us_ = 0;
  observe::MetricsRegistry registry_;
  int64_t collector_id_ = -1;
  std::unique_ptr<serve::HttpServer> server_;
  std::unique_ptr<alerts::AlertEvaluator> evaluator_;
  std::unique_ptr<alerts::WebhookNotifier> notifier_;
  Clock* clock_ = SystemClock();
  int64_t clock_start_us_ = 0;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;          // guarded by mu_
  std::vector<Sample> samples_;    // guarded by mu_
  int64_t stride_ = 1;             // guarded by mu_: sampling intervals per stored sample
  int64_t tick_ = 0;               // guarded by mu_: samples taken since Start()
  Sample previous_, latest_;       // guarded by mu_: the last two samples, for rates
  std::vector<size_t> queue_max_;  // guarded by mu_
  std::atomic<bool> alert_fired_{false};
  std::atomic<int> firing_{0};
  std::string status_ = "running";  // guarded by mu_
  std::thread thread_;
};

/// Return the CPU time the process has used (user, system) in seconds.
std::pair<double, double> ProcessCpuSeconds();

}  // namespace sluice
