#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "sluice/core/units.h"  // WithCommas
#include "sluice/engine/executor.h"

namespace sluice {

/// Return the end-of-run summary for people: status, throughput, a table of nodes (rows in and
/// out, batches, busy and blocked time), per-phase totals, retries and peak memory.
std::string FormatRunSummary(PipelineRun& run, const Status& status);
/// Return the same facts as JSON (the `--report` file).
nlohmann::json RunReportJson(PipelineRun& run, const Status& status, const std::string& run_id);
/// Return one progress line: rows, rows/s, elapsed and (when the total is known) the ETA.
std::string FormatProgressLine(PipelineRun& run);

}  // namespace sluice
