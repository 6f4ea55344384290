// The `postgres_archive` source: the reading and deleting half of the audit-table archiver.
//
// One batch = one transaction on its own connection:
//   BEGIN; SELECT cols FROM t WHERE ts < cutoff ORDER BY ts, key LIMIT n FOR UPDATE SKIP LOCKED
// ... the batch travels to the sinks (encode, upload, verify) ...
//   Commit(seq): DELETE FROM t WHERE key = ANY(keys); assert deleted == read; COMMIT
//   Abandon(seq): ROLLBACK (the rows stay, unlocked, for a rerun)
// The rows are locked from the SELECT until the DELETE, so a second archiver on the same table
// skips them (SKIP LOCKED) and no row is archived twice; a crash at any point rolls back.
// Exactly once across crashes: before a batch goes downstream its keys are recorded, committed,
// in a state table (`sluice_archive_batches`); the DELETE removes that record in the batch's
// transaction. A run killed after an object was written but before its DELETE committed leaves
// the record; the next run first re-locks exactly those rows, in the same order, with the same
// date, so the object is rewritten under the same key instead of a second copy being made.
// Commits run on committer threads, so one batch's DELETE and COMMIT (an fsync) overlap the
// next batch's SELECT; the pool bounds the open transactions and Lease waits for a free one.
//
// With a `replica_dsn`, the page is read without locks on the replica; then, in the batch's
// transaction on the primary, exactly those keys are locked (FOR UPDATE SKIP LOCKED, still
// older than the cutoff) and only the rows whose keys were locked go downstream. Rows deleted
// or locked on the primary meanwhile are left out; everything after the read (the lock, the
// state table, the DELETE) is on the primary, so the guarantees above hold unchanged.
//
// With `max_parallel_databases: N`, up to N databases are archived at once, each with its own
// pool, sizer and committer slot; Next() hands out their batches round-robin. The tables of one
// database still go one after another.
#include "sluice/connectors/postgres/archive_source.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/core/units.h"
#include "sluice/resilience/adaptive_batch_sizer.h"

