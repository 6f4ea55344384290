#include "sluice/cli/run_monitor.h"

#include <sys/resource.h>

#include <algorithm>
#include <cctype>
#include <chrono>

#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice {

std::pair<double, double> ProcessCpuSeconds() {
  struct rusage ru {};
  if (getrusage(RUSAGE_SELF, &ru) != 0) return {0, 0};
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return {secs(ru.ru_utime), secs(ru.ru_stime)};
}

RunMonitor::RunMonitor(PipelineRun* run, RunMonitorOptions options)
    : run_(run), options_(std::move(options)) {
  queue_max_.assign(run_->pipeline()->nodes().size(), 0);
}

RunMonitor::~RunMonitor() {
  Stop(Status::OK());
  // The collector reads the run's counters: it goes before the run does (the run outlives us).
  if (collector_id_ >= 0) registry_.RemoveCollector(collector_id_);
}

Status RunMonitor::Start() {
  started_us_ = NowMicros();
  clock_start_us_ = clock_->NowMicros();
  {
    std::lock_guard<std::mutex> lock(mu_);
    latest_ = previous_ = TakeSample();
    samples_.push_back(latest_);  // t = 0: every chart starts at the start
  }
  collector_id_ = registry_.AddCollector([this](observe::CollectorSink& sink) { Collect(sink); });
  if (!options_.alert_rules.empty()) {
    evaluator_ = std::make_unique<alerts::AlertEvaluator>(options_.alert_rules, clock_);
    alerts::WebhookOptions wo;
    wo.pipeline = run_->pipeline()->name();
    wo.run_id = options_.run_id;
    notifier_ = std::make_unique<alerts::WebhookNotifier>(wo);
  }
  if (!options_.metrics_listen.empty()) {
    serve::HttpServerOptions so;
    so.listen = options_.metrics_listen;
    std::vector<serve::Route> routes;
    routes.push_back({"/metrics", [this](const serve::Request&) {
                        serve::Response r;
                        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                        r.body = serve::MakeBody(MetricsText());
                        return r;
                      }});
    routes.push_back({"/api/v1/run", [this](const serve::Request&) {
                        serve::Response r;
                        r.content_type = "application/json";
                        r.body = serve::MakeBody(LiveJson());
                        return r;
                      }});
    SLUICE_ASSIGN_OR_RETURN(server_, serve::HttpServer::Start(so, std::move(routes)));
    Log(LogLevel::kInfo, "metrics at http://{}:{}/metrics, run state at /api/v1/run",
        server_->host(), server_->port());
  }
  thread_ = std::thread([this] { Loop(); });
  return Status::OK();
}

void RunMonitor::Stop(const Status& run_status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    status_ = run_status.ok()                               ? "ok"
              : run_status.code() == StatusCode::kCancelled ? "cancelled"
                                                            : "failed";
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  ended_us_ = NowMicros();
  if (started_us_ != 0) Record(TakeSample(), /*final=*/true);
  if (server_ != nullptr) server_->Stop();
  if (notifier_ != nullptr) notifier_->Flush(5'000'000);
}

void RunMonitor::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, std::chrono::microseconds(options_.interval_us));
    if (stopping_) break;
    lock.unlock();
    Record(TakeSample(), /*final=*/false);
    lock.lock();
  }
}

RunMonitor::Sample RunMonitor::TakeSample() const {
  Sample s;
  s.t = static_cast<double>(NowMicros() - started_us_) / 1e6;
  auto [user, sys] = ProcessCpuSeconds();
  s.cpu_s = user + sys;
  s.rss = CurrentRssBytes();
  s.budget = run_->budget().used();
  const auto& nodes = run_->pipeline()->nodes();
  s.nodes.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeStats& st = run_->stats(i);
    NodeSample& n = s.nodes[i];
    n.rows_in = st.rows_in.load(std::memory_order_relaxed);
    n.rows_out = st.rows_out.load(std::memory_order_relaxed);
    n.batches = st.batches_in.load(std::memory_order_relaxed) +
                st.batches_out.load(std::memory_order_relaxed);
    n.errors = st.errors.load(std::memory_order_relaxed);
    n.busy_s = static_cast<double>(st.busy_ns.load(std::memory_order_relaxed)) / 1e9;
    n.blocked_s = static_cast<double>(st.blocked_ns.load(std::memory_order_relaxed)) / 1e9;
    n.queue_depth = run_->QueueDepth(i);
  }
  return s;
}

