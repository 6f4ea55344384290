#include <sqlite3.h>

#include <chrono>
#include <filesystem>
#include <mutex>
#include <thread>

#include "sluice/history/history_internal.h"

namespace sluice::history {

namespace {

// Long enough for another run's Record() (a few small inserts) to finish; short enough that a
// stuck writer is reported rather than waited on forever.
constexpr int kBusyTimeoutMs = 15'000;

constexpr const char* kSchemaSql = R"sql(
CREATE TABLE IF NOT EXISTS sluice_runs (
  run_id      TEXT PRIMARY KEY,
  pipeline    TEXT NOT NULL,
  status      TEXT NOT NULL,
  started_at  INTEGER NOT NULL,
  ended_at    INTEGER NOT NULL,
  rows        INTEGER NOT NULL,
  bytes       INTEGER NOT NULL,
  report_json TEXT
);
CREATE TABLE IF NOT EXISTS sluice_run_nodes (
  run_id   TEXT NOT NULL REFERENCES sluice_runs(run_id) ON DELETE CASCADE,
  node     TEXT NOT NULL,
  position INTEGER NOT NULL,
  rows_in  INTEGER NOT NULL,
  rows_out INTEGER NOT NULL,
  busy_s   REAL NOT NULL,
  PRIMARY KEY (run_id, node)
);
CREATE INDEX IF NOT EXISTS sluice_runs_status_started_idx ON sluice_runs(status, started_at);
CREATE INDEX IF NOT EXISTS sluice_runs_pipeline_started_idx ON sluice_runs(pipeline, started_at);
)sql";

/// A prepared statement, finalized on destruction.
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  sqlite3_stmt** out() { return &stmt_; }
  sqlite3_stmt* get() const { return stmt_; }