namespace sluice {

namespace {

using pg::PgConnection;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Quote(const std::string& ident) {
  // Schema-qualified names quote each part: public.audit -> "public"."audit".
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t dot = ident.find('.', start);
    std::string part =
        ident.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    std::string q = "\"";
    for (char c : part) {
      if (c == '"') q += '"';
      q += c;
    }
    q += '"';
    out += (out.empty() ? "" : ".") + q;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

/// A batch recorded in the state table and not yet deleted: what a killed run left.
struct Intent {
  std::string first_key;  // identifies the record (with the table)
  std::string date;       // the batch's date (the {date} of its object key)
  std::string keys;       // every key of the batch, as a PostgreSQL array literal
  int64_t rows = 0;
};

struct TableJob {
  std::string database;  // the name under `databases:`
  std::string table;
  int64_t archived = 0;
  std::string last_ts;  // the (timestamp, key) of the last row read: the keyset bound
  std::string last_key;
  int64_t pass_rows = 0;       // rows handed out since the read started from the table's start
  std::string dry_last_key;    // --dry-run pages by key alone (nothing is deleted)
  bool recovered = false;      // the batches a killed run left unfinished were looked up
  std::deque<Intent> pending;  // those batches, oldest first
};

struct Database {
  std::string name;
  std::string dsn;
  std::string replica_dsn;  // "": read on the primary
  int pool_size = 4;
  std::unique_ptr<PgConnection> control;  // autocommit: the state table (source thread only)
  std::unique_ptr<PgConnection> replica;  // autocommit: unlocked reads (source thread only)
  std::vector<std::unique_ptr<PgConnection>> idle;  // guarded by pool_mu_
  int open = 0;  // connections created (idle + in use); guarded by pool_mu_
  // Source thread only:
  std::vector<size_t> jobs;  // its tables (indexes into jobs_), archived in this order
  size_t next_job = 0;
  std::unique_ptr<AdaptiveBatchSizer> sizer;
  int slot = -1;       // its committer slot while it is being archived, else -1
  bool done = false;   // every table read to the end
  int handed_out = 0;  // its batches in flight: handed out, neither committed nor abandoned
};

/// One batch handed out and not yet settled: its transaction is open on `conn` (null under
/// --dry-run when the rows came from a replica: nothing to roll back).
struct InFlight {
  size_t database = 0;
  size_t committer = 0;
  std::string table;
  std::unique_ptr<PgConnection> conn;
  std::string key_array;   // the keys as a PostgreSQL array literal
  std::string intent_key;  // first_key of its state-table record ("" without a state table)
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t query_ns = 0;
  uint64_t batch_number = 0;
};

/// A committer thread and the batches acked for it, in ack order.
struct Committer {
  std::thread thread;
  std::condition_variable cv;
  std::deque<InFlight> queue;  // guarded by ArchiveSource::commit_mu_
};

/// Return every key of `key` (int64 or text) as a PostgreSQL array literal.
std::string KeyArrayLiteral(const Column& key) {
  std::string keys = "{";
  for (int64_t i = 0; i < key.length(); ++i) {
    if (i > 0) keys += ',';
    if (key.type() == TypeId::kInt64) {
      keys += std::to_string(key.GetInt64(i));
    } else {
      keys += '"';
      for (char c : key.GetView(i)) {
        if (c == '"' || c == '\\') keys += '\\';
        keys += c;
      }
      keys += '"';
    }
  }
  keys += '}';
  return keys;
}

/// Set mask[i] to 1 for each row i of `key` whose key is among the text values of column 0 of
/// `locked`, else 0; return how many were set. Keys compare as PostgreSQL prints them.
int64_t MaskLockedKeys(const Column& key, const pg::PgResult& locked, std::vector<uint8_t>* mask) {
  const int64_t rows = key.length();
  mask->assign(static_cast<size_t>(rows), 0);
  int64_t kept = 0;
  if (key.type() == TypeId::kInt64) {
    std::vector<int64_t> ids;
    ids.reserve(static_cast<size_t>(locked.num_rows()));
    for (int i = 0; i < locked.num_rows(); ++i) {
      const std::string_view v = locked.Value(i, 0);
      int64_t id = 0;
      if (std::from_chars(v.data(), v.data() + v.size(), id).ec == std::errc()) ids.push_back(id);
    }
    std::sort(ids.begin(), ids.end());
    for (int64_t i = 0; i < rows; ++i) {
      if (std::binary_search(ids.begin(), ids.end(), key.GetInt64(i))) {
        (*mask)[static_cast<size_t>(i)] = 1;
        ++kept;
      }
    }
    return kept;
  }
  std::vector<std::string_view> ids;
  ids.reserve(static_cast<size_t>(locked.num_rows()));
  for (int i = 0; i < locked.num_rows(); ++i) ids.push_back(locked.Value(i, 0));
  std::sort(ids.begin(), ids.end());
  for (int64_t i = 0; i < rows; ++i) {
    if (std::binary_search(ids.begin(), ids.end(), key.GetView(i))) {
      (*mask)[static_cast<size_t>(i)] = 1;
      ++kept;
    }
  }
  return kept;
}

class ArchiveSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Make(const NodeOptions& o) {
    auto s = std::unique_ptr<ArchiveSource>(new ArchiveSource());
    s->id_ = o.id();
    const auto& defaults = o.GetJson("defaults");
    auto str = [&](const char* key, const std::string& fallback) {
      return defaults.is_object() && defaults.contains(key) && defaults[key].is_string()
                 ? defaults[key].get<std::string>()
                 : fallback;
    };
    s->ts_column_ = str("timestamp_column", "created_at");
    s->key_column_ = str("key_column", "id");
    const std::string cutoff = str("cutoff", "90d");
    auto cutoff_ts = ParseTimestamp(cutoff);
    if (cutoff_ts.ok()) {
      s->cutoff_us_ = *cutoff_ts;
    } else {
      auto age = ParseDurationMicros(cutoff);
      if (!age.ok()) {
        return o.ErrorAt("defaults",
                         "cutoff '" + cutoff + "' is neither a timestamp nor an age like 90d");
      }
      s->cutoff_us_ = NowMicros() - *age;
    }
    s->sizing_.initial_rows = o.GetInt("batch_size");
    s->sizing_.min_rows = o.GetInt("min_batch_size");
    s->sizing_.max_rows = o.GetInt("max_batch_size");
    s->sizing_.target_latency_us = o.GetDurationMicros("target_query_time");
    if (s->sizing_.min_rows < 1 || s->sizing_.max_rows < s->sizing_.min_rows) {
      return o.ErrorAt("min_batch_size", "need 1 <= min_batch_size <= max_batch_size");
    }
    s->vacuum_ = o.GetString("vacuum");
    s->state_table_ = o.GetString("state_table");
    if (s->state_table_ == "none") s->state_table_.clear();
    s->statement_timeout_ms_ = o.GetDurationMicros("statement_timeout") / 1000;
    s->connect_timeout_us_ = o.GetDurationMicros("connect_timeout");
    const int64_t parallel = o.GetInt("max_parallel_databases");
    if (parallel < 1) return o.ErrorAt("max_parallel_databases", "must be at least 1");

    const auto& dbs = o.GetJson("databases");
    if (!dbs.is_object() || dbs.empty()) {
      return o.ErrorAt("databases",
                       "expected a mapping of database name -> {dsn, tables, pool_size, "
                       "replica_dsn}");
    }
    for (auto it = dbs.begin(); it != dbs.end(); ++it) {
      const auto& d = it.value();
      if (!d.is_object() || !d.contains("dsn") || !d["dsn"].is_string()) {
        return o.ErrorAt("databases", "database '" + it.key() + "' needs a `dsn`");
      }
      Database db;
      db.name = it.key();
      db.dsn = d["dsn"].get<std::string>();
      if (d.contains("replica_dsn")) {
        if (!d["replica_dsn"].is_string()) {
          return o.ErrorAt("databases",
                           "database '" + it.key() + "': replica_dsn must be a string");
        }
        db.replica_dsn = d["replica_dsn"].get<std::string>();
      }
      if (d.contains("pool_size")) {
        if (!d["pool_size"].is_number_integer() || d["pool_size"].get<int64_t>() < 1) {
          return o.ErrorAt("databases", "database '" + it.key() + "': pool_size must be >= 1");
        }
        db.pool_size = static_cast<int>(d["pool_size"].get<int64_t>());
      }
      if (!d.contains("tables") || !(d["tables"].is_array() || d["tables"].is_string())) {
        return o.ErrorAt("databases", "database '" + it.key() + "' needs `tables: [name, ...]`");
      }
      std::vector<std::string> tables;
      if (d["tables"].is_string()) {
        tables.push_back(d["tables"].get<std::string>());
      } else {
        for (const auto& t : d["tables"]) {
          if (!t.is_string()) return o.ErrorAt("databases", "table names must be strings");
          tables.push_back(t.get<std::string>());
        }
      }
      for (auto& t : tables) {
        TableJob job;
        job.database = db.name;
        job.table = t;
        db.jobs.push_back(s->jobs_.size());
        s->jobs_.push_back(std::move(job));
      }
      s->databases_.push_back(std::move(db));
    }
    s->slots_.assign(std::min<size_t>(static_cast<size_t>(parallel), s->databases_.size()), -1);
    return std::unique_ptr<Source>(std::move(s));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    // Connect to every database now: a bad DSN or a missing table fails before any thread runs.
    for (size_t d = 0; d < databases_.size(); ++d) {
      Database& db = databases_[d];
      db.sizer = std::make_unique<AdaptiveBatchSizer>(sizing_);
      SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
      Status checked = CheckTables(d, conn.get(), "");
      Return(d, std::move(conn));
      SLUICE_RETURN_NOT_OK(checked);
      if (!db.replica_dsn.empty()) {
        SLUICE_ASSIGN_OR_RETURN(db.replica, Connect(d, db.replica_dsn, " (replica)"));
        SLUICE_RETURN_NOT_OK(CheckTables(d, db.replica.get(), " (replica)"));
        Log(LogLevel::kInfo,
            "node '{}': database '{}' is read on the replica {}; rows are locked and deleted on "
            "the primary {}",
            id_, db.name, pg::DescribeDsn(db.replica_dsn), pg::DescribeDsn(db.dsn));
      }
      if (!state_table_.empty() && !ctx_->dry_run()) {
        // Outside the pool: the pool's size bounds the batches in flight.
        SLUICE_ASSIGN_OR_RETURN(db.control, Connect(d, db.dsn, ""));
        SLUICE_RETURN_NOT_OK(CreateStateTable(d));
      }
    }
    for (size_t k = 0; k < slots_.size(); ++k) Activate(k);
    for (size_t k = 0; k < slots_.size(); ++k) {
      committers_.push_back(std::make_unique<Committer>());
      committers_.back()->thread = std::thread([this, k] { CommitLoop(k); });
    }
    return Status::OK();
  }

  int MaxInFlight() const override {
    // One open transaction per batch in flight. Next() reads from a database being archived
    // whose batches in flight leave a pooled connection free; there is one while fewer than
    // (the pools of the databases being archived + the batches still in flight of those
    // finished) are out. Connections held by the committers come back without any ack, so
    // waiting for them cannot deadlock a sink that holds acks until asked to flush.
    int bound = 0;
    for (const auto& db : databases_) bound += db.slot >= 0 ? db.pool_size : db.handed_out;
    return std::max(bound, 1);
  }
  bool ConsumesInput() const override { return true; }

  Result<BatchPtr> Next(uint64_t seq) override {
    SLUICE_RETURN_NOT_OK(CommitError());
    while (true) {
      const int slot = PickSlot();
      if (slot < 0) return BatchPtr{};
      const size_t d = static_cast<size_t>(slots_[static_cast<size_t>(slot)]);
      next_slot_ = static_cast<size_t>(slot) + 1;
      SLUICE_ASSIGN_OR_RETURN(auto batch, NextOfDatabase(d, seq));
      if (batch != nullptr) return batch;
      // Every table of database d is done: another database takes its slot.
      databases_[d].done = true;
      databases_[d].slot = -1;
      slots_[static_cast<size_t>(slot)] = -1;
      Activate(static_cast<size_t>(slot));
    }
  }

  ~ArchiveSource() override { StopCommitters(); }

  Status Commit(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return Status::OK();  // an empty batch
    --databases_[it->second.database].handed_out;
    Committer& c = *committers_[it->second.committer];
    {
      std::lock_guard<std::mutex> lock(commit_mu_);
      c.queue.push_back(std::move(it->second));
    }
    in_flight_.erase(it);
    c.cv.notify_one();
    return CommitError();
  }

  void Abandon(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return;
    InFlight& f = it->second;
    --databases_[f.database].handed_out;
    if (f.conn != nullptr) {
      (void)f.conn->Rollback();  // the rows stay, unlocked; a rerun archives them
      Return(f.database, std::move(f.conn));
    }
    in_flight_.erase(it);
  }

  Status Close() override {
    StopCommitters();
    for (auto& [seq, f] : in_flight_) {
      if (f.conn != nullptr) (void)f.conn->Rollback();
    }
    in_flight_.clear();
    for (auto& db : databases_) {
      db.control.reset();
      db.replica.reset();
    }
    SLUICE_RETURN_NOT_OK(CommitError());
    if (vacuum_ == "none" || ctx_ == nullptr || ctx_->dry_run() || ctx_->cancelled()) {
      return Status::OK();
    }
    for (const auto& job : jobs_) {
      if (job.archived == 0) continue;
      const size_t d = DatabaseIndex(job.database);
      SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
      const int64_t t0 = NowNs();
      auto r = conn->Exec(fmt::format(
          "VACUUM {}{}", vacuum_ == "full" ? "(FULL, ANALYZE) " : "(ANALYZE) ", Quote(job.table)));
      ctx_->stats()->AddPhase("vacuum", NowNs() - t0);
      if (!r.ok()) {
        return r.status().WithContext("node '{}': database '{}': vacuum of '{}'", id_, job.database,
                                      job.table);
      }
      Return(d, std::move(conn));
    }
    return Status::OK();
  }

 private:
  /// Give slot `slot` to the next database not yet archived, if any.
  void Activate(size_t slot) {
    if (next_database_ >= databases_.size()) return;
    const size_t d = next_database_++;
    databases_[d].slot = static_cast<int>(slot);
    slots_[slot] = static_cast<int>(d);
  }

  /// Return the slot to read from next: the first, round-robin from the one after the last
  /// used, whose database has a pooled connection not held by a batch in flight (any occupied
  /// slot when none has); -1 when every database is done.
  int PickSlot() const {
    int fallback = -1;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const size_t k = (next_slot_ + i) % slots_.size();
      if (slots_[k] < 0) continue;
      const Database& db = databases_[static_cast<size_t>(slots_[k])];
      if (db.handed_out < db.pool_size) return static_cast<int>(k);
      if (fallback < 0) fallback = static_cast<int>(k);
    }
    return fallback;
  }