void RunMonitor::Record(Sample sample, bool final) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < sample.nodes.size(); ++i) {
      queue_max_[i] = std::max(queue_max_[i], sample.nodes[i].queue_depth);
    }
    previous_ = std::move(latest_);
    latest_ = sample;
    // Store every stride_-th sample (stride_ starts at 1) and the final one. A long run keeps
    // at most `max_samples`: past that, every other stored sample goes (the final one stays)
    // and the stride doubles, so memory stays bounded, the spacing stays even and the charts
    // keep the whole run. Alerts above see every sample.
    ++tick_;
    if (final || tick_ % stride_ == 0) samples_.push_back(std::move(sample));
    if (samples_.size() > options_.max_samples) {
      std::vector<Sample> kept;
      kept.reserve(samples_.size() / 2 + 1);
      for (size_t i = 0; i < samples_.size(); ++i) {
        if (i % 2 == 0 || (final && i + 1 == samples_.size()))
          kept.push_back(std::move(samples_[i]));
      }
      samples_ = std::move(kept);
      stride_ *= 2;
    }
  }
  if (evaluator_ == nullptr) return;
  for (const alerts::AlertEvent& e :
       evaluator_->Evaluate([this](std::string_view m, std::string_view n) {
         std::lock_guard<std::mutex> lock(mu_);
         return Lookup(m, n);
       })) {
    Log(LogLevel::kWarn, "{}", e.message);
    if (e.kind == alerts::AlertEvent::Kind::kFired) {
      alert_fired_ = true;
      firing_.fetch_add(1);
    } else {
      firing_.fetch_sub(1);
    }
    notifier_->Notify(e);
  }
}

int RunMonitor::NodeIndex(std::string_view id) const {
  const auto& nodes = run_->pipeline()->nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].spec.id == id) return static_cast<int>(i);
  }
  return -1;
}

// Called with mu_ held. Rates are over the last sampling interval; counts and latency
// quantiles over the run so far.
std::optional<double> RunMonitor::Lookup(std::string_view metric, std::string_view node) const {
  const auto& nodes = run_->pipeline()->nodes();
  const double dt = latest_.t - previous_.t;
  if (metric == "rss_mb") return static_cast<double>(latest_.rss) / (1 << 20);
  if (metric == "cpu_percent") {
    if (dt <= 0) return std::nullopt;
    return (latest_.cpu_s - previous_.cpu_s) / dt * 100.0;
  }
  if (metric == "memory_budget_used") {
    const int64_t limit = run_->budget().limit();
    return limit > 0 ? static_cast<double>(latest_.budget) / static_cast<double>(limit) : 0.0;
  }
  // Per node, then combined for a run-wide rule.
  auto one = [&](size_t i) -> std::optional<double> {
    const NodeSample& a = latest_.nodes[i];
    const NodeSample& b = previous_.nodes[i];
    const double par = nodes[i].instances();
    const NodeStats& st = run_->stats(i);
    if (metric == "rows_per_s") {
      if (dt <= 0) return std::nullopt;
      const bool sink = nodes[i].kind() == NodeKind::kSink;
      return static_cast<double>(sink ? a.rows_in - b.rows_in : a.rows_out - b.rows_out) / dt;
    }
    if (metric == "utilization") {
      if (dt <= 0) return std::nullopt;
      return (a.busy_s - b.busy_s) / dt / par;
    }
    if (metric == "backpressure") {
      if (dt <= 0) return std::nullopt;
      return (a.blocked_s - b.blocked_s) / dt / par;
    }
    if (metric == "queue_depth") return static_cast<double>(a.queue_depth);
    if (metric == "errors") return static_cast<double>(a.errors);
    if (metric == "error_rate") {
      return a.batches > 0 ? static_cast<double>(a.errors) / static_cast<double>(a.batches) : 0.0;
    }
    if (metric == "retries") {
      auto counters = st.Counters();
      auto it = counters.find("retries");
      return it == counters.end() ? 0.0 : static_cast<double>(it->second);
    }
    if (metric.starts_with("batch_latency_")) {
      const observe::HistogramSnapshot h = st.batch_latency.Snapshot();
      if (h.count() == 0) return std::nullopt;
      if (metric == "batch_latency_p50_s") return h.Quantile(0.50);
      if (metric == "batch_latency_p95_s") return h.Quantile(0.95);
      if (metric == "batch_latency_p99_s") return h.Quantile(0.99);
      if (metric == "batch_latency_max_s") return h.Quantile(1.0);
    }
    return std::nullopt;
  };
  if (!node.empty()) {
    const int i = NodeIndex(node);
    if (i < 0 || latest_.nodes.empty()) return std::nullopt;
    return one(static_cast<size_t>(i));
  }
  if (latest_.nodes.empty()) return std::nullopt;
  // Run-wide: rows/s of the sources, errors and retries summed, the rest the worst node.
  std::optional<double> out;
  int64_t errors = 0, batches = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    errors += latest_.nodes[i].errors;
    batches += latest_.nodes[i].batches;
    if (metric == "rows_per_s" && nodes[i].kind() != NodeKind::kSource) continue;
    auto v = one(i);
    if (!v) continue;
    const bool summed = metric == "rows_per_s" || metric == "errors" || metric == "retries";
    out = !out ? *v : summed ? *out + *v : std::max(*out, *v);
  }
  if (metric == "error_rate") {
    return batches > 0 ? static_cast<double>(errors) / static_cast<double>(batches) : 0.0;
  }
  return out;
}

