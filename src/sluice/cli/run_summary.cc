#include "sluice/cli/run_summary.h"

#include <algorithm>
#include <cmath>
#include <map>

#include "sluice/core/time.h"

namespace sluice {

namespace {

int64_t SourceRows(PipelineRun& run) {
  int64_t rows = 0;
  const auto& nodes = run.pipeline()->nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind() == NodeKind::kSource) rows += run.stats(i).rows_out.load();
  }
  return rows;
}

std::string Seconds(double s) {
  if (s < 0.001) return "0s";
  if (s < 1) return fmt::format("{:.0f}ms", s * 1000);
  if (s < 120) return fmt::format("{:.2f}s", s);
  return fmt::format("{}m{:02d}s", static_cast<int>(s / 60), static_cast<int>(s) % 60);
}

std::string Bytes(int64_t b) {
  if (b < 1024) return fmt::format("{} B", b);
  if (b < (1 << 20)) return fmt::format("{:.1f} KiB", b / 1024.0);
  if (b < (1LL << 30)) return fmt::format("{:.1f} MiB", b / 1048576.0);
  return fmt::format("{:.2f} GiB", b / 1073741824.0);
}

}  // namespace

std::string FormatProgressLine(PipelineRun& run, ProgressWindow* window) {
  const int64_t rows = SourceRows(run);
  const int64_t now_us = run.ElapsedMicros();
  const double elapsed = static_cast<double>(now_us) / 1e6;
  double rate = elapsed > 0 ? static_cast<double>(rows) / elapsed : 0;
  if (window != nullptr) {
    auto& samples = window->samples;
    samples.emplace_back(now_us, rows);
    while (samples.size() > 2 && now_us - samples[1].first >= 5'000'000) samples.pop_front();
    const auto& [then_us, then_rows] = samples.front();
    if (now_us > then_us) {
      rate = static_cast<double>(rows - then_rows) * 1e6 / static_cast<double>(now_us - then_us);
    }
  }
  std::string line = fmt::format("{} rows  {} rows/s  {} elapsed", WithCommas(rows),
                                 WithCommas(static_cast<int64_t>(rate)), Seconds(elapsed));
  const int64_t total = run.EstimatedRows();
  if (total > 0 && rate > 0 && rows <= total) {
    line += fmt::format("  {:.0f}%  ETA {}",
                        100.0 * static_cast<double>(rows) / static_cast<double>(total),
                        Seconds(static_cast<double>(total - rows) / rate));
  }
  // A stream has no end to estimate: what its sources have not read yet (their `lag` gauge,
  // e.g. a Redis consumer group's) says how far behind the run is. Records set aside follow.
  const auto& nodes = run.pipeline()->nodes();
  double lag = -1;
  int64_t dead = 0, skipped = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeStats& stats = run.stats(i);
    if (nodes[i].kind() == NodeKind::kSource) {
      const auto gauges = stats.Gauges();
      if (auto it = gauges.find("lag"); it != gauges.end()) lag = std::max(lag, 0.0) + it->second;
    }
    const auto counters = stats.Counters();
    if (auto it = counters.find("dead_letter_records"); it != counters.end()) dead += it->second;
    if (auto it = counters.find("skipped_records"); it != counters.end()) skipped += it->second;
  }
  if (lag >= 0) line += fmt::format("  lag {}", WithCommas(static_cast<int64_t>(lag)));
  if (dead > 0) line += fmt::format("  {} dead letters", WithCommas(dead));
  if (skipped > 0) line += fmt::format("  {} skipped", WithCommas(skipped));
  return line;
}

