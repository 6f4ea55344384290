#include "sluice/cli/observe_commands.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "sluice/cli/exit_codes.h"
#include "sluice/cli/run_summary.h"
#include "sluice/history/run_history.h"
#include "sluice/report/html_report.h"
#include "sluice/serve/http_client.h"

namespace sluice {

namespace {}  // namespace

std::string HistoryLocation(const std::string& flag) {
  if (!flag.empty()) return flag;
  if (const char* env = std::getenv("SLUICE_HISTORY"); env != nullptr && *env != '\0') return env;
  return history::DefaultRunHistoryPath();
}

int CmdReport(const std::string& report_file, const std::string& run_id,
              const std::string& history_flag, const std::string& output) {
  std::string text;
  std::string source;
  if (!run_id.empty()) {
    auto h = history::OpenRunHistory(HistoryLocation(history_flag));
    if (!h.ok()) return Fail(kExitFailed, h.status().message());
    auto record = (*h)->Get(run_id);
    if (!record.ok()) {
      return Fail(record.status().code() == StatusCode::kNotFound ? kExitUsage : kExitFailed,
                  record.status().message());
    }
    text = record->report_json;
    source = "run " + run_id;
  } else {
    if (report_file.empty()) return Fail(kExitUsage, "report: give a run report file or --run ID");
    std::ifstream in(report_file);
    if (!in) return Fail(kExitUsage, fmt::format("report: cannot read '{}'", report_file));
    std::stringstream ss;
    ss << in.rdbuf();
    text = ss.str();
    source = report_file;
  }
  nlohmann::json run = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (run.is_discarded()) {
    return Fail(kExitUsage, fmt::format("report: {} is not JSON (expected a run report written "
                                        "by `sluice run --report`)",
                                        source));
  }
  auto html = report::RenderHtmlReport(run);
  if (!html.ok()) {
    return Fail(kExitUsage, fmt::format("report: {}: {}", source, html.status().message()));
  }
  const std::string out_path = output.empty() ? "report.html" : output;
  std::ofstream out(out_path);
  out << *html;
  out.close();
  if (!out) return Fail(kExitFailed, fmt::format("report: cannot write '{}'", out_path));
  std::fprintf(stderr, "wrote %s (%zu KiB)\n", out_path.c_str(), html->size() / 1024);
  return kExitOk;
}

int CmdRuns(const std::string& history_flag, const std::string& pipeline, const std::string& status,
            int64_t limit) {
  auto h = history::OpenRunHistory(HistoryLocation(history_flag));
  if (!h.ok()) return Fail(kExitFailed, h.status().message());
  history::RunFilter filter;
  if (!pipeline.empty()) filter.pipeline = pipeline;
  if (!status.empty()) filter.status = status;
  filter.limit = limit;
  auto runs = (*h)->List(filter);
  if (!runs.ok()) return Fail(kExitFailed, runs.status().message());
  std::fputs(history::FormatRunList(*runs).c_str(), stdout);
  return kExitOk;
}

int CmdTop(const std::string& address, int interval_ms, int iterations) {
  const std::string addr = address.empty() ? "127.0.0.1:9464" : address;
  const size_t colon = addr.rfind(':');
  if (colon == std::string::npos || colon + 1 == addr.size()) {
    return Fail(kExitUsage, fmt::format("top: '{}' is not host:port (e.g. 127.0.0.1:9464)", addr));
  }
  const std::string host = addr.substr(0, colon);
  const int port = std::atoi(addr.c_str() + colon + 1);
  if (port <= 0 || port > 65535) {
    return Fail(kExitUsage, fmt::format("top: bad port in '{}' (e.g. 127.0.0.1:9464)", addr));
  }
  const bool tty = isatty(STDOUT_FILENO) != 0;
  for (int i = 0; iterations == 0 || i < iterations; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    auto res = serve::HttpGet(host, port, "/api/v1/run", 5'000'000);
    if (!res.ok() || res->status != 200) {
      if (i > 0) return kExitOk;  // the run ended and its server with it
      return Fail(kExitFailed,
                  fmt::format("top: no sluice run at http://{}/api/v1/run (start one with "
                              "`sluice run --metrics-listen {}`)",
                              addr, addr));
    }
    nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
    if (j.is_discarded() || !j.contains("nodes")) {
      return Fail(kExitFailed, fmt::format("top: http://{}/api/v1/run did not answer a run", addr));
    }
    std::string out;
    if (tty) out += "\033[H\033[2J";
    out +=
        fmt::format("{}  run {}  {}  {:.0f}s  RSS {:.1f} MiB\n", j.value("pipeline", std::string()),
                    j.value("run_id", std::string()), j.value("status", std::string()),
                    j.value("elapsed_s", 0.0), j.value("rss_bytes", 0.0) / (1 << 20));
    out += fmt::format("{:<16} {:<16} {:>12} {:>10} {:>6} {:>9} {:>6} {:>7}\n", "NODE", "TYPE",
                       "ROWS OUT", "ROWS/S", "UTIL", "BACKPRES", "QUEUE", "ERRORS");
    for (const auto& n : j["nodes"]) {
      const bool sink = n.value("kind", std::string()) == "sink";
      out += fmt::format(
          "{:<16} {:<16} {:>12} {:>10} {:>5.0f}% {:>8.0f}% {:>6} {:>7}\n",
          n.value("id", std::string()), n.value("type", std::string()),
          WithCommas(sink ? n.value("rows_in", int64_t{0}) : n.value("rows_out", int64_t{0})),
          WithCommas(static_cast<int64_t>(n.value("rows_per_s", 0.0))),
          100 * n.value("utilization", 0.0), 100 * n.value("backpressure", 0.0),
          n.value("queue_depth", int64_t{0}), n.value("errors", int64_t{0}));
    }
    std::fputs(out.c_str(), stdout);
    std::fflush(stdout);
    if (j.value("status", std::string("running")) != "running") break;
  }
  return kExitOk;
}

}  // namespace sluice
