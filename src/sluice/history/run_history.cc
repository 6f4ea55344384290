#include "sluice/history/run_history.h"

#include <algorithm>
#include <array>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "sluice/connectors/postgres/pq_api.h"
#include "sluice/core/json_text.h"
#include "sluice/core/time.h"
#include "sluice/core/units.h"
#include "sluice/history/history_internal.h"

namespace sluice::history {

bool StartsAsKeyValueDsn(std::string_view location) {
  // The connection keywords a DSN starts with in practice (libpq has more; this is the guess
  // made only when libpq is missing).
  static constexpr std::string_view kKeywords[] = {"host",
                                                   "hostaddr",
                                                   "port",
                                                   "dbname",
                                                   "user",
                                                   "password",
                                                   "passfile",
                                                   "service",
                                                   "sslmode",
                                                   "application_name",
                                                   "connect_timeout",
                                                   "options"};
  size_t start = location.find_first_not_of(" \t");
  if (start == std::string_view::npos) return false;
  const size_t eq = location.find('=', start);
  if (eq == std::string_view::npos) return false;
  std::string_view key = location.substr(start, eq - start);
  while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.remove_suffix(1);
  return std::find(std::begin(kKeywords), std::end(kKeywords), key) != std::end(kKeywords);
}

bool IsPostgresLocation(std::string_view location) {
  if (location.starts_with("postgres://") || location.starts_with("postgresql://")) return true;
  // A key=value DSN is whatever libpq accepts as one; a file path ("runs.db") is not.
  if (location.find('=') == std::string_view::npos) return false;
  // Without libpq to ask: a location that starts as a key=value DSN does, and connecting then
  // names the package to install.
  if (!pg::LoadPq().ok()) return StartsAsKeyValueDsn(location);
  char* error = nullptr;
  PQconninfoOption* options = PQconninfoParse(std::string(location).c_str(), &error);
  if (error != nullptr) PQfreemem(error);
  if (options == nullptr) return false;
  PQconninfoFree(options);
  return true;
}

namespace {

std::string ExpandHome(std::string_view path) {
  if (path == "~" || path.starts_with("~/")) {
    const char* home = std::getenv("HOME");
    if (home != nullptr && *home != '\0') return std::string(home) + std::string(path.substr(1));
  }
  return std::string(path);
}

std::string DurationText(double s) {
  if (s < 60) return fmt::format("{:.1f}s", s);
  const auto total = static_cast<int64_t>(s);
  if (total < 3600) return fmt::format("{}m{:02}s", total / 60, total % 60);
  return fmt::format("{}h{:02}m", total / 3600, total % 3600 / 60);
}

Result<std::string> RequiredString(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string() || it->get_ref<const std::string&>().empty()) {
    return Status::Invalid("run report: '{}' is missing or not a non-empty string", key);
  }
  return it->get<std::string>();
}

int64_t IntOr(const nlohmann::json& j, const char* key, int64_t fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<int64_t>() : fallback;
}

double DoubleOr(const nlohmann::json& j, const char* key, double fallback) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : fallback;
}

Result<std::optional<int64_t>> OptionalTimestamp(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<int64_t>();
  if (!it->is_string()) return Status::Invalid("run report: '{}' is not a timestamp string", key);
  auto ts = ParseTimestamp(it->get_ref<const std::string&>());
  if (!ts.ok()) return ts.status().WithContext("run report: '{}'", key);
  return std::optional<int64_t>(*ts);
}