  /// Return the next batch of database `d`, its tables one after another; null when done.
  Result<BatchPtr> NextOfDatabase(size_t d, uint64_t seq) {
    Database& db = databases_[d];
    while (db.next_job < db.jobs.size()) {
      TableJob& job = jobs_[db.jobs[db.next_job]];
      if (!job.recovered) SLUICE_RETURN_NOT_OK(LoadIntents(d, job));
      if (!job.pending.empty()) {
        SLUICE_ASSIGN_OR_RETURN(auto batch, RecoverBatch(d, job, seq));
        if (batch != nullptr) return batch;
        continue;
      }
      auto batch =
          db.replica != nullptr ? ReadBatchViaReplica(d, job, seq) : ReadBatch(d, job, seq);
      if (!batch.ok()) return batch.status();
      if (*batch != nullptr) return batch;
      if (!job.last_ts.empty() && job.pass_rows > 0 && !ctx_->dry_run()) {
        // The bounded reads ran dry: sweep once more from the start of the table, for rows
        // skipped behind the bound (locked elsewhere at the time). A sweep that hands out
        // nothing ends the table.
        job.last_ts.clear();
        job.last_key.clear();
        job.pass_rows = 0;
        continue;
      }
      ++db.next_job;
    }
    return BatchPtr{};
  }