void RunMonitor::Collect(observe::CollectorSink& sink) const {
  const std::string& pipeline = run_->pipeline()->name();
  const auto& nodes = run_->pipeline()->nodes();
  const double elapsed = static_cast<double>(NowMicros() - started_us_) / 1e6;
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeStats& st = run_->stats(i);
    const observe::Labels labels = {{"pipeline", pipeline},
                                    {"node", nodes[i].spec.id},
                                    {"type", nodes[i].spec.type},
                                    {"kind", std::string(NodeKindName(nodes[i].kind()))}};
    auto counter = [&](const char* name, const char* help, double v) {
      sink.AddCounter(name, help, labels, v);
    };
    counter("sluice_node_rows_in_total", "Rows received from upstream.", st.rows_in.load());
    counter("sluice_node_rows_out_total", "Rows sent downstream.", st.rows_out.load());
    counter("sluice_node_bytes_in_total", "Bytes of the batches received.", st.bytes_in.load());
    counter("sluice_node_bytes_out_total", "Bytes of the batches sent.", st.bytes_out.load());
    counter("sluice_node_batches_in_total", "Batches received.", st.batches_in.load());
    counter("sluice_node_batches_out_total", "Batches sent.", st.batches_out.load());
    counter("sluice_node_busy_seconds_total", "Time inside the node's own code.",
            static_cast<double>(st.busy_ns.load()) / 1e9);
    counter("sluice_node_blocked_seconds_total", "Time waiting for room downstream.",
            static_cast<double>(st.blocked_ns.load()) / 1e9);
    for (const auto& [code, n] : st.ErrorsByCode()) {
      observe::Labels l = labels;
      std::string name;
      for (char c : code) name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      l.emplace_back("code", name);
      sink.AddCounter("sluice_node_errors_total", "Errors, by kind.", l, static_cast<double>(n));
    }
    for (const auto& [name, v] : st.Gauges()) {
      sink.AddGauge("sluice_node_" + name, "Current state reported by the node.", labels, v);
    }
    if (auto h = st.request_latency.Snapshot(); h.count() > 0) {
      sink.AddHistogram("sluice_node_request_latency_seconds",
                        "One request to a server: a DB statement, an object store operation.",
                        labels, h);
    }
    counter("sluice_node_discarded_rows_total", "Rows dropped by an error policy.",
            st.discarded_rows.load());
    counter("sluice_node_batches_committed_total", "Batches whose acknowledgements completed.",
            st.committed_batches.load());
    counter("sluice_node_batches_abandoned_total", "Batches given up on.",
            st.abandoned_batches.load());
    const double par = nodes[i].instances();
    sink.AddGauge("sluice_node_utilization_ratio",
                  "Busy time over wall time since the run started, per instance (0-1).", labels,
                  elapsed > 0 ? static_cast<double>(st.busy_ns.load()) / 1e9 / elapsed / par : 0);
    sink.AddGauge("sluice_node_queue_depth", "Batches waiting in the node's input channel.", labels,
                  static_cast<double>(run_->QueueDepth(i)));
    sink.AddGauge("sluice_node_parallelism", "Instances of the node.", labels, par);
    sink.AddHistogram("sluice_node_batch_latency_seconds", "Time the node spent on one batch.",
                      labels, st.batch_latency.Snapshot());
    sink.AddHistogram("sluice_node_batch_rows", "Rows per batch received (sources: produced).",
                      labels, st.batch_rows.Snapshot());
    for (const auto& [phase, ns] : st.Phases()) {
      observe::Labels l = labels;
      l.emplace_back("phase", phase);
      sink.AddCounter("sluice_node_phase_seconds_total", "Time per phase of the node's work.", l,
                      static_cast<double>(ns) / 1e9);
    }
    for (const auto& [name, v] : st.Counters()) {
      if (name == "retries") {
        counter("sluice_node_retries_total", "Operations retried.", static_cast<double>(v));
        continue;
      }
      if (name == "breaker_trips") {
        counter("sluice_node_circuit_breaker_trips_total", "Times the circuit breaker opened.",
                static_cast<double>(v));
        continue;
      }
      observe::Labels l = labels;
      l.emplace_back("counter", name);
      sink.AddCounter("sluice_node_events_total", "Node-specific counters.", l,
                      static_cast<double>(v));
    }
  }
  const observe::Labels run_labels = {{"pipeline", pipeline}};
  observe::Labels info = run_labels;
  info.emplace_back("run_id", options_.run_id);
  sink.AddGauge("sluice_run_info", "Always 1; names the run.", info, 1);
  sink.AddGauge("sluice_run_start_time_seconds", "Unix time the run started.", run_labels,
                static_cast<double>(started_us_) / 1e6);
  sink.AddGauge("sluice_run_duration_seconds", "Seconds since the run started.", run_labels,
                elapsed);
  int64_t rows = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind() == NodeKind::kSource) rows += run_->stats(i).rows_out.load();
  }
  sink.AddCounter("sluice_run_rows_total", "Rows read by the sources.", run_labels,
                  static_cast<double>(rows));
  sink.AddGauge("sluice_run_throughput_rows_per_second", "Rows read per second, whole run.",
                run_labels, elapsed > 0 ? static_cast<double>(rows) / elapsed : 0);
  auto [user, sys] = ProcessCpuSeconds();
  sink.AddGauge("sluice_process_resident_memory_bytes", "RSS now.", run_labels,
                static_cast<double>(CurrentRssBytes()));
  sink.AddGauge("sluice_process_resident_memory_peak_bytes", "Peak RSS.", run_labels,
                static_cast<double>(PeakRssBytes()));
  sink.AddCounter("sluice_process_cpu_user_seconds_total", "CPU time in user mode.", run_labels,
                  user);
  sink.AddCounter("sluice_process_cpu_system_seconds_total", "CPU time in the kernel.", run_labels,
                  sys);
  const MemoryBudget& b = run_->budget();
  sink.AddGauge("sluice_memory_budget_used_bytes", "Bytes reserved by batches in flight.",
                run_labels, static_cast<double>(b.used()));
  sink.AddGauge("sluice_memory_budget_peak_bytes", "Peak of the bytes reserved.", run_labels,
                static_cast<double>(b.peak()));
  sink.AddGauge("sluice_memory_budget_limit_bytes", "The memory budget's limit.", run_labels,
                static_cast<double>(b.limit()));
  sink.AddCounter("sluice_memory_budget_waits_total", "Reservations that waited.", run_labels,
                  static_cast<double>(b.waits()));
  sink.AddGauge("sluice_alerts_firing", "Alerts firing now.", run_labels, firing_.load());
}

