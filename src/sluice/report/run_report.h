#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/core/result.h"

namespace sluice::report {

/// One latency or size histogram of a node (`nodes[i].histograms.<name>` in the run report).
struct HistogramReport {
  std::string unit;  ///< "s", "rows" or "bytes"; empty when the report does not say.
  int64_t count = 0;
  double sum = 0;
  double min = 0;
  double max = 0;
  double p50 = 0;
  double p95 = 0;
  double p99 = 0;
  /// (upper bound, count in bucket), in increasing bound order; the last bound may be +inf.
  std::vector<std::pair<double, int64_t>> buckets;
};

/// One node of the run report (`nodes[i]`). v2 fields are optional and empty when absent.
struct NodeReport {
  std::string id;
  std::string type;
  std::string kind;  ///< "source", "transform" or "sink".
  int64_t parallelism = 1;
  int64_t rows_in = 0;
  int64_t rows_out = 0;
  int64_t bytes_in = 0;
  int64_t bytes_out = 0;
  int64_t batches_in = 0;
  int64_t batches_out = 0;
  double busy_s = 0;       ///< Summed over the node's instances.
  double blocked_s = 0;    ///< Summed over the node's instances.
  double utilization = 0;  ///< busy / duration / parallelism, 0-1.
  int64_t errors = 0;
  int64_t discarded_rows = 0;
  int64_t committed_batches = 0;
  int64_t abandoned_batches = 0;
  std::map<std::string, double> phases_s;
  std::map<std::string, int64_t> counters;
  // Version 2.
  std::optional<std::vector<std::string>> inputs;  ///< Absent in v1 reports.
  std::optional<int64_t> queue_depth_max;
  std::map<std::string, HistogramReport> histograms;
  std::map<std::string, int64_t> batch_close;  ///< "rows", "bytes", "timeout" -> batches.
};

/// Per-node samples of the time series (`timeseries.nodes.<id>`); cumulative counts.
struct NodeSeries {
  std::vector<double> rows_in;
  std::vector<double> rows_out;
  std::vector<double> busy_s;
  std::vector<double> blocked_s;
  std::vector<double> queue_depth;
};

/// The once-a-second samples of a v2 report (`timeseries`).
struct TimeSeries {
  double interval_s = 1.0;
  std::vector<double> t;  ///< Seconds since the start, one per sample.
  std::vector<double> rss_bytes;
  std::vector<double> cpu_percent;  ///< 100 = one core.
  std::vector<double> memory_budget_bytes;
  std::map<std::string, NodeSeries> nodes;
};

/// One alert that fired during the run (`alerts[i]`).
struct AlertReport {
  std::string name;
  std::string metric;
  std::string node;
  double value = 0;
  double threshold = 0;
  double fired_at_s = 0;
  std::optional<double> resolved_at_s;  ///< Absent while still firing at the end.
  std::string message;
};

/// The bottleneck as stored in a v2 report (`bottleneck`).
struct StoredBottleneck {
  std::string node;  ///< Empty when the report names none.
  std::string reason;
  std::vector<std::string> advice;
};

/// A run report (the `sluice run --report run.json` file, version 1 or 2) in typed form.
struct RunReport {
  int64_t version = 1;
  std::string pipeline;
  std::string run_id;
  std::string status;
  std::string error;
  std::string engine;
  double duration_s = 0;
  int64_t rows_read = 0;
  double rows_per_s = 0;
  int64_t peak_rss_bytes = 0;
  int64_t memory_budget_peak_bytes = 0;
  int64_t memory_budget_limit_bytes = 0;
  int64_t memory_budget_waits = 0;
  std::vector<NodeReport> nodes;
  // Version 2.
  std::string started_at;
  std::string ended_at;
  std::optional<double> cpu_user_s;
  std::optional<double> cpu_sys_s;
  std::optional<TimeSeries> timeseries;
  std::vector<AlertReport> alerts;
  std::optional<StoredBottleneck> bottleneck;

  /// Return the node with `id`, or null.
  const NodeReport* FindNode(const std::string& id) const;
};

/// Parse a run report. `nodes` is required and each node needs a string `id`; every other field
/// is optional (a missing or null field keeps its default), but a field of the wrong type is
/// kInvalidArgument with a message naming it (e.g. "nodes[1].utilization: expected a number").
Result<RunReport> ParseRunReport(const nlohmann::json& run);

}  // namespace sluice::report
