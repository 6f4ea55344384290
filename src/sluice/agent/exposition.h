#pragma once

// The host agent's two renderings of one sample — the batch the procfs source makes, one row
// per (metric, label set): JSON for /api/v1/metrics and the live page, and the Prometheus text
// exposition for /metrics.

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"

namespace sluice::agent {

/// The columns of a sample batch, found by name: ts (timestamp), host (string), metric
/// (string), labels (json: an object of strings), value (float64), error (string, optional).
struct SampleColumns {
  const Column* ts = nullptr;
  const Column* host = nullptr;
  const Column* metric = nullptr;
  const Column* labels = nullptr;
  const Column* value = nullptr;
  const Column* error = nullptr;  ///< May be null.
};

/// Find the columns of a sample in `batch`; kInvalidArgument names the first one missing or of
/// the wrong type.
Result<SampleColumns> FindSampleColumns(const Batch& batch);

/// What the JSON says besides the rows.
struct SampleInfo {
  int64_t sample = 0;       ///< Samples taken since the agent started (1 for the first).
  int64_t interval_us = 0;  ///< The source's interval, for the page's polling.
};

/// Render a sample as JSON:
/// `{"host":..,"ts":"2026-..Z","ts_us":..,"sample":N,"interval_s":1,
///   "metrics":{"cpu_seconds_total":[{"labels":{"mode":"user"},"value":43029.4},..],..}}`
/// Metrics keep the order of their first row; a row with an error carries `"error":"..."`.
/// A value that is not finite is null.
std::string SampleJson(const Batch& batch, const SampleColumns& cols, const SampleInfo& info);

/// Render a sample as Prometheus text exposition 0.0.4: per metric, `# HELP` and `# TYPE`
/// (counter for names ending in _total, else gauge) then its series, each metric's rows
/// together; names get `prefix` ("host_"); the JSON labels become a label set with the
/// exposition's escapes. Passes `promtool check metrics`.
std::string SamplePrometheus(const Batch& batch, const SampleColumns& cols,
                             std::string_view prefix);

/// Return the one-line help of a metric of the procfs source (docs/AGENT.md), or a generic line
/// for one it does not know.
std::string MetricHelp(std::string_view metric);

/// Append `labels`, a JSON object of strings, to `out` as an exposition label set without the
/// braces (`cpu="0",mode="user"`). Return false, appending nothing, for text that is not such an
/// object. Label names that are not identifiers have their other characters replaced by '_'.
bool AppendPrometheusLabels(std::string_view labels, std::string* out);

}  // namespace sluice::agent
