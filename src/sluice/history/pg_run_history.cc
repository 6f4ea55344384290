#include <charconv>
#include <map>
#include <mutex>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/history/history_internal.h"

namespace sluice::history {

namespace {

// Two runs that start at once both create the tables; CREATE TABLE IF NOT EXISTS is not safe
// against a concurrent creator (unique violation on pg_type), so creation takes this lock.
constexpr const char* kSchemaSql = R"sql(
SELECT pg_advisory_xact_lock(hashtext('sluice_run_history_schema'));
CREATE TABLE IF NOT EXISTS sluice_runs (
  run_id      text PRIMARY KEY,
  pipeline    text NOT NULL,
  status      text NOT NULL,
  started_at  timestamptz NOT NULL,
  ended_at    timestamptz NOT NULL,
  rows        bigint NOT NULL,
  bytes       bigint NOT NULL,
  report_json json
);
CREATE TABLE IF NOT EXISTS sluice_run_nodes (
  run_id   text NOT NULL REFERENCES sluice_runs(run_id) ON DELETE CASCADE,
  node     text NOT NULL,
  position integer NOT NULL,
  rows_in  bigint NOT NULL,
  rows_out bigint NOT NULL,
  busy_s   double precision NOT NULL,
  PRIMARY KEY (run_id, node)
);
CREATE INDEX IF NOT EXISTS sluice_runs_status_started_idx ON sluice_runs(status, started_at);
CREATE INDEX IF NOT EXISTS sluice_runs_pipeline_started_idx ON sluice_runs(pipeline, started_at);
)sql";

// µs since the epoch <-> timestamptz, exactly (extract() returns numeric since PostgreSQL 14).
constexpr const char* kToTimestamp = "(timestamptz 'epoch' + {} * interval '1 microsecond')";
constexpr const char* kFromTimestamp = "(extract(epoch FROM {}) * 1000000)::bigint";

constexpr const char* kRunColumns = "run_id, pipeline, status, {}, {}, rows, bytes";

int64_t ToInt(std::string_view text) {
  int64_t v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

double ToDouble(std::string_view text) {
  double v = 0;
  std::from_chars(text.data(), text.data() + text.size(), v);
  return v;
}

std::string RunColumns() {
  return fmt::format(kRunColumns, fmt::format(kFromTimestamp, "started_at"),
                     fmt::format(kFromTimestamp, "ended_at"));
}

RunRecord RunFromRow(const pg::PgResult& r, int row) {
  RunRecord run;
  run.run_id = std::string(r.Value(row, 0));
  run.pipeline = std::string(r.Value(row, 1));
  run.status = std::string(r.Value(row, 2));
  run.started_at_us = ToInt(r.Value(row, 3));
  run.ended_at_us = ToInt(r.Value(row, 4));
  run.rows = ToInt(r.Value(row, 5));
  run.bytes = ToInt(r.Value(row, 6));
  return run;
}

class PgRunHistory final : public RunHistory {
 public:
  explicit PgRunHistory(std::string dsn)
      : dsn_(std::move(dsn)), description_("postgresql " + pg::DescribeDsn(dsn_)) {}

  /// Connect and create the tables.
  Status Init();

  Status Record(const RunRecord& run) override;
  Result<std::vector<RunRecord>> List(const RunFilter& filter) override;
  Result<RunRecord> Get(std::string_view run_id) override;
  const std::string& description() const override { return description_; }

 private:
  /// Return a usable connection, reconnecting when the last one broke. Requires mu_.
  Result<pg::PgConnection*> Connection();
  /// Run `body` inside BEGIN `mode` ... COMMIT, rolling back when it fails. Requires mu_.
  template <typename T, typename F>
  Result<T> InTransaction(const char* mode, F body);
  /// Read the nodes of `runs` (by run id) into them. Requires mu_ and a transaction.
  Status LoadNodes(pg::PgConnection* conn, const std::string& ids_sql, const pg::PgParams& params,
                   std::vector<RunRecord>* runs);

  std::mutex mu_;
  const std::string dsn_;
  const std::string description_;
  std::unique_ptr<pg::PgConnection> conn_;  // guarded by mu_
};

Result<pg::PgConnection*> PgRunHistory::Connection() {
  if (conn_ == nullptr || !conn_->IsHealthy()) {
    conn_.reset();
    auto conn = pg::PgConnection::Connect(dsn_);
    if (!conn.ok()) return conn.status().WithContext("run history");
    conn_ = std::move(conn).ValueOrDie();
  }
  return conn_.get();
}

template <typename T, typename F>
Result<T> PgRunHistory::InTransaction(const char* mode, F body) {
  SLUICE_ASSIGN_OR_RETURN(pg::PgConnection * conn, Connection());
  auto begun = conn->Exec(fmt::format("BEGIN {}", mode));
  if (!begun.ok()) return begun.status().WithContext("run history");
  Result<T> result = body(conn);
  if (!result.ok()) {
    (void)conn->Rollback();
    return result.status().WithContext("run history");
  }
  Status st = conn->Commit();
  if (!st.ok()) return st.WithContext("run history");
  return result;
}

Status PgRunHistory::Init() {
  std::lock_guard<std::mutex> lock(mu_);
  auto created = InTransaction<bool>("", [](pg::PgConnection* conn) -> Result<bool> {
    SLUICE_RETURN_NOT_OK(conn->Exec(kSchemaSql).status().WithContext("creating tables"));
    return true;
  });
  return created.status();
}

Status PgRunHistory::Record(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  auto done = InTransaction<bool>("", [&](pg::PgConnection* conn) -> Result<bool> {
    const std::string upsert = fmt::format(
        "INSERT INTO sluice_runs(run_id, pipeline, status, started_at, ended_at, rows, bytes, "
        "report_json) VALUES ($1, $2, $3, {}, {}, $6, $7, $8::json) ON CONFLICT (run_id) DO "
        "UPDATE SET pipeline = excluded.pipeline, status = excluded.status, started_at = "
        "excluded.started_at, ended_at = excluded.ended_at, rows = excluded.rows, bytes = "
        "excluded.bytes, report_json = excluded.report_json",
        fmt::format(kToTimestamp, "$4::bigint"), fmt::format(kToTimestamp, "$5::bigint"));
    pg::PgParams params = {run.run_id,
                           run.pipeline,
                           run.status,
                           std::to_string(run.started_at_us),
                           std::to_string(run.ended_at_us),
                           std::to_string(run.rows),
                           std::to_string(run.bytes),
                           std::nullopt};
    if (!run.report_json.empty()) params[7] = run.report_json;
    SLUICE_RETURN_NOT_OK(conn->ExecParams(upsert, params).status());
    SLUICE_RETURN_NOT_OK(
        conn->ExecParams("DELETE FROM sluice_run_nodes WHERE run_id = $1", {run.run_id}).status());
    for (size_t i = 0; i < run.nodes.size(); ++i) {
      const NodeRunRecord& n = run.nodes[i];
      SLUICE_RETURN_NOT_OK(
          conn->ExecParams(
                  "INSERT INTO sluice_run_nodes(run_id, node, position, rows_in, rows_out, "
                  "busy_s) VALUES ($1, $2, $3, $4, $5, $6)",
                  {run.run_id, n.node, std::to_string(i), std::to_string(n.rows_in),
                   std::to_string(n.rows_out), fmt::format("{}", n.busy_s)})
              .status()
              .WithContext("node '{}'", n.node));
    }
    return true;
  });
  return done.status().WithContext("recording run '{}'", run.run_id);
}

Status PgRunHistory::LoadNodes(pg::PgConnection* conn, const std::string& ids_sql,
                               const pg::PgParams& params, std::vector<RunRecord>* runs) {
  if (runs->empty()) return Status::OK();
  SLUICE_ASSIGN_OR_RETURN(
      pg::PgResult r,
      conn->ExecParams(fmt::format("SELECT run_id, node, rows_in, rows_out, busy_s FROM "
                                   "sluice_run_nodes WHERE run_id IN ({}) ORDER BY run_id, "
                                   "position",
                                   ids_sql),
                       params));
  std::map<std::string, RunRecord*, std::less<>> by_id;
  for (RunRecord& run : *runs) by_id[run.run_id] = &run;
  for (int row = 0; row < r.num_rows(); ++row) {
    auto it = by_id.find(r.Value(row, 0));
    if (it == by_id.end()) continue;
    it->second->nodes.push_back(NodeRunRecord{std::string(r.Value(row, 1)), ToInt(r.Value(row, 2)),
                                              ToInt(r.Value(row, 3)), ToDouble(r.Value(row, 4))});
  }
  return Status::OK();
}

Result<std::vector<RunRecord>> PgRunHistory::List(const RunFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  pg::PgParams params;
  std::string where;
  if (filter.pipeline) {
    params.push_back(*filter.pipeline);
    where += fmt::format("{} pipeline = ${}", where.empty() ? " WHERE" : " AND", params.size());
  }
  if (filter.status) {
    params.push_back(*filter.status);
    where += fmt::format("{} status = ${}", where.empty() ? " WHERE" : " AND", params.size());
  }
  const std::string order_limit =
      " ORDER BY started_at DESC, run_id DESC" +
      (filter.limit > 0 ? fmt::format(" LIMIT {}", filter.limit) : std::string());
  // A snapshot, so that the nodes read second belong to the runs read first.
  auto runs = InTransaction<std::vector<RunRecord>>(
      "ISOLATION LEVEL REPEATABLE READ READ ONLY",
      [&](pg::PgConnection* conn) -> Result<std::vector<RunRecord>> {
        SLUICE_ASSIGN_OR_RETURN(pg::PgResult r,
                                conn->ExecParams(fmt::format("SELECT {} FROM sluice_runs{}{}",
                                                             RunColumns(), where, order_limit),
                                                 params));
        std::vector<RunRecord> out;
        out.reserve(static_cast<size_t>(r.num_rows()));
        for (int row = 0; row < r.num_rows(); ++row) out.push_back(RunFromRow(r, row));
        SLUICE_RETURN_NOT_OK(
            LoadNodes(conn, fmt::format("SELECT run_id FROM sluice_runs{}{}", where, order_limit),
                      params, &out));
        return out;
      });
  if (!runs.ok()) return runs.status().WithContext("listing runs");
  return runs;
}

Result<RunRecord> PgRunHistory::Get(std::string_view run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  const pg::PgParams params = {std::string(run_id)};
  auto runs = InTransaction<std::vector<RunRecord>>(
      "ISOLATION LEVEL REPEATABLE READ READ ONLY",
      [&](pg::PgConnection* conn) -> Result<std::vector<RunRecord>> {
        SLUICE_ASSIGN_OR_RETURN(
            pg::PgResult r,
            conn->ExecParams(
                fmt::format("SELECT {}, report_json FROM sluice_runs WHERE run_id = $1",
                            RunColumns()),
                params));
        std::vector<RunRecord> out;
        if (r.num_rows() == 0) return out;
        out.push_back(RunFromRow(r, 0));
        if (!r.IsNull(0, 7)) out[0].report_json = std::string(r.Value(0, 7));
        SLUICE_RETURN_NOT_OK(LoadNodes(conn, "$1", params, &out));
        return out;
      });
  if (!runs.ok()) return runs.status().WithContext("reading run '{}'", run_id);
  if (runs->empty()) {
    return Status::NotFound("run history {}: no run with id '{}' (`sluice runs` lists them)",
                            description_, run_id);
  }
  return std::move((*runs)[0]);
}

}  // namespace

Result<std::unique_ptr<RunHistory>> OpenPgRunHistory(const std::string& dsn) {
  auto history = std::make_unique<PgRunHistory>(dsn);
  SLUICE_RETURN_NOT_OK(history->Init());
  return std::unique_ptr<RunHistory>(std::move(history));
}

}  // namespace sluice::history