std::string FormatRunSummary(PipelineRun& run, const Status& status) {
  const auto& nodes = run.pipeline()->nodes();
  const double elapsed = static_cast<double>(run.ElapsedMicros()) / 1e6;
  const int64_t rows = SourceRows(run);
  std::string out;
  out += fmt::format(
      "pipeline '{}': {} in {} — {} rows read, {} rows/s\n", run.pipeline()->name(),
      status.ok() ? (run.stopping() ? "ok, stopped (" + run.stop_reason() + ")" : std::string("ok"))
                  : (status.code() == StatusCode::kCancelled ? "interrupted" : "FAILED"),
      Seconds(elapsed), WithCommas(rows),
      WithCommas(elapsed > 0 ? static_cast<int64_t>(static_cast<double>(rows) / elapsed) : 0));
  size_t id_width = 4;
  for (const auto& n : nodes) id_width = std::max(id_width, n.spec.id.size());
  out += fmt::format("  {:<{}}  {:<10} {:>12} {:>12} {:>8} {:>9} {:>9} {:>6}\n", "node", id_width,
                     "type", "rows in", "rows out", "batches", "busy", "blocked", "util");
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    NodeStats& s = run.stats(i);
    const bool source = n.kind() == NodeKind::kSource;
    const bool sink = n.kind() == NodeKind::kSink;
    const double busy = static_cast<double>(s.busy_ns.load()) / 1e9;
    const double util = elapsed > 0 ? busy / elapsed / n.instances() : 0;
    out +=
        fmt::format("  {:<{}}  {:<10} {:>12} {:>12} {:>8} {:>9} {:>9} {:>5.0f}%\n", n.spec.id,
                    id_width, n.spec.type, source ? "-" : WithCommas(s.rows_in.load()),
                    sink ? "-" : WithCommas(s.rows_out.load()),
                    WithCommas(source ? s.batches_out.load() : s.batches_in.load()), Seconds(busy),
                    Seconds(static_cast<double>(s.blocked_ns.load()) / 1e9), util * 100);
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeStats& s = run.stats(i);
    auto phases = s.Phases();
    auto counters = s.Counters();
    std::string extra;
    for (const auto& [k, v] : phases)
      extra += fmt::format(" {}={}", k, Seconds(static_cast<double>(v) / 1e9));
    for (const auto& [k, v] : counters) extra += fmt::format(" {}={}", k, WithCommas(v));
    // The node's state at the end (a lookup's hit rate and cache size, a window's open
    // windows): whole numbers with commas, fractions to four significant digits.
    for (const auto& [k, v] : s.Gauges()) {
      const bool whole = v == std::floor(v) && std::abs(v) < 1e15;
      extra += whole ? fmt::format(" {}={}", k, WithCommas(static_cast<int64_t>(v)))
                     : fmt::format(" {}={:.4g}", k, v);
    }
    if (s.discarded_rows.load() > 0)
      extra += fmt::format(" discarded_rows={}", WithCommas(s.discarded_rows.load()));
    if (s.committed_batches.load() + s.abandoned_batches.load() > 0) {
      extra += fmt::format(" committed_batches={} abandoned_batches={}", s.committed_batches.load(),
                           s.abandoned_batches.load());
    }
    if (!extra.empty()) out += fmt::format("  {}:{}\n", nodes[i].spec.id, extra);
  }
  // The whole pipeline's phases on one line (the archiver's query ... vacuum span three nodes).
  std::map<std::string, int64_t> totals;
  int nodes_with_phases = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto phases = run.stats(i).Phases();
    nodes_with_phases += phases.empty() ? 0 : 1;
    for (const auto& [k, v] : phases) totals[k] += v;
  }
  if (nodes_with_phases > 1) {
    std::string line;
    for (const auto& [k, v] : totals) {
      line += fmt::format(" {}={}", k, Seconds(static_cast<double>(v) / 1e9));
    }
    out += fmt::format("  phases, all nodes:{}\n", line);
  }
  const int64_t limit = run.budget().limit();
  out += fmt::format("  peak memory: RSS {}, batches in flight {}{}\n", Bytes(PeakRssBytes()),
                     Bytes(run.budget().peak()), limit > 0 ? " (limit " + Bytes(limit) + ")" : "");
  if (!status.ok()) out += fmt::format("  error: {}\n", status.message());
  return out;
}

namespace {

nlohmann::json OperationJson(PipelineRun& run, const nlohmann::json& nodes, double elapsed) {
  // Items and batches are what the sinks received; requests are the round trips nodes time
  // (a postgres sink's transactions, an object store's uploads, a lookup's queries).
  int64_t items = 0, batches = 0, requests = 0;
  double request_s = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i]["kind"] == "sink") {
      items += nodes[i]["rows_in"].get<int64_t>();
      batches += nodes[i]["batches_in"].get<int64_t>();
    }
    const auto latency = run.stats(i).request_latency.Snapshot();
    requests += latency.count();
    request_s += latency.sum();
  }
  nlohmann::json op;
  op["duration_s"] = elapsed;
  op["items"] = items;
  op["throughput_per_s"] = elapsed > 0 ? static_cast<double>(items) / elapsed : 0.0;
  op["batches"] = batches;
  op["memory_bytes"] = {
      {"start", run.rss_start_bytes()},
      {"end", run.rss_end_bytes()},
      {"peak", std::max({PeakRssBytes(), run.rss_start_bytes(), run.rss_end_bytes()})}};
  op["requests"] = {{"count", requests}, {"seconds", request_s}};
  return op;
}

}  // namespace

