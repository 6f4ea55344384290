#include "sluice/report/html_report.h"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <set>

#include <fmt/format.h>

#include "sluice/report/bottleneck.h"
#include "sluice/report/chart_internal.h"
#include "sluice/report/run_report.h"

namespace sluice::report {

namespace {

using internal::EscapeHtml;
using internal::FormatValue;
using internal::Unit;
using internal::WithCommas;

constexpr const char* kCss = R"css(
:root { color-scheme: light; }
body { margin: 0; background: #f5f6f8; color: #1f2937;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 20px 16px 40px; }
header h1 { font-size: 22px; margin: 0 0 4px; font-weight: 600; }
.meta { color: #6b7280; font-size: 13px; margin-bottom: 14px; }
.badge { display: inline-block; font-size: 12px; font-weight: 600; padding: 1px 8px;
  border-radius: 10px; vertical-align: middle; margin-left: 8px; }
.status-ok { background: #e6f4ea; color: #1e7b34; }
.status-failed { background: #fdecea; color: #b3261e; }
.status-other { background: #fff4e0; color: #8a5300; }
dl.kpis { display: grid; grid-template-columns: repeat(4, 1fr); gap: 8px; margin: 0; }
dl.kpis div { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 12px; }
dl.kpis dt { color: #6b7280; font-size: 12px; }
dl.kpis dd { margin: 0; font-size: 17px; font-weight: 600; font-variant-numeric: tabular-nums; }
section { background: #fff; border: 1px solid #e5e7eb; border-radius: 6px; padding: 12px 16px;
  margin-top: 16px; }
section h2 { font-size: 16px; margin: 0 0 8px; font-weight: 600; }
.error { background: #fdecea; border: 1px solid #f5c2bd; color: #8c1d18; border-radius: 6px;
  padding: 8px 12px; margin-top: 12px; white-space: pre-wrap; font-family: ui-monospace, monospace;
  font-size: 13px; }
.note { color: #6b7280; font-style: italic; margin: 6px 0; }
.bottleneck-node { font-weight: 600; color: #b3261e; }
ul.advice { margin: 6px 0 0; padding-left: 20px; }
ul.advice li { margin: 3px 0; }
svg.chart { display: block; width: 100%; height: auto; margin: 4px 0 10px; }
.dag-wrap { overflow-x: auto; }
svg#chart-dag { width: auto; max-width: none; }
svg.chart text { font: 12px system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  fill: #374151; }
svg.chart text.chart-title { font-size: 13px; font-weight: 600; fill: #111827; }
svg.chart text.tick, svg.chart text.axis-label, svg.chart text.summary { fill: #6b7280; }
svg.chart text.node-id { font-weight: 600; fill: #111827; }
svg.chart text.node-meta { fill: #4b5563; }
svg.chart text.bottleneck-label { fill: #c62828; font-weight: 600; }
svg.chart text.marker-label { font-size: 11px; font-weight: 600; }
svg.chart line.grid { stroke: #eceef1; stroke-width: 1; }
svg.chart line.axis { stroke: #9ca3af; stroke-width: 1; }
.hist-grid { display: grid; grid-template-columns: 1fr 1fr; gap: 0 16px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { padding: 4px 6px; border-bottom: 1px solid #eceef1; text-align: left; white-space: nowrap; }
th { color: #6b7280; font-weight: 600; background: #fafbfc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.wrap { white-space: normal; min-width: 160px; }
td .kind { display: block; color: #6b7280; font-size: 11px; }
code { font: 12.5px ui-monospace, "DejaVu Sans Mono", monospace; background: #f1f3f5;
  padding: 0 3px; border-radius: 3px; }
tr.bottleneck td:first-child { color: #b3261e; font-weight: 600; }
footer { color: #9ca3af; font-size: 12px; margin-top: 16px; }
)css";

void Append(std::string* out, std::string_view s) { out->append(s); }

template <typename... Args>
void AppendF(std::string* out, fmt::format_string<Args...> f, Args&&... args) {
  fmt::format_to(std::back_inserter(*out), f, std::forward<Args>(args)...);
}

void Note(std::string* out, const std::string& chart, const std::string& text) {
  AppendF(out, "<p class=\"note\" id=\"note-{}\">{}</p>\n", chart, EscapeHtml(text));
}

std::string Kpi(const std::string& label, const std::string& value) {
  return fmt::format("<div><dt>{}</dt><dd>{}</dd></div>", EscapeHtml(label), EscapeHtml(value));
}

void RenderHeader(const RunReport& r, std::string* out) {
  const char* status_class =
      r.status == "ok" ? "status-ok" : (r.status == "failed" ? "status-failed" : "status-other");
  AppendF(out, "<header><h1>{}<span class=\"badge {}\">{}</span></h1>\n",
          EscapeHtml(r.pipeline.empty() ? "(unnamed pipeline)" : r.pipeline), status_class,
          EscapeHtml(r.status.empty() ? "unknown" : r.status));
  std::string meta = "run " + r.run_id;
  if (!r.started_at.empty()) meta += " \u00b7 started " + r.started_at;
  if (!r.ended_at.empty()) meta += " \u00b7 ended " + r.ended_at;
  if (!r.engine.empty()) meta += " \u00b7 " + r.engine + " engine";
  AppendF(out, "<div class=\"meta\">{}</div>\n<dl class=\"kpis\">", EscapeHtml(meta));
  Append(out, Kpi("Duration", FormatValue(r.duration_s, Unit::kSeconds)));
  Append(out, Kpi("Rows read", WithCommas(r.rows_read)));
  Append(out, Kpi("Rows/s", WithCommas(static_cast<int64_t>(
                                std::llround(std::isfinite(r.rows_per_s) ? r.rows_per_s : 0)))));
  Append(out, Kpi("Peak RSS", FormatValue(static_cast<double>(r.peak_rss_bytes), Unit::kBytes)));
  if (r.cpu_user_s || r.cpu_sys_s) {
    const double user = r.cpu_user_s.value_or(0), sys = r.cpu_sys_s.value_or(0);
    Append(out, Kpi("CPU user + sys",
                    FormatValue(user, Unit::kSeconds) + " + " + FormatValue(sys, Unit::kSeconds)));
    Append(out, Kpi("CPU (cores, average)",
                    r.duration_s > 0 ? fmt::format("{:.2f}", (user + sys) / r.duration_s) : "n/a"));
  } else {
    Append(out, Kpi("CPU", "not recorded"));
  }
  const std::string budget =
      FormatValue(static_cast<double>(r.memory_budget_peak_bytes), Unit::kBytes) +
      (r.memory_budget_limit_bytes > 0
           ? " of " + FormatValue(static_cast<double>(r.memory_budget_limit_bytes), Unit::kBytes)
           : "");
  Append(out, Kpi("Memory budget peak", budget));
  Append(out, Kpi("Memory budget waits", WithCommas(r.memory_budget_waits)));
  Append(out, "</dl>\n");
  if (!r.error.empty()) AppendF(out, "<div class=\"error\">{}</div>\n", EscapeHtml(r.error));
  Append(out, "</header>\n");
}

// Return `text` escaped, with `option` spans shown as code.
std::string WithCode(const std::string& text) {
  std::string escaped = EscapeHtml(text);
  std::string out;
  bool open = false;
  for (char c : escaped) {
    if (c == '`') {
      out += open ? "</code>" : "<code>";
      open = !open;
    } else {
      out.push_back(c);
    }
  }
  if (open) out += "</code>";
  return out;
}

void RenderBottleneck(const Bottleneck& b, std::string* out) {
  Append(out, "<section id=\"bottleneck\"><h2>Bottleneck</h2>\n");
  if (b.node.empty()) {
    AppendF(out, "<p>No limiting node found: {}.</p>\n", WithCode(b.reason));
  } else {
    AppendF(out, "<p>Limiting node: <span class=\"bottleneck-node\">{}</span> \u2014 {}.</p>\n",
            EscapeHtml(b.node), WithCode(b.reason));
  }
  if (!b.advice.empty()) {
    Append(out, "<ul class=\"advice\">");
    for (const auto& a : b.advice) AppendF(out, "<li>{}</li>", WithCode(a));
    Append(out, "</ul>\n");
  }
  Append(out, "</section>\n");
}

// Rows per second between consecutive samples of a cumulative counter; NaN where unknown.
std::vector<double> Rates(const std::vector<double>& t, const std::vector<double>& cumulative) {
  const size_t n = std::min(t.size(), cumulative.size());
  std::vector<double> rates(n, std::nan(""));
  for (size_t i = 0; i < n; ++i) {
    const double t0 = i == 0 ? 0 : t[i - 1];
    const double v0 = i == 0 ? 0 : cumulative[i - 1];
    const double dt = t[i] - t0, dv = cumulative[i] - v0;
    // A counter that goes down (a restart) or a clock that does not advance has no rate.
    if (dt > 0 && dv >= 0) rates[i] = dv / dt;
  }
  return rates;
}

void RenderThroughput(const RunReport& r, std::string* out) {
  Append(out, "<section id=\"throughput\"><h2>Throughput</h2>\n");
  if (!r.timeseries || r.timeseries->t.empty() || r.timeseries->nodes.empty()) {
    Note(out, "throughput",
         "No per-node time series in this report (version 1 reports have none): throughput over "
         "time is not available.");
    Append(out, "</section>\n");
    return;
  }
  const TimeSeries& ts = *r.timeseries;
  internal::LineChart chart;
  chart.id = "chart-throughput";
  chart.title = "Rows per second by node";
  chart.y_label = "rows/s";
  // Report order first, then series of nodes the report's node list does not have.
  std::vector<std::string> ids;
  for (const auto& n : r.nodes) {
    if (ts.nodes.count(n.id)) ids.push_back(n.id);
  }
  for (const auto& [id, s] : ts.nodes) {
    if (r.FindNode(id) == nullptr) ids.push_back(id);
  }
  for (size_t k = 0; k < ids.size(); ++k) {
    const NodeSeries& s = ts.nodes.at(ids[k]);
    const NodeReport* node = r.FindNode(ids[k]);
    const bool sink = node != nullptr && node->kind == "sink";
    const bool use_in = (sink && !s.rows_in.empty()) || s.rows_out.empty();
    internal::Series series;
    series.name = ids[k] + (use_in ? " (rows in)" : " (rows out)");
    series.x = ts.t;
    series.y = Rates(ts.t, use_in ? s.rows_in : s.rows_out);
    series.color = internal::SeriesColor(k);
    chart.series.push_back(std::move(series));
  }
  Append(out, internal::RenderLineChart(chart));
  Append(out, "</section>\n");
}

void RenderResources(const RunReport& r, std::string* out) {
  Append(out, "<section id=\"resources\"><h2>Memory and CPU</h2>\n");
  const TimeSeries* ts = r.timeseries ? &*r.timeseries : nullptr;
  if (ts == nullptr || ts->t.empty() ||
      (ts->rss_bytes.empty() && ts->memory_budget_bytes.empty())) {
    Note(out, "memory",
         "No memory samples in this report: memory over time is not available (peak RSS " +
             FormatValue(static_cast<double>(r.peak_rss_bytes), Unit::kBytes) + ").");
  } else {
    internal::LineChart chart;
    chart.id = "chart-memory";
    chart.title = "Memory";
    chart.y_label = "bytes";
    chart.y_unit = Unit::kBytes;
    if (!ts->rss_bytes.empty()) {
      chart.series.push_back(
          {"resident set size (RSS)", ts->t, ts->rss_bytes, internal::SeriesColor(0), false});
    }
    if (!ts->memory_budget_bytes.empty()) {
      chart.series.push_back({"memory budget in use", ts->t, ts->memory_budget_bytes,
                              internal::SeriesColor(1), false});
    }
    if (r.memory_budget_limit_bytes > 0) {
      const double limit = static_cast<double>(r.memory_budget_limit_bytes);
      chart.series.push_back({"memory budget limit",
                              {ts->t.front(), ts->t.back()},
                              {limit, limit},
                              internal::SeriesColor(3),
                              true});
    }
    Append(out, internal::RenderLineChart(chart));
  }
  if (ts == nullptr || ts->t.empty() || ts->cpu_percent.empty()) {
    Note(out, "cpu", "No CPU samples in this report: CPU over time is not available.");
  } else {
    internal::LineChart chart;
    chart.id = "chart-cpu";
    chart.title = "Process CPU (100% = one core)";
    chart.y_label = "CPU";
    chart.y_unit = Unit::kPercent;
    chart.y_min_top = 100;
    chart.series.push_back(
        {"process CPU", ts->t, ts->cpu_percent, internal::SeriesColor(2), false});
    Append(out, internal::RenderLineChart(chart));
  }
  Append(out, "</section>\n");
}

void RenderPhases(const RunReport& r, std::string* out) {
  Append(out, "<section id=\"phases\"><h2>Time per phase</h2>\n");
  // The archiver's phases in pipeline order; any others after them, alphabetically.
  static const std::vector<std::string> kKnownOrder = {"query",    "read",   "serialize", "encode",
                                                       "compress", "upload", "write",     "verify",
                                                       "commit",   "delete", "vacuum"};
  std::set<std::string> names;
  std::vector<internal::StackedBar> bars;
  for (const auto& n : r.nodes) {
    double total = 0;
    for (const auto& [name, v] : n.phases_s) {
      if (std::isfinite(v) && v > 0) total += v;
    }
    if (total <= 0) continue;
    internal::StackedBar bar;
    bar.label = n.id;
    for (const auto& [name, v] : n.phases_s) {
      if (!std::isfinite(v) || v <= 0) continue;
      names.insert(name);
      bar.parts.emplace_back(name, v);
    }
    bars.push_back(std::move(bar));
  }
  if (bars.empty()) {
    Note(out, "phases", "No node reported phases in this run.");
    Append(out, "</section>\n");
    return;
  }
  std::vector<std::string> order;
  for (const auto& name : kKnownOrder) {
    if (names.count(name)) order.push_back(name);
  }
  for (const auto& name : names) {
    if (std::find(order.begin(), order.end(), name) == order.end()) order.push_back(name);
  }
  auto rank = [&](const std::string& name) {
    return std::find(order.begin(), order.end(), name) - order.begin();
  };
  for (auto& bar : bars) {
    std::stable_sort(bar.parts.begin(), bar.parts.end(),
                     [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
  }
  Append(out, internal::RenderStackedBars("chart-phases",
                                          "Busy time per phase, summed over "
                                          "instances",
                                          bars, order, Unit::kSeconds));
  Append(out, "</section>\n");
}

void RenderHistograms(const RunReport& r, std::string* out) {
  Append(out, "<section id=\"histograms\"><h2>Latency and batch size histograms</h2>\n");
  std::set<std::string> used_ids;
  std::string charts;
  for (const auto& n : r.nodes) {
    for (const auto& [name, h] : n.histograms) {
      if (h.buckets.empty()) continue;
      std::string id =
          "chart-hist-" + internal::SanitizeId(n.id) + "-" + internal::SanitizeId(name);
      if (!used_ids.insert(id).second) {
        for (int k = 2;; ++k) {
          if (used_ids.insert(fmt::format("{}-{}", id, k)).second) {
            id = fmt::format("{}-{}", id, k);
            break;
          }
        }
      }
      const std::string unit = h.unit == "s" ? "seconds" : h.unit;
      std::string x_label = unit.empty() ? "value" : unit;
      if (name == "batch_latency") x_label = "time per batch";
      if (name == "request_latency") x_label = "time per request";
      if (name == "batch_rows") x_label = "rows per batch";
      charts += internal::RenderHistogram(
          id, n.id + " \u00b7 " + name + (unit.empty() ? "" : " (" + unit + ")"), x_label, h);
    }
  }
  if (charts.empty()) {
    Note(out, "histograms", "No histograms in this report (version 1 reports have none).");
  } else {
    AppendF(out, "<div class=\"hist-grid\">{}</div>\n", charts);
  }
  Append(out, "</section>\n");
}

void RenderNodeTable(const RunReport& r, const std::string& bottleneck, std::string* out) {
  Append(out,
         "<section id=\"nodes\"><h2>Nodes</h2>\n<div class=\"table-wrap\"><table id=\"node-table\">"
         "<thead><tr><th>node</th><th>type</th><th>par.</th><th>rows in</th><th>rows out</th>"
         "<th>bytes in</th><th>bytes out</th><th>batches</th><th>busy</th><th>blocked</th>"
         "<th>util</th><th>errors</th><th>queue max</th><th>details</th></tr></thead><tbody>\n");
  auto num = [](const std::string& s) { return "<td class=\"num\">" + EscapeHtml(s) + "</td>"; };
  for (const auto& n : r.nodes) {
    std::string details;
    auto add = [&details](const std::string& item) {
      details += (details.empty() ? "" : ", ") + item;
    };
    std::string close;
    for (const auto& [k, v] : n.batch_close) {
      if (v > 0) close += (close.empty() ? "" : " ") + k + " " + WithCommas(v);
    }
    if (!close.empty()) add("batches closed by " + close);
    for (const auto& [k, v] : n.counters) add(k + "=" + WithCommas(v));
    if (n.discarded_rows > 0) add("discarded_rows=" + WithCommas(n.discarded_rows));
    if (n.abandoned_batches > 0) add("abandoned_batches=" + WithCommas(n.abandoned_batches));
    const bool source = n.kind == "source";
    AppendF(out, "<tr{}><td>{}</td><td>{}<span class=\"kind\">{}</span></td>",
            !bottleneck.empty() && n.id == bottleneck ? " class=\"bottleneck\"" : "",
            EscapeHtml(n.id), EscapeHtml(n.type), EscapeHtml(n.kind));
    Append(out, num(std::to_string(n.parallelism)));
    Append(out, num(WithCommas(n.rows_in)));
    Append(out, num(WithCommas(n.rows_out)));
    Append(out, num(FormatValue(static_cast<double>(n.bytes_in), Unit::kBytes)));
    Append(out, num(FormatValue(static_cast<double>(n.bytes_out), Unit::kBytes)));
    Append(out, num(WithCommas(source ? n.batches_out : n.batches_in)));
    Append(out, num(FormatValue(n.busy_s, Unit::kSeconds)));
    Append(out, num(FormatValue(n.blocked_s, Unit::kSeconds)));
    Append(out, num(fmt::format("{:.0f}%", n.utilization * 100)));
    Append(out, num(WithCommas(n.errors)));
    Append(out, num(n.queue_depth_max ? WithCommas(*n.queue_depth_max) : "-"));
    AppendF(out, "<td class=\"wrap\">{}</td></tr>\n", EscapeHtml(details));
  }
  Append(out, "</tbody></table></div></section>\n");
}

void RenderAlerts(const RunReport& r, std::string* out) {
  Append(out, "<section id=\"alerts\"><h2>Alerts</h2>\n");
  if (r.alerts.empty()) {
    Append(out, "<p class=\"note\" id=\"note-alerts\">No alerts fired.</p></section>\n");
    return;
  }
  Append(out,
         "<div class=\"table-wrap\"><table id=\"alert-table\"><thead><tr><th>alert</th>"
         "<th>node</th><th>metric</th><th>value</th><th>threshold</th><th>fired at</th>"
         "<th>resolved at</th><th>message</th></tr></thead><tbody>\n");
  for (const auto& a : r.alerts) {
    AppendF(out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{:g}</td>"
            "<td class=\"num\">{:g}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>"
            "<td class=\"wrap\">{}</td></tr>\n",
            EscapeHtml(a.name), EscapeHtml(a.node), EscapeHtml(a.metric), a.value, a.threshold,
            EscapeHtml(FormatValue(a.fired_at_s, Unit::kSeconds)),
            a.resolved_at_s ? EscapeHtml(FormatValue(*a.resolved_at_s, Unit::kSeconds))
                            : std::string("still firing"),
            EscapeHtml(a.message));
  }
  Append(out, "</tbody></table></div></section>\n");
}

}  // namespace

const char* internal::ReportCss() { return kCss; }

Result<std::string> RenderHtmlReport(const nlohmann::json& run) {
  SLUICE_ASSIGN_OR_RETURN(RunReport r, ParseRunReport(run));
  Bottleneck b;
  if (r.bottleneck) {
    b.node = r.bottleneck->node;
    b.reason = r.bottleneck->reason;
    b.advice = r.bottleneck->advice;
  } else {
    b = AnalyzeBottleneck(r);
  }
  std::string out;
  out.reserve(size_t{64} * 1024);
  AppendF(&out,
          "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>sluice run report: {} ({})</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n",
          EscapeHtml(r.pipeline), EscapeHtml(r.run_id), kCss);
  RenderHeader(r, &out);
  RenderBottleneck(b, &out);
  Append(&out, "<section id=\"dag\"><h2>Pipeline</h2>\n");
  if (r.nodes.empty()) {
    Note(&out, "dag", "The report has no nodes.");
  } else {
    // A long pipeline scrolls sideways rather than shrinking its labels out of legibility.
    AppendF(&out, "<div class=\"dag-wrap\">{}</div>\n",
            internal::RenderDag(r, internal::LayoutDag(r), b.node));
  }
  Append(&out, "</section>\n");
  RenderThroughput(r, &out);
  RenderResources(r, &out);
  RenderPhases(r, &out);
  RenderHistograms(r, &out);
  RenderNodeTable(r, b.node, &out);
  RenderAlerts(r, &out);
  AppendF(&out,
          "<footer>sluice run report, format version {}. Self-contained: no scripts, no external "
          "resources.</footer>\n</main>\n</body>\n</html>\n",
          r.version);
  return out;
}

}  // namespace sluice::report
