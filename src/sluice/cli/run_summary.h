#pragma once

#include <deque>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "sluice/core/units.h"  // WithCommas
#include "sluice/engine/executor.h"

namespace sluice {

/// Return the end-of-run summary for people: status, throughput, a table of nodes (rows in and
/// out, batches, busy and blocked time), per-phase totals, retries and peak memory.
std::string FormatRunSummary(PipelineRun& run, const Status& status);
/// Return the same facts as JSON (the `--report` file).
nlohmann::json RunReportJson(PipelineRun& run, const Status& status, const std::string& run_id);
/// What the progress line keeps between calls: (elapsed µs, rows) samples of the last seconds.
struct ProgressWindow {
  std::deque<std::pair<int64_t, int64_t>> samples;
};
/// Return one progress line: rows, rows/s, elapsed and, when the total is known, the ETA. With
/// `window`, the rate is over the last 5 s rather than since the start (a stream's rate now,
/// not diluted by idle time); a source's `lag` gauge (what it has yet to read) is shown, and
/// records skipped or sent to a dead-letter output.
std::string FormatProgressLine(PipelineRun& run, ProgressWindow* window = nullptr);

}  // namespace sluice
