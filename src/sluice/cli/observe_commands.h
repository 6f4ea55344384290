#pragma once

#include <string>

namespace sluice {

/// `sluice report RUN.json -o report.html` or `sluice report --run ID -o report.html`: render a
/// run report as one self-contained HTML file. Return the process exit code.
int CmdReport(const std::string& report_file, const std::string& run_id, const std::string& history,
              const std::string& output);
/// `sluice runs [--pipeline P] [--status S] [--limit N]`: list recorded runs, newest first.
int CmdRuns(const std::string& history, const std::string& pipeline, const std::string& status,
            int64_t limit);
/// `sluice top [ADDR]`: a live table of a running pipeline's nodes (rows/s, utilization,
/// backpressure, queue depth, errors), refreshed every `interval_ms`, `iterations` times
/// (0 = until the run ends or ^C).
int CmdTop(const std::string& address, int interval_ms, int iterations);

/// Return where run history lives: `flag` if set, else SLUICE_HISTORY, else the default path.
std::string HistoryLocation(const std::string& flag);

}  // namespace sluice