  /// Check that every table of database `d` has the timestamp and key columns, on `conn`.
  Status CheckTables(size_t d, PgConnection* conn, const char* which) {
    for (size_t j : databases_[d].jobs) {
      auto r = conn->ExecParams(fmt::format("SELECT {} , {} FROM {} LIMIT 0", Quote(ts_column_),
                                            Quote(key_column_), Quote(jobs_[j].table)),
                                {});
      if (!r.ok()) {
        return r.status().WithContext("node '{}': database '{}'{} table '{}'", id_,
                                      databases_[d].name, which, jobs_[j].table);
      }
    }
    return Status::OK();
  }

  /// Return the first error of the committer threads (OK while there is none).
  Status CommitError() {
    std::lock_guard<std::mutex> lock(commit_mu_);
    return commit_error_;
  }

  void StopCommitters() {
    {
      std::lock_guard<std::mutex> lock(commit_mu_);
      stopping_ = true;
    }
    for (auto& c : committers_) {
      c->cv.notify_all();
      if (c->thread.joinable()) c->thread.join();
    }
  }

  /// Committer thread `k`: settle its batches in the order their acks arrived. After a failure
  /// (of any committer) the remaining batches roll back (their rows stay for a rerun) and the
  /// run fails.
  void CommitLoop(size_t k) {
    Committer& c = *committers_[k];
    while (true) {
      InFlight f;
      bool failed;
      {
        std::unique_lock<std::mutex> lock(commit_mu_);
        c.cv.wait(lock, [&] { return stopping_ || !c.queue.empty(); });
        if (c.queue.empty()) return;  // stopping, and everything settled
        f = std::move(c.queue.front());
        c.queue.pop_front();
        failed = !commit_error_.ok();
      }
      Status st;
      if (failed) {
        if (f.conn != nullptr) st = f.conn->Rollback();
      } else {
        st = DeleteAndCommit(f);
      }
      if (f.conn != nullptr) Return(f.database, std::move(f.conn));
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(commit_mu_);
        if (commit_error_.ok()) commit_error_ = std::move(st);
      }
    }
  }

  /// Delete the rows of batch `f` in the transaction that locked them, check the count, commit.
  Status DeleteAndCommit(InFlight& f) {
    const Database& db = databases_[f.database];
    const int64_t t0 = NowNs();
    int64_t deleted = 0;
    if (!ctx_->dry_run()) {
      auto r = f.conn->ExecParams(
          fmt::format("DELETE FROM {} WHERE {} = ANY($1)", Quote(f.table), Quote(key_column_)),
          {f.key_array});
      if (!r.ok()) {
        (void)f.conn->Rollback();
        return r.status().WithContext("node '{}': database '{}' table '{}': deleting batch {}", id_,
                                      db.name, f.table, f.batch_number);
      }
      deleted = r->AffectedRows();
      if (deleted != f.rows) {
        (void)f.conn->Rollback();
        return Status::DataLoss(
            "node '{}': database '{}' table '{}': batch {} archived {} rows but the DELETE "
            "matched {}; rolled back, nothing deleted",
            id_, db.name, f.table, f.batch_number, f.rows, deleted);
      }
      if (!f.intent_key.empty()) {
        auto forget = f.conn->ExecParams(
            fmt::format("DELETE FROM {} WHERE table_name = $1 AND first_key = $2",
                        Quote(state_table_)),
            {f.table, f.intent_key});
        if (!forget.ok()) {
          (void)f.conn->Rollback();
          return forget.status().WithContext("node '{}': database '{}': state table '{}'", id_,
                                             db.name, state_table_);
        }
      }
      SLUICE_RETURN_NOT_OK(f.conn->Commit().WithContext("node '{}': committing the delete", id_));
    } else if (f.conn != nullptr) {
      SLUICE_RETURN_NOT_OK(f.conn->Rollback());
    }
    const int64_t delete_ns = NowNs() - t0;
    RecordRequest("delete", delete_ns);
    ctx_->stats()->AddCounter(ctx_->dry_run() ? "rows_would_delete" : "deleted_rows", f.rows);
    Log(LogLevel::kInfo,
        "database={} table={} batch={} records={} bytes={} query_ms={:.1f} delete_ms={:.1f}{}",
        db.name, f.table, f.batch_number, f.rows, f.bytes, f.query_ns / 1e6, delete_ns / 1e6,
        ctx_->dry_run() ? " dry_run=true" : "");
    return Status::OK();
  }

  /// Add one statement's time to its phase and to the node's request-latency histogram.
  void RecordRequest(const char* phase, int64_t nanos) {
    ctx_->stats()->AddPhase(phase, nanos);
    ctx_->stats()->request_latency.Record(nanos);
  }

  size_t DatabaseIndex(const std::string& name) const {
    for (size_t i = 0; i < databases_.size(); ++i) {
      if (databases_[i].name == name) return i;
    }
    return 0;
  }

