#pragma once

// SVG chart primitives of the HTML report. Private to src/sluice/report/.

#include <cstddef>
#include <string>

#include <string_view>
#include <utility>
#include <vector>
#include "sluice/core/units.h"

#include "sluice/core/units.h"
#include "sluice/report/run_report.h"

namespace sluice::report::internal {

/// What the values on an axis measure; decides the labels ("64 MiB", "250 ms", "1.5k", "40%").
enum class Unit { kCount, kBytes, kSeconds, kPercent };

/// Return `text` with & < > " ' replaced by character references: safe in HTML text, in SVG
/// <text> and in quoted attribute values.
std::string EscapeHtml(std::string_view text);

/// Return `text` reduced to [A-Za-z0-9_-] (other bytes become '_'), for element ids.
std::string SanitizeId(std::string_view text);

/// Return `v` formatted for people with its unit, e.g. "1.5k", "64 MiB", "250 ms", "97%".
std::string FormatValue(double v, Unit unit);

using ::sluice::WithCommas;  // core/units.h

/// Evenly spaced round tick values (steps of 1, 2, 2.5 or 5 x 10^k) covering [lo, hi].
struct Ticks {
  double lo = 0;    ///< The first tick, <= the data's low end.
  double hi = 1;    ///< The last tick, >= the data's high end.
  double step = 1;  ///< The distance between ticks.
  std::vector<double> values;
};

/// Return about `target` round ticks covering [lo, hi]; an empty or inverted range gives [lo,
/// lo + 1] (or [0, 1] when lo is 0).
Ticks NiceTicks(double lo, double hi, int target = 5);

/// An axis over data in `unit`: ticks computed in a scaled domain (MiB, ms, k) so that every
/// label shares one suffix.
struct Axis {
  Ticks ticks;         ///< In data units.
  double divisor = 1;  ///< Data value / divisor = the number shown.
  std::string suffix;  ///< Appended to every label ("MiB" after a space, "k", "%").

  /// Return the label of the tick at data value `v`.
  std::string Label(double v) const;
};

/// Return an axis for data values in [lo, hi] measured in `unit`.
Axis MakeAxis(double lo, double hi, Unit unit, int target = 5);

/// Map the data domain [d0, d1] linearly onto the range [r0, r1] (pixels).
class LinearScale {
 public:
  LinearScale(double d0, double d1, double r0, double r1) : d0_(d0), d1_(d1), r0_(r0), r1_(r1) {}
  /// Return the pixel position of `v`; the middle of the range when the domain is empty.
  double operator()(double v) const {
    if (d1_ == d0_) return (r0_ + r1_) / 2;
    return r0_ + (v - d0_) / (d1_ - d0_) * (r1_ - r0_);
  }

 private:
  double d0_, d1_, r0_, r1_;
};

/// Nodes of a run placed in layers by depth: sources (no `inputs`) in layer 0, every other node
/// one layer right of its deepest input. A v1 report has no `inputs`: its nodes are placed by
/// kind (sources, transforms, sinks) and no edges are known.
struct DagLayout {
  std::vector<size_t> layer_of;                  ///< Per node (index into run.nodes).
  std::vector<std::vector<size_t>> layers;       ///< Node indexes, top to bottom within a layer.
  std::vector<std::pair<size_t, size_t>> edges;  ///< (from, to) node indexes.
  bool has_edges = false;                        ///< False for a v1 report (no node has `inputs`).
};

/// Return the layout of `run`'s nodes. Inputs naming no node are ignored; a cycle is cut at the
/// edge that closes it.
DagLayout LayoutDag(const RunReport& run);

/// Return the style sheet of the HTML reports (run and samples).
const char* ReportCss();

/// Return the colour of the i-th data series (a plain ten-colour palette, repeating).
const char* SeriesColor(size_t i);

/// One line of a line chart. NaN values leave a gap.
struct Series {
  std::string name;
  std::vector<double> x;
  std::vector<double> y;
  std::string color;
  bool dashed = false;
};

/// A line chart: x is seconds since the start of the run, unless x_unit says otherwise.
struct LineChart {
  std::string id;       ///< The <svg> element's id.
  std::string title;    ///< Shown above the plot and as the <svg>'s <title>.
  std::string y_label;  ///< E.g. "rows/s".
  Unit y_unit = Unit::kCount;
  double y_min_top = 0;          ///< The y axis reaches at least this value (e.g. 100 for CPU %).
  Unit x_unit = Unit::kSeconds;  ///< Of the x values (from 0).
  std::string x_label = "time since start";  ///< Under the x axis.
  std::vector<Series> series;
};

/// Return `chart` as an <svg> element with axes, ticks, grid lines and a legend.
std::string RenderLineChart(const LineChart& chart);

/// One horizontal bar made of named parts (e.g. a node's time per phase).
struct StackedBar {
  std::string label;
  std::vector<std::pair<std::string, double>> parts;
};

/// Return horizontal stacked bars as an <svg>; `part_order` gives each part name its colour
/// and legend position.
std::string RenderStackedBars(const std::string& id, const std::string& title,
                              const std::vector<StackedBar>& bars,
                              const std::vector<std::string>& part_order, Unit unit);

/// Return a histogram as an <svg> bar chart, one bar per bucket (empty buckets at both ends
/// dropped, at most 40 bars), with p50, p95 and p99 marked; `x_label` names the x axis.
std::string RenderHistogram(const std::string& id, const std::string& title,
                            const std::string& x_label, const HistogramReport& h);

/// Return the DAG of `run` as an <svg> with id "chart-dag"; the node `bottleneck` (if any) is
/// highlighted.
std::string RenderDag(const RunReport& run, const DagLayout& layout, const std::string& bottleneck);

}  // namespace sluice::report::internal
