#pragma once

#include <cstdint>
#include <string>

namespace sluice {

struct SamplesReportArgs {
  std::string dsn;  ///< PostgreSQL holding the agent's samples table
  std::string table = "samples";
  std::string host;           ///< "" : the table's only host
  std::string since;          ///< A duration before the newest sample ("24h"); "" : all
  int64_t max_points = 2000;  ///< Per series
  std::string output = "samples.html";
};

/// `sluice report --samples DSN`: chart a host's stored samples (CPU, memory, disk, network),
/// each series downsampled to at most max_points. Return the process exit code.
int CmdSamplesReport(const SamplesReportArgs& args);

}  // namespace sluice