  /// Take an idle connection of database `d`, or open one while the pool has room; otherwise
  /// wait for a committer to return one. Called from the source and the committer threads.
  Result<std::unique_ptr<PgConnection>> Lease(size_t d) {
    Database& db = databases_[d];
    {
      std::unique_lock<std::mutex> lock(pool_mu_);
      while (true) {
        while (!db.idle.empty()) {
          auto conn = std::move(db.idle.back());
          db.idle.pop_back();
          if (conn->IsHealthy()) return conn;
          --db.open;  // dropped: a fresh one replaces it
        }
        if (db.open < db.pool_size) break;
        if (ctx_ != nullptr && ctx_->cancelled()) {
          return Status::Cancelled("node '{}': cancelled while waiting for a connection", id_);
        }
        pool_cv_.wait_for(lock, std::chrono::milliseconds(100));
      }
      ++db.open;
    }
    auto conn = Connect(d, db.dsn, "");
    if (!conn.ok()) Return(d, nullptr);
    return conn;
  }

  /// Open a new connection to `dsn` of database `d`, with the statement timeout set.
  Result<std::unique_ptr<PgConnection>> Connect(size_t d, const std::string& dsn,
                                                const char* which) {
    auto conn = PgConnection::Connect(dsn, connect_timeout_us_);
    Status st = conn.status();
    if (st.ok() && statement_timeout_ms_ > 0) {
      st = (*conn)->SetStatementTimeout(statement_timeout_ms_);
    }
    if (!st.ok())
      return st.WithContext("node '{}': database '{}'{}", id_, databases_[d].name, which);
    return std::move(*conn);
  }

  /// Give a connection back to the pool; one still in a transaction (or null) is closed.
  void Return(size_t d, std::unique_ptr<PgConnection> conn) {
    {
      std::lock_guard<std::mutex> lock(pool_mu_);
      if (conn != nullptr && !conn->InTransaction()) {
        databases_[d].idle.push_back(std::move(conn));
      } else {
        --databases_[d].open;
      }
    }
    pool_cv_.notify_all();
  }

  /// Return the SELECT of the next page of `job` (keyset paging from its bound) and fill
  /// `params`; `lock` appends FOR UPDATE SKIP LOCKED.
  std::string PageQuery(const TableJob& job, int64_t limit, bool lock, pg::PgParams* params) {
    // Keyset paging: start after the last row of the previous batch, so the index scan does
    // not wade through the entries of rows this run already deleted (they stay in the index
    // until VACUUM). Rows skipped behind the bound (locked by another archiver that then
    // rolled back) are picked up by a sweep from the start when the bounded reads run dry.
    const bool bounded = !job.last_ts.empty();
    *params = {FormatTimestamp(cutoff_us_)};
    if (bounded) {
      params->push_back(job.last_ts);
      params->push_back(job.last_key);
    }
    return fmt::format(
        "SELECT * FROM {0} WHERE {1} < $1::timestamptz{3} ORDER BY {1}, {2} LIMIT {4}{5}",
        Quote(job.table), Quote(ts_column_), Quote(key_column_),
        bounded ? fmt::format(" AND ({}, {}) > ($2::timestamptz, $3)", Quote(ts_column_),
                              Quote(key_column_))
                : "",
        limit, lock ? " FOR UPDATE SKIP LOCKED" : "");
  }

  /// Lock and read the next batch of `job` on the primary; null when the table has no more rows.
  Result<BatchPtr> ReadBatch(size_t d, TableJob& job, uint64_t seq) {
    Database& db = databases_[d];
    SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
    const int64_t limit = db.sizer->read_size();
    std::string sql;
    pg::PgParams params = {FormatTimestamp(cutoff_us_)};
    if (ctx_->dry_run()) {
      // Touch nothing: no locks; page through with the key instead of deleting.
      sql = fmt::format(
          "SELECT * FROM {} WHERE {} < $1::timestamptz{} ORDER BY {} LIMIT {}", Quote(job.table),
          Quote(ts_column_),
          job.dry_last_key.empty() ? "" : fmt::format(" AND {} > $2", Quote(key_column_)),
          Quote(key_column_), limit);
      if (!job.dry_last_key.empty()) params.push_back(job.dry_last_key);
    } else {
      sql = PageQuery(job, limit, /*lock=*/true, &params);
    }
    const int64_t t0 = NowNs();
    if (Status begun = conn->Begin(); !begun.ok()) {
      Return(d, std::move(conn));
      return begun.WithContext("node '{}': database '{}'", id_, job.database);
    }
    auto result = conn->ExecParams(sql, params, pg::PgFormat::kBinary);
    if (!result.ok()) {
      (void)conn->Rollback();
      Return(d, std::move(conn));
      return result.status().WithContext("node '{}': database '{}' table '{}'", id_, job.database,
                                         job.table);
    }
    const int64_t query_ns = NowNs() - t0;
    RecordRequest("query", query_ns);
    if (result->num_rows() == 0) {
      (void)conn->Rollback();
      Return(d, std::move(conn));
      return BatchPtr{};
    }
    db.sizer->Observe(result->num_rows(), query_ns / 1000);
    ctx_->stats()->SetGauge("batch_size_target_rows", static_cast<double>(db.sizer->read_size()));
    const std::string date = UtcDate();
    auto batch = DecodeRows(conn.get(), job, *result, date);
    if (!batch.ok()) {
      (void)conn->Rollback();
      Return(d, std::move(conn));
      return batch.status();
    }
    return Admit(d, job, std::move(conn), std::move(*batch), query_ns, seq, date, nullptr,
                 /*advance_bound=*/true);
  }

