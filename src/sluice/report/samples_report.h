#pragma once

// `sluice report --samples`: charts of a host's stored samples (the agent's long rows: ts, host,
// metric, labels, value), each series downsampled for the page.

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/core/result.h"

namespace sluice::report {

struct Point {
  double x = 0;
  double y = 0;
};

/// Return at most `threshold` of `points` (sorted by x) chosen by largest-triangle-three-
/// buckets: the first and the last, and from each of threshold - 2 equal buckets between them
/// the point that makes the largest triangle with the point kept before it and the mean of the
/// next bucket — the peaks and dips a line chart must show. Fewer points than the threshold (or
/// a threshold under 3) come back as they are.
std::vector<Point> Lttb(const std::vector<Point>& points, size_t threshold);

/// One stored series: a metric and its labels' text, its points (x: seconds since the epoch).
struct StoredSeries {
  std::string metric;
  std::string labels;  ///< JSON text, e.g. {"device":"vda"}
  std::vector<Point> points;
};

struct SamplesReportInput {
  std::string host;
  std::string source;  ///< Where the samples came from (the table), for the page.
  std::vector<StoredSeries> series;
  size_t max_points = 2000;  ///< Per series, after downsampling.
};

/// What the report drew: for tests and the command's summary line.
struct SamplesReportStats {
  int64_t points_in = 0;
  int64_t points_drawn = 0;
  int charts = 0;
};

/// The metrics the report charts, for the query that loads them.
const std::vector<std::string>& SamplesReportMetrics();

/// Return a self-contained HTML page (inline SVG, no scripts or external assets) with CPU,
/// memory, disk and network charts of `input`; kInvalidArgument when it holds no points.
Result<std::string> RenderSamplesReport(const SamplesReportInput& input,
                                        SamplesReportStats* stats = nullptr);

}  // namespace sluice::report