bool RunMonitor::AlertFired() const { return alert_fired_.load(); }

std::string RunMonitor::LiveJson() {
  nlohmann::json j;
  {
    std::lock_guard<std::mutex> lock(mu_);
    j["status"] = status_;
    j["samples"] = samples_.size();
  }
  j["pipeline"] = run_->pipeline()->name();
  j["run_id"] = options_.run_id;
  j["elapsed_s"] = static_cast<double>(NowMicros() - started_us_) / 1e6;
  j["rss_bytes"] = CurrentRssBytes();
  j["memory_budget_bytes"] = run_->budget().used();
  j["memory_budget_limit_bytes"] = run_->budget().limit();
  const auto& nodes = run_->pipeline()->nodes();
  nlohmann::json arr = nlohmann::json::array();
  std::lock_guard<std::mutex> lock(mu_);
  if (latest_.nodes.size() == nodes.size() && previous_.nodes.size() == nodes.size()) {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const NodeStats& st = run_->stats(i);
      nlohmann::json n;
      n["id"] = nodes[i].spec.id;
      n["type"] = nodes[i].spec.type;
      n["kind"] = std::string(NodeKindName(nodes[i].kind()));
      n["parallelism"] = nodes[i].instances();
      n["rows_in"] = st.rows_in.load();
      n["rows_out"] = st.rows_out.load();
      n["errors"] = st.errors.load();
      n["queue_depth"] = run_->QueueDepth(i);
      n["rows_per_s"] = Lookup("rows_per_s", nodes[i].spec.id).value_or(0);
      n["utilization"] = Lookup("utilization", nodes[i].spec.id).value_or(0);
      n["backpressure"] = Lookup("backpressure", nodes[i].spec.id).value_or(0);
      arr.push_back(std::move(n));
    }
  }
  j["nodes"] = std::move(arr);
  return JsonText(j);
}