  /// Read the next page of `job` on the replica (no locks), then lock exactly those keys on the
  /// primary in the batch's transaction and keep the rows whose keys were locked: rows deleted,
  /// locked or moved past the cutoff on the primary since are left out. Pages of which no row
  /// could be locked are passed over. Null when the replica has no more rows.
  Result<BatchPtr> ReadBatchViaReplica(size_t d, TableJob& job, uint64_t seq) {
    Database& db = databases_[d];
    const std::string date = UtcDate();
    while (true) {
      if (!db.replica->IsHealthy()) {
        SLUICE_ASSIGN_OR_RETURN(db.replica, Connect(d, db.replica_dsn, " (replica)"));
      }
      pg::PgParams params;
      const std::string sql = PageQuery(job, db.sizer->read_size(), /*lock=*/false, &params);
      const int64_t t0 = NowNs();
      auto result = db.replica->ExecParams(sql, params, pg::PgFormat::kBinary);
      if (!result.ok()) {
        return result.status().WithContext("node '{}': database '{}' (replica) table '{}'", id_,
                                           job.database, job.table);
      }
      const int64_t read_ns = NowNs() - t0;
      if (result->num_rows() == 0) {
        RecordRequest("query", read_ns);
        return BatchPtr{};
      }
      db.sizer->Observe(result->num_rows(), read_ns / 1000);
      ctx_->stats()->SetGauge("batch_size_target_rows", static_cast<double>(db.sizer->read_size()));
      SLUICE_ASSIGN_OR_RETURN(BatchPtr batch, DecodeRows(db.replica.get(), job, *result, date));
      const Plan& plan = plans_[job.database + "." + job.table];
      const int64_t rows = batch->num_rows();
      // The bound moves past the whole page, locked or not: the sweep retries the rest.
      job.last_ts = FormatTimestamp(batch->column(plan.ts_index).GetInt64(rows - 1));
      job.last_key = KeyText(batch->column(plan.key_index), rows - 1);
      if (ctx_->dry_run()) {
        RecordRequest("query", read_ns);
        return Admit(d, job, nullptr, std::move(batch), read_ns, seq, date, nullptr,
                     /*advance_bound=*/false);
      }

      SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
      const int64_t t1 = NowNs();
      Status begun = conn->Begin();
      auto locked =
          begun.ok()
              ? conn->ExecParams(
                    fmt::format("SELECT {1} FROM {0} WHERE {1} = ANY($1) AND {2} < $2::timestamptz "
                                "FOR UPDATE SKIP LOCKED",
                                Quote(job.table), Quote(key_column_), Quote(ts_column_)),
                    {KeyArrayLiteral(batch->column(plan.key_index)), FormatTimestamp(cutoff_us_)})
              : Result<pg::PgResult>(begun);
      const int64_t query_ns = read_ns + (NowNs() - t1);
      RecordRequest("query", query_ns);
      if (!locked.ok()) {
        (void)conn->Rollback();
        Return(d, std::move(conn));
        return locked.status().WithContext("node '{}': database '{}' table '{}': locking rows", id_,
                                           job.database, job.table);
      }
      std::vector<uint8_t> mask;
      const int64_t kept = MaskLockedKeys(batch->column(plan.key_index), *locked, &mask);
      if (kept < rows) ctx_->stats()->AddCounter("replica_rows_not_locked", rows - kept);
      if (kept == 0) {
        (void)conn->Rollback();
        Return(d, std::move(conn));
        continue;
      }
      if (kept < rows) batch = batch->Filter(mask.data());
      return Admit(d, job, std::move(conn), std::move(batch), query_ns, seq, date, nullptr,
                   /*advance_bound=*/false);
    }
  }

  /// Return row `i` of the key column as text (as PostgreSQL prints it).
  static std::string KeyText(const Column& key, int64_t i) {
    return key.type() == TypeId::kInt64 ? std::to_string(key.GetInt64(i))
                                        : std::string(key.GetView(i));
  }

  /// Decode the rows of `result` (read in binary on `conn`) into a batch of `job`, with the
  /// metadata columns _database, _table and _date.
  Result<BatchPtr> DecodeRows(PgConnection* conn, const TableJob& job, const pg::PgResult& result,
                              const std::string& date) {
    const int rows = result.num_rows();
    // Decode; cache the column plan per table.
    auto& plan = plans_[job.database + "." + job.table];
    if (plan.schema == nullptr) {
      SLUICE_ASSIGN_OR_RETURN(auto columns, pg::ResolveColumns(conn, result));
      std::vector<Field> fields;
      for (const auto& c : columns) {
        if (!c.codec) {
          plan = Plan{};
          return Status::NotImplemented(
              "node '{}': table '{}' column '{}' has type {} that sluice cannot read yet", id_,
              job.table, c.name, c.type_name);
        }
        plan.codecs.push_back(*c.codec);
        fields.push_back({c.name, pg::DefaultTypeFor(*c.codec), true});
        if (c.name == key_column_) plan.key_index = static_cast<int>(fields.size()) - 1;
        if (c.name == ts_column_) plan.ts_index = static_cast<int>(fields.size()) - 1;
      }
      if (plan.ts_index < 0 || fields[plan.ts_index].type != TypeId::kTimestamp) {
        plan = Plan{};
        return Status::ConfigError(
            "node '{}': table '{}' has no timestamp column '{}' (set defaults.timestamp_column "
            "to a timestamptz or timestamp column)",
            id_, job.table, ts_column_);
      }
      if (plan.key_index < 0) {
        plan = Plan{};
        return Status::ConfigError("node '{}': table '{}' has no key column '{}'", id_, job.table,
                                   key_column_);
      }
      plan.data_schema = MakeSchema(fields);
      fields.push_back({"_database", TypeId::kString, false});
      fields.push_back({"_table", TypeId::kString, false});
      fields.push_back({"_date", TypeId::kString, false});
      plan.schema = MakeSchema(std::move(fields));
    }
    std::vector<ColumnBuilder> builders;
    builders.reserve(plan.data_schema->fields().size());
    for (const auto& f : plan.data_schema->fields()) builders.emplace_back(f.type, rows);
    SLUICE_RETURN_NOT_OK(pg::AppendResultRows(result, plan.codecs, &builders, &scratch_));
    std::vector<Column> cols;
    cols.reserve(plan.schema->fields().size());
    for (auto& b : builders) cols.push_back(b.Finish());
    for (const std::string* meta : {&job.database, &job.table, &date}) {
      ColumnBuilder col(TypeId::kString, rows);
      for (int i = 0; i < rows; ++i) col.AppendString(*meta);
      cols.push_back(col.Finish());
    }
    return Batch::MakeUnchecked(plan.schema, std::move(cols), rows);
  }

