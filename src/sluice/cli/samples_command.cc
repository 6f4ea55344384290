#include "sluice/cli/samples_command.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "sluice/cli/exit_codes.h"
#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/core/units.h"
#include "sluice/report/samples_report.h"

namespace sluice {

namespace {

int ReportFail(int code, const std::string& message) {
  return sluice::Fail(code, "report: " + message);
}

double ToDouble(std::string_view text) {
  double v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

}  // namespace

int CmdSamplesReport(const SamplesReportArgs& args) {
  const auto started = std::chrono::steady_clock::now();
  if (args.max_points < 3) return ReportFail(kExitUsage, "--max-points must be at least 3");
  int64_t since_us = 0;
  if (!args.since.empty()) {
    auto parsed = ParseDurationMicros(args.since);
    if (!parsed.ok() || *parsed <= 0) {
      return ReportFail(kExitUsage,
                        fmt::format("--since '{}': a duration such as 24h or 30m", args.since));
    }
    since_us = *parsed;
  }
  auto conn = pg::PgConnection::Connect(args.dsn);
  if (!conn.ok()) return ReportFail(kExitFailed, conn.status().message());
  const std::string table = pg_internal::QuoteIdentifier(args.table);
  std::string host = args.host;
  if (host.empty()) {
    auto hosts = (*conn)->Exec("SELECT DISTINCT host FROM " + table + " ORDER BY 1 LIMIT 11");
    if (!hosts.ok()) return ReportFail(kExitFailed, hosts.status().message());
    if (hosts->num_rows() == 0) {
      return ReportFail(kExitFailed, fmt::format("table {} holds no samples", args.table));
    }
    if (hosts->num_rows() > 1) {
      std::string names;
      for (int r = 0; r < hosts->num_rows(); ++r) {
        names += fmt::format("{}{}", r == 0 ? "" : ", ", hosts->Value(r, 0));
      }
      return ReportFail(kExitUsage,
                        fmt::format("table {} holds several hosts ({}): name one with --host",
                                    args.table, names));
    }
    host = std::string(hosts->Value(0, 0));
  }
  std::string metrics = "{";
  for (const std::string& m : report::SamplesReportMetrics()) {
    metrics += (metrics.size() > 1 ? "," : "") + m;
  }
  metrics += "}";
  // The newest sample anchors --since: stored samples may be old.
  const std::string sql =
      "SELECT metric, labels::text, extract(epoch FROM ts)::float8, value FROM " + table +
      " WHERE host = $1 AND metric = ANY ($2::text[]) AND ($3::float8 = 0 OR ts >= (SELECT "
      "max(ts) FROM " +
      table + " WHERE host = $1) - make_interval(secs => $3::float8))";
  auto rows = (*conn)->ExecParams(
      sql, {host, metrics, fmt::format("{}", static_cast<double>(since_us) / 1e6)});
  if (!rows.ok()) return ReportFail(kExitFailed, rows.status().message());
  report::SamplesReportInput input;
  input.host = host;
  input.source = fmt::format("table {}", args.table);
  input.max_points = static_cast<size_t>(args.max_points);
  // Rows come unordered (sorting a million rows by their label text took the server longer
  // than the whole report): grouped into series here, each sorted by time.
  std::map<std::pair<std::string, std::string>, size_t> series_of;
  report::StoredSeries* last = nullptr;
  for (int r = 0; r < rows->num_rows(); ++r) {
    const std::string_view metric = rows->Value(r, 0);
    const std::string_view labels = rows->Value(r, 1);
    if (last == nullptr || last->metric != metric || last->labels != labels) {
      auto [it, added] =
          series_of.try_emplace({std::string(metric), std::string(labels)}, input.series.size());
      if (added) input.series.push_back({it->first.first, it->first.second, {}});
      last = &input.series[it->second];
    }
    last->points.push_back(
        {ToDouble(rows->Value(r, 2)), rows->IsNull(r, 3) ? NAN : ToDouble(rows->Value(r, 3))});
  }
  rows = pg::PgResult();  // the text of a million rows, no longer needed
  for (auto& s : input.series) {
    std::sort(s.points.begin(), s.points.end(),
              [](const report::Point& a, const report::Point& b) { return a.x < b.x; });
  }
  report::SamplesReportStats stats;
  auto html = report::RenderSamplesReport(input, &stats);
  if (!html.ok()) return ReportFail(kExitFailed, html.status().message());
  std::ofstream out(args.output);
  out << *html;
  out.close();
  if (!out) return ReportFail(kExitFailed, fmt::format("cannot write '{}'", args.output));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::fprintf(stderr, "%s\n",
               fmt::format("wrote {}: host {}, {} points in {} series, {} drawn, {} charts, "
                           "{:.2f} s",
                           args.output, host, WithCommas(stats.points_in), input.series.size(),
                           WithCommas(stats.points_drawn), stats.charts, seconds)
                   .c_str());
  return kExitOk;
}

}  // namespace sluice