nlohmann::json RunReportJson(PipelineRun& run, const Status& status, const std::string& run_id) {
  const auto& nodes = run.pipeline()->nodes();
  const double elapsed = static_cast<double>(run.ElapsedMicros()) / 1e6;
  nlohmann::json j;
  j["pipeline"] = run.pipeline()->name();
  j["run_id"] = run_id;
  j["status"] =
      status.ok() ? "ok" : (status.code() == StatusCode::kCancelled ? "interrupted" : "failed");
  if (!status.ok()) j["error"] = status.ToString();
  if (run.stopping()) j["stopped"] = run.stop_reason();  // "signal" or "until-idle"
  j["engine"] =
      run.pipeline()->spec().settings.engine == EngineKind::kSequential ? "sequential" : "parallel";
  j["duration_s"] = elapsed;
  j["rows_read"] = SourceRows(run);
  j["rows_per_s"] = elapsed > 0 ? static_cast<double>(SourceRows(run)) / elapsed : 0.0;
  j["peak_rss_bytes"] = PeakRssBytes();
  j["memory_budget_peak_bytes"] = run.budget().peak();
  j["memory_budget_limit_bytes"] = run.budget().limit();
  j["memory_budget_waits"] = run.budget().waits();
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < nodes.size(); ++i) {
    NodeStats& s = run.stats(i);
    const double busy = static_cast<double>(s.busy_ns.load()) / 1e9;
    nlohmann::json n;
    n["id"] = nodes[i].spec.id;
    n["type"] = nodes[i].spec.type;
    n["kind"] = std::string(NodeKindName(nodes[i].kind()));
    n["parallelism"] = nodes[i].instances();
    n["rows_in"] = s.rows_in.load();
    n["rows_out"] = s.rows_out.load();
    n["bytes_in"] = s.bytes_in.load();
    n["bytes_out"] = s.bytes_out.load();
    n["batches_in"] = s.batches_in.load();
    n["batches_out"] = s.batches_out.load();
    n["busy_s"] = busy;
    n["blocked_s"] = static_cast<double>(s.blocked_ns.load()) / 1e9;
    n["utilization"] = elapsed > 0 ? busy / elapsed / nodes[i].instances() : 0.0;
    n["errors"] = s.errors.load();
    n["discarded_rows"] = s.discarded_rows.load();
    n["committed_batches"] = s.committed_batches.load();
    n["abandoned_batches"] = s.abandoned_batches.load();
    // The event-time watermark the node last passed on, when it has one.
    if (const int64_t wm = s.watermark_us.load(); wm != INT64_MIN)
      n["watermark"] = FormatTimestamp(wm);
    nlohmann::json phases = nlohmann::json::object();
    for (const auto& [k, v] : s.Phases()) phases[k] = static_cast<double>(v) / 1e9;
    n["phases_s"] = phases;
    nlohmann::json counters = nlohmann::json::object();
    for (const auto& [k, v] : s.Counters()) counters[k] = v;
    n["counters"] = counters;
    // Last values of the node's state gauges (a stream source's lag and pending), if any.
    if (auto gauges = s.Gauges(); !gauges.empty()) n["gauges"] = gauges;
    arr.push_back(n);
  }
  j["nodes"] = arr;
  nlohmann::json totals = nlohmann::json::object();
  for (const auto& n : arr) {
    for (const auto& [k, v] : n["phases_s"].items()) {
      totals[k] = totals.value(k, 0.0) + v.get<double>();
    }
  }
  j["phases_s"] = totals;  // summed over nodes: the whole pipeline's split
  j["operation"] = OperationJson(run, arr, elapsed);
  return j;
}

}  // namespace sluice