  void BindText(int i, std::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  void BindInt(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  void BindDouble(int i, double v) { sqlite3_bind_double(stmt_, i, v); }
  std::string Text(int i) const {
    const auto* p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
    return p == nullptr ? std::string() : std::string(p, sqlite3_column_bytes(stmt_, i));
  }
  int64_t Int(int i) const { return sqlite3_column_int64(stmt_, i); }
  double Double(int i) const { return sqlite3_column_double(stmt_, i); }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

class SqliteRunHistory final : public RunHistory {
 public:
  SqliteRunHistory(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteRunHistory() override { sqlite3_close(db_); }

  static Result<std::unique_ptr<RunHistory>> Open(const std::string& path);

  Status Record(const RunRecord& run) override;
  Result<std::vector<RunRecord>> List(const RunFilter& filter) override;
  Result<RunRecord> Get(std::string_view run_id) override;
  const std::string& description() const override { return path_; }

 private:
  /// Return the Status for a failed call that returned `rc` while doing `what`.
  Status Error(int rc, std::string_view what) const;
  Status Exec(const char* sql, std::string_view what);
  Status Prepare(const std::string& sql, Stmt* stmt);
  /// Append the nodes of `run` (read from sluice_run_nodes) to run->nodes.
  Status LoadNodes(RunRecord* run);

  std::mutex mu_;  // serialises every use of db_
  sqlite3* const db_;
  const std::string path_;
};

Status SqliteRunHistory::Error(int rc, std::string_view what) const {
  const int primary = rc & 0xff;
  std::string message = fmt::format("run history '{}': {}: {}", path_, what,
                                    db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
  switch (primary) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status::IOError(
          "{} (the file is not a usable SQLite database: move it aside or choose another "
          "history location)",
          message);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Unavailable("{} (another process held the database for over {}s)", message,
                                 kBusyTimeoutMs / 1000);
    default:
      return Status::IOError("{}", message);
  }
}

Status SqliteRunHistory::Exec(const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? Status::OK() : Error(rc, what);
}

Status SqliteRunHistory::Prepare(const std::string& sql, Stmt* stmt) {
  const int rc =
      sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), stmt->out(), nullptr);
  return rc == SQLITE_OK ? Status::OK() : Error(rc, "preparing a query");
}

Result<std::unique_ptr<RunHistory>> SqliteRunHistory::Open(const std::string& path) {
  const std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(parent, ec);
    if (ec) {
      return Status::IOError("run history '{}': cannot create directory '{}': {}", path,
                             parent.string(), ec.message());
    }
  }
  sqlite3* db = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
  // The object owns `db` from here on, also when opening failed (sqlite3_close frees it).
  auto history = std::make_unique<SqliteRunHistory>(db, path);
  if (rc != SQLITE_OK) return history->Error(rc, "opening");
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // WAL lets readers (`sluice runs`) and one writer proceed together; NORMAL sync is durable
  // across process crashes in WAL mode, which is what a history needs.
  // Switching a fresh file to WAL needs an exclusive lock and does not wait on the busy
  // handler, so a run that opens the file while another creates it retries, within the same
  // bound as any other wait for the lock.
  for (int waited_ms = 0;; waited_ms += 10) {
    const int wal_rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    if (wal_rc == SQLITE_OK) break;
    if ((wal_rc & 0xff) != SQLITE_BUSY || waited_ms >= kBusyTimeoutMs) {
      return history->Error(wal_rc, "switching to WAL");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  SLUICE_RETURN_NOT_OK(
      history->Exec("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON", "configuring"));
  // IMMEDIATE takes the write lock up front, so two processes creating the tables at once wait
  // for each other (busy timeout) instead of failing on a lock upgrade.
  SLUICE_RETURN_NOT_OK(history->Exec("BEGIN IMMEDIATE", "creating tables"));
  Status st = history->Exec(kSchemaSql, "creating tables");
  if (st.ok()) st = history->Exec("COMMIT", "creating tables");
  if (!st.ok()) {
    (void)history->Exec("ROLLBACK", "rolling back");
    return st;
  }
  return std::unique_ptr<RunHistory>(std::move(history));
}

Status SqliteRunHistory::Record(const RunRecord& run) {
  std::lock_guard<std::mutex> lock(mu_);
  SLUICE_RETURN_NOT_OK(Exec("BEGIN IMMEDIATE", "recording a run"));
  auto write = [&]() -> Status {
    Stmt ins;
    SLUICE_RETURN_NOT_OK(Prepare(
        "INSERT INTO sluice_runs(run_id, pipeline, status, started_at, ended_at, rows, bytes, "
        "report_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(run_id) DO UPDATE SET "
        "pipeline = excluded.pipeline, status = excluded.status, started_at = "
        "excluded.started_at, ended_at = excluded.ended_at, rows = excluded.rows, bytes = "
        "excluded.bytes, report_json = excluded.report_json",
        &ins));
    ins.BindText(1, run.run_id);
    ins.BindText(2, run.pipeline);
    ins.BindText(3, run.status);
    ins.BindInt(4, run.started_at_us);
    ins.BindInt(5, run.ended_at_us);
    ins.BindInt(6, run.rows);
    ins.BindInt(7, run.bytes);
    if (!run.report_json.empty()) ins.BindText(8, run.report_json);
    int rc = sqlite3_step(ins.get());
    if (rc != SQLITE_DONE) return Error(rc, "recording a run");

    Stmt del;
    SLUICE_RETURN_NOT_OK(Prepare("DELETE FROM sluice_run_nodes WHERE run_id = ?1", &del));
    del.BindText(1, run.run_id);
    rc = sqlite3_step(del.get());
    if (rc != SQLITE_DONE) return Error(rc, "recording a run's nodes");

    Stmt node;
    SLUICE_RETURN_NOT_OK(
        Prepare("INSERT INTO sluice_run_nodes(run_id, node, position, rows_in, rows_out, busy_s) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                &node));
    for (size_t i = 0; i < run.nodes.size(); ++i) {
      const NodeRunRecord& n = run.nodes[i];
      sqlite3_reset(node.get());
      node.BindText(1, run.run_id);
      node.BindText(2, n.node);
      node.BindInt(3, static_cast<int64_t>(i));
      node.BindInt(4, n.rows_in);
      node.BindInt(5, n.rows_out);
      node.BindDouble(6, n.busy_s);
      rc = sqlite3_step(node.get());
      if (rc != SQLITE_DONE) return Error(rc, fmt::format("recording node '{}'", n.node));
    }
    return Exec("COMMIT", "committing a run");
  };
  Status st = write();
  if (!st.ok()) (void)Exec("ROLLBACK", "rolling back");
  return st.WithContext("run '{}'", run.run_id);
}

Status SqliteRunHistory::LoadNodes(RunRecord* run) {
  Stmt q;
  SLUICE_RETURN_NOT_OK(
      Prepare("SELECT node, rows_in, rows_out, busy_s FROM sluice_run_nodes WHERE run_id = ?1 "
              "ORDER BY position",
              &q));
  q.BindText(1, run->run_id);
  int rc;
  while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
    run->nodes.push_back(NodeRunRecord{q.Text(0), q.Int(1), q.Int(2), q.Double(3)});
  }
  return rc == SQLITE_DONE ? Status::OK() : Error(rc, "reading a run's nodes");
}

Result<std::vector<RunRecord>> SqliteRunHistory::List(const RunFilter& filter) {
  std::lock_guard<std::mutex> lock(mu_);
  // Conditions are added only when set, so the planner can use the (pipeline, started_at) and
  // (status, started_at) indexes.
  std::string sql =
      "SELECT run_id, pipeline, status, started_at, ended_at, rows, bytes FROM sluice_runs";
  std::vector<std::string_view> args;
  if (filter.pipeline) {
    args.push_back(*filter.pipeline);
    sql += fmt::format("{} pipeline = ?{}", args.size() == 1 ? " WHERE" : " AND", args.size());
  }
  if (filter.status) {
    args.push_back(*filter.status);
    sql += fmt::format("{} status = ?{}", args.size() == 1 ? " WHERE" : " AND", args.size());
  }
  sql += fmt::format(" ORDER BY started_at DESC, run_id DESC LIMIT {}",
                     filter.limit > 0 ? filter.limit : -1);
  // One read transaction, so runs and their nodes come from the same snapshot.
  SLUICE_RETURN_NOT_OK(Exec("BEGIN", "listing runs"));
  auto read = [&]() -> Result<std::vector<RunRecord>> {
    Stmt q;
    SLUICE_RETURN_NOT_OK(Prepare(sql, &q));
    for (size_t i = 0; i < args.size(); ++i) q.BindText(static_cast<int>(i + 1), args[i]);
    std::vector<RunRecord> runs;
    int rc;
    while ((rc = sqlite3_step(q.get())) == SQLITE_ROW) {
      RunRecord r;
      r.run_id = q.Text(0);
      r.pipeline = q.Text(1);
      r.status = q.Text(2);
      r.started_at_us = q.Int(3);
      r.ended_at_us = q.Int(4);
      r.rows = q.Int(5);
      r.bytes = q.Int(6);
      runs.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return Error(rc, "listing runs");
    for (RunRecord& r : runs) SLUICE_RETURN_NOT_OK(LoadNodes(&r));
    return runs;
  };
  auto runs = read();
  (void)Exec("COMMIT", "listing runs");
  return runs;
}

Result<RunRecord> SqliteRunHistory::Get(std::string_view run_id) {
  std::lock_guard<std::mutex> lock(mu_);
  SLUICE_RETURN_NOT_OK(Exec("BEGIN", "reading a run"));
  auto read = [&]() -> Result<RunRecord> {
    Stmt q;
    SLUICE_RETURN_NOT_OK(
        Prepare("SELECT run_id, pipeline, status, started_at, ended_at, rows, bytes, report_json "
                "FROM sluice_runs WHERE run_id = ?1",
                &q));
    q.BindText(1, run_id);
    const int rc = sqlite3_step(q.get());
    if (rc == SQLITE_DONE) {
      return Status::NotFound("run history '{}': no run with id '{}' (`sluice runs` lists them)",
                              path_, run_id);
    }
    if (rc != SQLITE_ROW) return Error(rc, "reading a run");
    RunRecord r;
    r.run_id = q.Text(0);
    r.pipeline = q.Text(1);
    r.status = q.Text(2);
    r.started_at_us = q.Int(3);
    r.ended_at_us = q.Int(4);
    r.rows = q.Int(5);
    r.bytes = q.Int(6);
    r.report_json = q.Text(7);
    SLUICE_RETURN_NOT_OK(LoadNodes(&r));
    return r;
  };
  auto run = read();
  (void)Exec("COMMIT", "reading a run");
  return run;
}

}  // namespace

Result<std::unique_ptr<RunHistory>> OpenSqliteRunHistory(const std::string& path) {
  return SqliteRunHistory::Open(path);
}

}  // namespace sluice::history
