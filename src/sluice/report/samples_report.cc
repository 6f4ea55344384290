// The samples report: a host's stored samples as CPU, memory, disk and network charts. See
// samples_report.h.

#include "sluice/report/samples_report.h"

#include <algorithm>
#include <cmath>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sluice/core/time.h"
#include "sluice/report/chart_internal.h"

namespace sluice::report {

using internal::EscapeHtml;
using internal::LineChart;
using internal::Series;
using internal::SeriesColor;
using internal::Unit;

std::vector<Point> Lttb(const std::vector<Point>& points, size_t threshold) {
  const size_t n = points.size();
  if (threshold >= n || threshold < 3) return points;
  std::vector<Point> out;
  out.reserve(threshold);
  out.push_back(points[0]);
  // The points between the first and the last fall into threshold - 2 buckets.
  const double every = static_cast<double>(n - 2) / static_cast<double>(threshold - 2);
  size_t a = 0;  // the point kept last
  for (size_t i = 0; i + 2 < threshold; ++i) {
    const auto bucket_start = static_cast<size_t>(std::floor(static_cast<double>(i) * every)) + 1;
    const auto bucket_end =
        std::min(static_cast<size_t>(std::floor(static_cast<double>(i + 1) * every)) + 1, n - 1);
    // The mean of the next bucket (the last point for the last bucket).
    const size_t next_start = bucket_end;
    const size_t next_end =
        std::min(static_cast<size_t>(std::floor(static_cast<double>(i + 2) * every)) + 1, n);
    double mean_x = 0, mean_y = 0;
    for (size_t k = next_start; k < next_end; ++k) {
      mean_x += points[k].x;
      mean_y += points[k].y;
    }
    const double count = static_cast<double>(std::max<size_t>(1, next_end - next_start));
    mean_x /= count;
    mean_y /= count;
    double best_area = -1;
    size_t best = bucket_start;
    for (size_t k = bucket_start; k < bucket_end; ++k) {
      const double area = std::abs((points[a].x - mean_x) * (points[k].y - points[a].y) -
                                   (points[a].x - points[k].x) * (mean_y - points[a].y));
      if (area > best_area) {
        best_area = area;
        best = k;
      }
    }
    out.push_back(points[best]);
    a = best;
  }
  out.push_back(points[n - 1]);
  return out;
}

const std::vector<std::string>& SamplesReportMetrics() {
  static const std::vector<std::string> metrics = {"cpu_busy_ratio",
                                                   "memory_used_bytes",
                                                   "disk_read_bytes_per_second",
                                                   "disk_written_bytes_per_second",
                                                   "network_receive_bytes_per_second",
                                                   "network_transmit_bytes_per_second"};
  return metrics;
}

namespace {

/// The label that names a series in a legend ("vda" of {"device":"vda"}); "" when none.
std::string Device(const std::string& labels) {
  const auto j = nlohmann::json::parse(labels, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return "";
  for (const char* key : {"device", "cpu", "mountpoint"}) {
    if (auto it = j.find(key); it != j.end() && it->is_string()) return it->get<std::string>();
  }
  return "";
}

struct ChartSpec {
  const char* id;
  const char* title;
  const char* y_label;
  Unit unit;
  double scale;                                              // value * scale is drawn
  std::vector<std::pair<const char*, const char*>> metrics;  // (metric, legend suffix)
};

constexpr size_t kMostSeries = 8;  // per chart: the busiest devices

}  // namespace

Result<std::string> RenderSamplesReport(const SamplesReportInput& input,
                                        SamplesReportStats* stats) {
  SamplesReportStats st;
  double t0 = INFINITY, t1 = -INFINITY;
  for (const auto& s : input.series) {
    st.points_in += static_cast<int64_t>(s.points.size());
    if (!s.points.empty()) {
      t0 = std::min(t0, s.points.front().x);
      t1 = std::max(t1, s.points.back().x);
    }
  }
  if (st.points_in == 0) {
    return Status::Invalid("no samples of host '{}' in {} for the metrics the report draws ({})",
                           input.host, input.source, fmt::join(SamplesReportMetrics(), ", "));
  }
  // Hours on the x axis, or minutes for less than two hours.
  const bool hours = t1 - t0 >= 7200;
  const double per = hours ? 3600 : 60;
  const std::string x_label =
      fmt::format("{} since {}", hours ? "hours" : "minutes",
                  FormatTimestamp(static_cast<int64_t>(t0 * 1e6)).substr(0, 19) + " UTC");
  const std::vector<ChartSpec> charts = {
      {"chart-cpu", "CPU busy", "busy", Unit::kPercent, 100, {{"cpu_busy_ratio", "busy"}}},
      {"chart-memory", "Memory used", "used", Unit::kBytes, 1, {{"memory_used_bytes", "used"}}},
      {"chart-disk",
       "Disk",
       "bytes/s",
       Unit::kBytes,
       1,
       {{"disk_read_bytes_per_second", "read"}, {"disk_written_bytes_per_second", "written"}}},
      {"chart-network",
       "Network",
       "bytes/s",
       Unit::kBytes,
       1,
       {{"network_receive_bytes_per_second", "received"},
        {"network_transmit_bytes_per_second", "sent"}}},
  };
  std::string body;
  for (const ChartSpec& spec : charts) {
    struct Candidate {
      const StoredSeries* series;
      std::string name;
      double volume;
    };
    std::vector<Candidate> found;
    for (const auto& [metric, suffix] : spec.metrics) {
      for (const auto& s : input.series) {
        if (s.metric != metric || s.points.empty()) continue;
        double volume = 0;
        for (const Point& p : s.points) volume += std::isfinite(p.y) ? std::abs(p.y) : 0;
        const std::string device = Device(s.labels);
        found.push_back({&s, device.empty() ? suffix : device + " " + suffix, volume});
      }
    }
    std::stable_sort(found.begin(), found.end(),
                     [](const Candidate& a, const Candidate& b) { return a.volume > b.volume; });
    const size_t hidden = found.size() > kMostSeries ? found.size() - kMostSeries : 0;
    if (hidden > 0) found.resize(kMostSeries);
    LineChart chart;
    chart.id = spec.id;
    chart.title = spec.title;
    chart.y_label = spec.y_label;
    chart.y_unit = spec.unit;
    chart.y_min_top = spec.unit == Unit::kPercent ? 100 : 0;
    chart.x_unit = Unit::kCount;
    chart.x_label = x_label;
    for (const Candidate& c : found) {
      std::vector<Point> finite;
      finite.reserve(c.series->points.size());
      for (const Point& p : c.series->points) {
        if (std::isfinite(p.x) && std::isfinite(p.y)) {
          finite.push_back({(p.x - t0) / per, p.y * spec.scale});
        }
      }
      const std::vector<Point> drawn = Lttb(finite, input.max_points);
      Series line;
      line.name = c.name;
      line.color = SeriesColor(chart.series.size());
      line.x.reserve(drawn.size());
      line.y.reserve(drawn.size());
      for (const Point& p : drawn) {
        line.x.push_back(p.x);
        line.y.push_back(p.y);
      }
      st.points_drawn += static_cast<int64_t>(drawn.size());
      chart.series.push_back(std::move(line));
    }
    fmt::format_to(std::back_inserter(body), "<section id=\"{}\"><h2>{}</h2>\n",
                   std::string(spec.id).substr(6), EscapeHtml(spec.title));
    if (chart.series.empty()) {
      fmt::format_to(std::back_inserter(body), "<p class=\"note\">No samples of {}.</p>\n",
                     EscapeHtml(spec.metrics.front().first));
    } else {
      body += internal::RenderLineChart(chart);
      ++st.charts;
      if (hidden > 0) {
        fmt::format_to(std::back_inserter(body),
                       "<p class=\"note\">{} quieter series not shown.</p>\n", hidden);
      }
    }
    body += "</section>\n";
  }
  std::string out;
  fmt::format_to(std::back_inserter(out),
                 "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                 "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                 "<title>sluice samples: {}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n"
                 "<header><h1>Host {}</h1><p>{} to {} from {}: {} points, {} drawn (at most {} per "
                 "series, largest-triangle-three-buckets).</p></header>\n",
                 EscapeHtml(input.host), internal::ReportCss(), EscapeHtml(input.host),
                 EscapeHtml(FormatTimestamp(static_cast<int64_t>(t0 * 1e6))),
                 EscapeHtml(FormatTimestamp(static_cast<int64_t>(t1 * 1e6))),
                 EscapeHtml(input.source), WithCommas(st.points_in), WithCommas(st.points_drawn),
                 input.max_points);
  out += body;
  out += "</main>\n</body>\n</html>\n";
  if (stats != nullptr) *stats = st;
  return out;
}

}  // namespace sluice::report