// The fields of a record from a parsed report; report_json is left to the caller.
Result<RunRecord> RecordFields(const nlohmann::json& j, int64_t now_us) {
  if (!j.is_object()) return Status::Invalid("run report: not a JSON object");
  RunRecord r;
  SLUICE_ASSIGN_OR_RETURN(r.pipeline, RequiredString(j, "pipeline"));
  SLUICE_ASSIGN_OR_RETURN(r.run_id, RequiredString(j, "run_id"));
  SLUICE_ASSIGN_OR_RETURN(r.status, RequiredString(j, "status"));
  SLUICE_ASSIGN_OR_RETURN(std::optional<int64_t> started, OptionalTimestamp(j, "started_at"));
  SLUICE_ASSIGN_OR_RETURN(std::optional<int64_t> ended, OptionalTimestamp(j, "ended_at"));
  const auto duration_us = static_cast<int64_t>(DoubleOr(j, "duration_s", 0) * 1e6);
  r.ended_at_us = ended.value_or(started ? *started + duration_us : now_us);
  r.started_at_us = started.value_or(r.ended_at_us - duration_us);
  r.rows = IntOr(j, "rows_read", 0);
  if (auto nodes = j.find("nodes"); nodes != j.end() && nodes->is_array()) {
    for (const auto& n : *nodes) {
      if (!n.is_object()) return Status::Invalid("run report: nodes[] holds a non-object");
      auto id = n.find("id");
      if (id == n.end() || !id->is_string()) {
        return Status::Invalid("run report: a node has no string 'id'");
      }
      if (auto kind = n.find("kind"); kind != n.end() && *kind == "source") {
        r.bytes += IntOr(n, "bytes_out", 0);
      }
      r.nodes.push_back(NodeRunRecord{id->get<std::string>(), IntOr(n, "rows_in", 0),
                                      IntOr(n, "rows_out", 0), DoubleOr(n, "busy_s", 0)});
    }
  }
  return r;
}

}  // namespace

Result<std::unique_ptr<RunHistory>> OpenRunHistory(std::string_view location) {
  if (location.empty()) return Status::ConfigError("run history: empty location");
  if (IsPostgresLocation(location)) return OpenPgRunHistory(std::string(location));
  return OpenSqliteRunHistory(ExpandHome(location));
}

std::string DefaultRunHistoryPath() {
  const char* state = std::getenv("XDG_STATE_HOME");
  if (state != nullptr && *state == '/') return std::string(state) + "/sluice/runs.db";
  const char* home = std::getenv("HOME");
  if (home != nullptr && *home != '\0') return std::string(home) + "/.local/state/sluice/runs.db";
  return "sluice-runs.db";
}

Result<RunRecord> RunRecordFromReport(std::string report_json, int64_t now_us) {
  const nlohmann::json j = nlohmann::json::parse(report_json, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::Invalid("run report: not valid JSON");
  SLUICE_ASSIGN_OR_RETURN(RunRecord r, RecordFields(j, now_us));
  r.report_json = std::move(report_json);
  return r;
}

Result<RunRecord> RunRecordFromParsedReport(const nlohmann::json& report, int64_t now_us) {
  SLUICE_ASSIGN_OR_RETURN(RunRecord r, RecordFields(report, now_us));
  r.report_json = JsonText(report);
  return r;
}

std::string FormatRunList(const std::vector<RunRecord>& runs) {
  if (runs.empty()) return "no runs recorded\n";
  constexpr size_t kColumns = 7;
  const std::array<const char*, kColumns> header = {
      "RUN ID", "PIPELINE", "STATUS", "STARTED (UTC)", "DURATION", "ROWS", "ROWS/S"};
  // Numbers are right-aligned.
  const std::array<bool, kColumns> right = {false, false, false, false, true, true, true};
  std::vector<std::array<std::string, kColumns>> cells;
  cells.reserve(runs.size() + 1);
  cells.push_back({});
  for (size_t c = 0; c < kColumns; ++c) cells[0][c] = header[c];
  for (const RunRecord& r : runs) {
    std::string started = FormatTimestamp(r.started_at_us).substr(0, 19);
    std::replace(started.begin(), started.end(), 'T', ' ');
    const bool finished = r.ended_at_us >= r.started_at_us && r.ended_at_us > 0;
    const double seconds =
        finished ? static_cast<double>(r.ended_at_us - r.started_at_us) / 1e6 : 0.0;
    std::string rate = "-";
    if (finished && seconds > 0) {
      rate = WithCommas(static_cast<int64_t>(static_cast<double>(r.rows) / seconds));
    }
    cells.push_back({r.run_id, r.pipeline, r.status, started,
                     finished ? DurationText(seconds) : "-", WithCommas(r.rows), rate});
  }
  std::array<size_t, kColumns> width{};
  for (const auto& row : cells) {
    for (size_t c = 0; c < kColumns; ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  for (const auto& row : cells) {
    std::string line;
    for (size_t c = 0; c < kColumns; ++c) {
      if (c > 0) line += "  ";
      const std::string pad(width[c] - row[c].size(), ' ');
      line += right[c] ? pad + row[c] : row[c] + pad;
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace sluice::history