void RunMonitor::AddToReport(nlohmann::json* report) const {
  nlohmann::json& r = *report;
  r["version"] = 2;
  r["started_at"] = FormatTimestamp(started_us_ - started_us_ % 1000);
  r["ended_at"] = FormatTimestamp(ended_us_ - ended_us_ % 1000);
  auto [user, sys] = ProcessCpuSeconds();
  r["cpu_user_s"] = user;
  r["cpu_sys_s"] = sys;
  const auto& nodes = run_->pipeline()->nodes();
  std::lock_guard<std::mutex> lock(mu_);
  if (r.contains("nodes")) {
    for (size_t i = 0; i < nodes.size() && i < r["nodes"].size(); ++i) {
      nlohmann::json& n = r["nodes"][i];
      nlohmann::json inputs = nlohmann::json::array();
      for (int in : nodes[i].inputs) inputs.push_back(nodes[static_cast<size_t>(in)].spec.id);
      n["inputs"] = inputs;
      n["queue_depth_max"] = queue_max_[i];
      const NodeStats& st = run_->stats(i);
      nlohmann::json h = nlohmann::json::object();
      if (auto s = st.batch_latency.Snapshot(); s.count() > 0) h["batch_latency"] = s.ToJson();
      if (auto s = st.batch_rows.Snapshot(); s.count() > 0) h["batch_rows"] = s.ToJson();
      if (auto s = st.request_latency.Snapshot(); s.count() > 0) {
        h["request_latency"] = s.ToJson();
      }
      n["histograms"] = h;
    }
  }
  nlohmann::json ts;
  ts["interval_s"] = static_cast<double>(options_.interval_us) * stride_ / 1e6;
  nlohmann::json t = nlohmann::json::array(), rss = nlohmann::json::array(),
                 cpu = nlohmann::json::array(), budget = nlohmann::json::array();
  nlohmann::json per_node = nlohmann::json::object();
  for (size_t i = 0; i < nodes.size(); ++i) {
    per_node[nodes[i].spec.id] = {{"rows_in", nlohmann::json::array()},
                                  {"rows_out", nlohmann::json::array()},
                                  {"busy_s", nlohmann::json::array()},
                                  {"blocked_s", nlohmann::json::array()},
                                  {"queue_depth", nlohmann::json::array()}};
  }
  double prev_t = 0, prev_cpu = 0;
  bool first = true;
  for (const Sample& s : samples_) {
    if (!first && s.t <= prev_t) continue;
    t.push_back(s.t);
    rss.push_back(s.rss);
    budget.push_back(s.budget);
    cpu.push_back(first || s.t <= prev_t ? 0.0 : (s.cpu_s - prev_cpu) / (s.t - prev_t) * 100.0);
    for (size_t i = 0; i < nodes.size() && i < s.nodes.size(); ++i) {
      nlohmann::json& n = per_node[nodes[i].spec.id];
      n["rows_in"].push_back(s.nodes[i].rows_in);
      n["rows_out"].push_back(s.nodes[i].rows_out);
      n["busy_s"].push_back(s.nodes[i].busy_s);
      n["blocked_s"].push_back(s.nodes[i].blocked_s);
      n["queue_depth"].push_back(s.nodes[i].queue_depth);
    }
    prev_t = s.t;
    prev_cpu = s.cpu_s;
    first = false;
  }
  ts["t"] = t;
  ts["rss_bytes"] = rss;
  ts["cpu_percent"] = cpu;
  ts["memory_budget_bytes"] = budget;
  ts["nodes"] = per_node;
  r["timeseries"] = ts;
  r["alerts"] = evaluator_ != nullptr
                    ? alerts::AlertsReportJson(evaluator_->incidents(), clock_start_us_)
                    : nlohmann::json::array();
}

}  // namespace sluice