  /// Hand `batch` (rows locked in the open transaction on `conn`) downstream as batch `seq`:
  /// record it in the state table unless it is the redo of `intent`, and keep the transaction
  /// in flight until its ack. `advance_bound` moves the keyset bound to its last row. On error
  /// the transaction is rolled back.
  Result<BatchPtr> Admit(size_t d, TableJob& job, std::unique_ptr<PgConnection> conn,
                         BatchPtr batch, int64_t query_ns, uint64_t seq, const std::string& date,
                         const Intent* intent, bool advance_bound) {
    Database& db = databases_[d];
    const Plan& plan = plans_[job.database + "." + job.table];
    const int64_t rows = batch->num_rows();
    const Column& key = batch->column(plan.key_index);
    std::string keys = KeyArrayLiteral(key);
    std::string intent_key;
    if (ctx_->dry_run()) {
      job.dry_last_key = KeyText(key, rows - 1);
    } else {
      if (advance_bound) {
        job.last_ts = FormatTimestamp(batch->column(plan.ts_index).GetInt64(rows - 1));
        job.last_key = KeyText(key, rows - 1);
      }
      if (!state_table_.empty()) {
        intent_key = intent != nullptr ? intent->first_key : KeyText(key, 0);
        if (intent == nullptr) {
          Status st = RecordIntent(d, job, intent_key, date, keys, rows);
          if (!st.ok()) {
            (void)conn->Rollback();
            Return(d, std::move(conn));
            return st;
          }
        }
      }
    }
    job.archived += rows;
    job.pass_rows += rows;
    ++db.handed_out;
    InFlight f;
    f.database = d;
    f.committer = static_cast<size_t>(db.slot);
    f.table = job.table;
    f.conn = std::move(conn);
    f.key_array = std::move(keys);
    f.intent_key = std::move(intent_key);
    f.rows = rows;
    f.bytes = batch->ByteSize();
    f.query_ns = query_ns;
    f.batch_number = ++batches_;
    in_flight_.emplace(seq, std::move(f));
    return batch;
  }

  /// Create the state table in database `d` unless it exists.
  Status CreateStateTable(size_t d) {
    auto r = databases_[d].control->Exec(fmt::format(
        "CREATE TABLE IF NOT EXISTS {} (table_name text NOT NULL, first_key text NOT NULL, "
        "batch_date text NOT NULL, rows bigint NOT NULL, keys text NOT NULL, node text NOT NULL, "
        "created_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (table_name, first_key))",
        Quote(state_table_)));
    // Two archivers starting at once may race on the CREATE: the loser sees a duplicate.
    const std::string state = r.ok() ? "" : pg::SqlState(r.status());
    if (!r.ok() && state != "23505" && state != "42P07") {
      return r.status().WithContext(
          "node '{}': database '{}': creating the state table '{}' (grant CREATE, create it "
          "beforehand, or set state_table: none)",
          id_, databases_[d].name, state_table_);
    }
    return Status::OK();
  }

  /// Record a new batch's keys, committed, before the batch goes downstream.
  Status RecordIntent(size_t d, const TableJob& job, const std::string& first_key,
                      const std::string& date, const std::string& keys, int64_t rows) {
    auto r = databases_[d].control->ExecParams(
        fmt::format("INSERT INTO {} (table_name, first_key, batch_date, rows, keys, node) VALUES "
                    "($1, $2, $3, $4, $5, $6) ON CONFLICT (table_name, first_key) DO UPDATE SET "
                    "batch_date = EXCLUDED.batch_date, rows = EXCLUDED.rows, keys = EXCLUDED.keys",
                    Quote(state_table_)),
        {job.table, first_key, date, std::to_string(rows), keys, id_});
    if (!r.ok()) {
      return r.status().WithContext("node '{}': database '{}': recording a batch in '{}'", id_,
                                    job.database, state_table_);
    }
    return Status::OK();
  }

  /// Look up the batches a killed run left recorded and not deleted, oldest first.
  Status LoadIntents(size_t d, TableJob& job) {
    job.recovered = true;
    if (state_table_.empty() || ctx_->dry_run()) return Status::OK();
    auto r = databases_[d].control->ExecParams(
        fmt::format("SELECT first_key, batch_date, keys, rows FROM {} WHERE table_name = $1 "
                    "ORDER BY created_at, first_key",
                    Quote(state_table_)),
        {job.table});
    if (!r.ok()) {
      return r.status().WithContext("node '{}': database '{}': reading '{}'", id_, job.database,
                                    state_table_);
    }
    for (int i = 0; i < r->num_rows(); ++i) {
      Intent intent;
      intent.first_key = std::string(r->Value(i, 0));
      intent.date = std::string(r->Value(i, 1));
      intent.keys = std::string(r->Value(i, 2));
      intent.rows = std::stoll(std::string(r->Value(i, 3)));
      job.pending.push_back(std::move(intent));
    }
    if (!job.pending.empty()) {
      Log(LogLevel::kWarn,
          "node '{}': database={} table={}: redoing {} batch(es) an earlier run left unfinished",
          id_, job.database, job.table, job.pending.size());
    }
    return Status::OK();
  }

