#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sluice/core/result.h"

namespace sluice::report {

/// Render a run report (the `--report run.json` file, version 1 or 2) as one self-contained
/// HTML page: inline CSS and SVG, no scripts, no external fetches. The page shows a header
/// (pipeline, run id, status, duration, rows, rows/s, peak RSS, CPU), the bottleneck and its
/// advice (the report's `bottleneck` field, else AnalyzeBottleneck), then these charts, each an
/// <svg> with a stable id and a <title>:
///   chart-dag                  the DAG in layers, the bottleneck node highlighted
///   chart-throughput           rows/s per node over time (from timeseries rows_out deltas;
///                              rows_in for sinks)
///   chart-memory, chart-cpu    RSS and memory budget in use, process CPU %, over time
///   chart-phases               per-node stacked time per phase (phases_s)
///   chart-hist-<node>-<name>   each histogram with buckets, p50/p95/p99 marked (node and name
///                              reduced to [A-Za-z0-9_-]; "-2", "-3" appended on collisions)
/// and a node table and the alerts. A chart whose data is absent (a v1 report has no
/// timeseries) is replaced by a <p class="note" id="note-<chart>"> saying so. All text from the
/// report is HTML-escaped. The output depends only on `run` (no clock), so it is reproducible.
///
/// Returns kInvalidArgument, naming the field, when `run` is not a run report (see
/// ParseRunReport: `nodes` missing or a field of the wrong type).
Result<std::string> RenderHtmlReport(const nlohmann::json& run);

}  // namespace sluice::report