  /// Lock exactly the rows of the oldest unfinished batch and hand them on as that batch again
  /// (same rows, order and date: the same object key). Null when there was nothing to redo.
  Result<BatchPtr> RecoverBatch(size_t d, TableJob& job, uint64_t seq) {
    Intent intent = std::move(job.pending.front());
    job.pending.pop_front();
    SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
    const int64_t t0 = NowNs();
    if (Status begun = conn->Begin(); !begun.ok()) {
      Return(d, std::move(conn));
      return begun.WithContext("node '{}': database '{}'", id_, job.database);
    }
    // Wait for rows locked elsewhere: another archiver redoing the same batch (it deletes them:
    // we then read none and forget the record), or a backend of the killed run that has not yet
    // noticed its client is gone (it rolls back: we then read them). Skipping them instead could
    // let a later read archive them under another key.
    Status locked = conn->Exec("SET LOCAL lock_timeout = '60s'").status();
    auto result = locked.ok()
                      ? conn->ExecParams(
                            fmt::format("SELECT * FROM {0} WHERE {2} = ANY($1) ORDER BY {1}, {2} "
                                        "FOR UPDATE",
                                        Quote(job.table), Quote(ts_column_), Quote(key_column_)),
                            {intent.keys}, pg::PgFormat::kBinary)
                      : Result<pg::PgResult>(locked);
    if (!result.ok()) {
      (void)conn->Rollback();
      Return(d, std::move(conn));
      return result.status().WithContext("node '{}': database '{}' table '{}': redoing batch {}",
                                         id_, job.database, job.table, intent.first_key);
    }
    const int64_t query_ns = NowNs() - t0;
    RecordRequest("query", query_ns);
    if (result->num_rows() == 0) {
      // Finished elsewhere (or deleted by hand): forget the record.
      (void)conn->Rollback();
      Return(d, std::move(conn));
      auto forget = databases_[d].control->ExecParams(
          fmt::format("DELETE FROM {} WHERE table_name = $1 AND first_key = $2",
                      Quote(state_table_)),
          {job.table, intent.first_key});
      return forget.ok() ? BatchPtr{} : Result<BatchPtr>(forget.status());
    }
    if (result->num_rows() != intent.rows) {
      Log(LogLevel::kWarn,
          "node '{}': table={} batch {}: {} of its {} rows remain; its object is rewritten with "
          "those",
          id_, job.table, intent.first_key, result->num_rows(), intent.rows);
    }
    ctx_->stats()->AddCounter("redone_batches", 1);
    auto batch = DecodeRows(conn.get(), job, *result, intent.date);
    if (!batch.ok()) {
      (void)conn->Rollback();
      Return(d, std::move(conn));
      return batch.status();
    }
    return Admit(d, job, std::move(conn), std::move(*batch), query_ns, seq, intent.date, &intent,
                 /*advance_bound=*/false);
  }

  struct Plan {
    SchemaPtr schema;       // data columns + _database + _table
    SchemaPtr data_schema;  // as read
    std::vector<pg::PgCodec> codecs;
    int key_index = -1;
    int ts_index = -1;
  };

  std::string id_;
  NodeContext* ctx_ = nullptr;
  std::string ts_column_;
  std::string key_column_;
  int64_t cutoff_us_ = 0;
  std::string vacuum_;
  std::string state_table_;  // "" when off
  int64_t statement_timeout_ms_ = 0;
  int64_t connect_timeout_us_ = 10'000'000;
  AdaptiveBatchSizerOptions sizing_;  // each database adapts its own size from these
  std::vector<Database> databases_;
  std::vector<TableJob> jobs_;
  // Source thread only:
  std::vector<int> slots_;    // slot -> the database being archived in it, or -1
  size_t next_slot_ = 0;      // where the round-robin of Next() continues
  size_t next_database_ = 0;  // the next database to archive
  std::map<uint64_t, InFlight> in_flight_;
  std::map<std::string, Plan> plans_;
  std::string scratch_;
  uint64_t batches_ = 0;

  std::mutex pool_mu_;  // guards databases_[*].idle and .open
  std::condition_variable pool_cv_;

  std::vector<std::unique_ptr<Committer>> committers_;  // one per slot
  std::mutex commit_mu_;
  bool stopping_ = false;  // guarded by commit_mu_
  Status commit_error_;    // guarded by commit_mu_: the first failure
};

}  // namespace

void RegisterPostgresArchiveNode(NodeRegistry* registry) {
  registry->AddSource(
      "postgres_archive",
      "Archive rows older than a cutoff out of PostgreSQL tables: lock a batch (FOR UPDATE SKIP "
      "LOCKED), hand it downstream, and delete it in the same transaction once every sink made "
      "it durable.",
      {
          {"databases",
           OptionType::kMap,
           "",
           "Database name -> {dsn, tables: [..], pool_size, replica_dsn}. With replica_dsn the "
           "batches are read (unlocked) on that replica, then locked, re-checked against the "
           "cutoff and deleted on the primary: rows the replica does not have yet are archived "
           "by a later run, and a row updated on the primary after the replica read it is "
           "archived as the replica saw it (fine for append-only tables).",
           true,
           {}},
          {"max_parallel_databases",
           OptionType::kInt,
           "1",
           "Databases archived at once (each with its own pool); their batches interleave. The "
           "tables of one database go one after another.",
           false,
           {}},
          {"defaults",
           OptionType::kMap,
           "",
           "Shared by every table: timestamp_column (created_at), key_column (id), cutoff (an "
           "age like 90d, or a timestamp).",
           false,
           {}},
          {"batch_size", OptionType::kInt, "10000", "Rows in the first batch.", false, {}},
          {"min_batch_size", OptionType::kInt, "1000", "Smallest adaptive batch.", false, {}},
          {"max_batch_size", OptionType::kInt, "50000", "Largest adaptive batch.", false, {}},
          {"target_query_time",
           OptionType::kDuration,
           "2s",
           "Batch sizes adapt (AIMD) toward this SELECT time.",
           false,
           {}},
          {"vacuum",
           OptionType::kEnum,
           "analyze",
           "After the run, per table archived from.",
           false,
           {"analyze", "full", "none"}},
          {"statement_timeout", OptionType::kDuration, "0s", "Per statement; 0 = none.", false, {}},
          {"connect_timeout", OptionType::kDuration, "10s", "Per connection attempt.", false, {}},
          {"state_table",
           OptionType::kString,
           "sluice_archive_batches",
           "Table (created in each database) recording each batch's keys until its DELETE "
           "commits, so a rerun after a crash rewrites the same objects instead of duplicating "
           "rows; `none` turns it off (at-least-once after a crash).",
           false,
           {}},
      },
      &ArchiveSource::Make);
}

}  // namespace sluice
