// The `postgres_archive` source: the reading and deleting half of the table archiver.
//
// One batch = one transaction on its own pooled connection:
//   BEGIN; SELECT ctid, key, ts, <columns> FROM t WHERE ts < cutoff [AND (ts, ctid) > bound]
//          ORDER BY ts, ctid LIMIT n FOR UPDATE SKIP LOCKED
// ... the batch travels to the sinks (encode, upload, verify) ...
//   Commit(seq): DELETE FROM t WHERE ctid = ANY(ctids) AND ts < cutoff; deleted == read; COMMIT
//   Abandon(seq): ROLLBACK (the rows stay, unlocked, for a rerun)
// Rows are identified by their physical id (ctid), which cannot change while the batch's
// transaction holds their row locks, so the DELETE removes exactly the rows that were read —
// whatever the key column holds (NULLs, duplicates, any type). It repeats the cutoff, so a
// row can only go if it is old. A second archiver skips locked rows, so no row is archived
// twice; a crash at any point rolls back.
//
// Exactly once across crashes: before a batch goes downstream its rows (ctids and keys) are
// recorded, committed, in a state table (archive_state.h); the DELETE removes that record in
// the batch's transaction. A run killed after an object was written but before its DELETE
// committed leaves the record; the next run first re-locks exactly those rows (same ctid, same
// key, still old), in the same order, with the same date and batch id, so the object is
// rewritten under the same key instead of a second copy being made.
//
// Deletes and commits run on committer threads (archive_committer.h), so one batch's DELETE
// and COMMIT (an fsync) overlap the next batch's SELECT.
//
// With a `replica_dsn`, the page is read without locks on the replica; then, in the batch's
// transaction on the primary, exactly those keys are locked (FOR UPDATE SKIP LOCKED, still
// older than the cutoff) and only the rows whose keys were locked go downstream. Rows are
// matched by key there, so a replica needs a unique, non-null key column (checked at Open).
#include "sluice/connectors/postgres/archive_source.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <random>
#include <utility>

#include <nlohmann/json.hpp>

#include "sluice/connectors/postgres/archive_committer.h"
#include "sluice/connectors/postgres/archive_lanes.h"
#include "sluice/connectors/postgres/archive_options.h"
#include "sluice/connectors/postgres/archive_rows.h"
#include "sluice/connectors/postgres/archive_state.h"
#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/pg_pool.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice::pg_archive {

namespace {

using pg::PgConnection;
using pg::PgLease;
using pg_internal::QuoteIdentifier;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// One table of one database, as the run goes.
struct TableJob {
  size_t database = 0;
  TableSettings settings;
  std::string quoted;  // the table as SQL names it
  int64_t archived = 0;
  std::string last_ts;         // the (timestamp, ctid) of the last row read: the keyset bound
  std::string last_ctid;       // ("" before the first read of a pass)
  int64_t pass_rows = 0;       // rows handed out since the read started from the table's start
  std::deque<Intent> pending;  // those batches, oldest first
  std::unique_ptr<AdaptiveBatchSizer> sizer;
  TablePlan plan;  // how rows are selected and decoded (made at Open)
  // This run holds the table's advisory lock: no other archiver reads it, so each batch is
  // deleted as it is read (DeleteQuery) instead of being locked, then deleted at its ack.
  bool exclusive = false;
  bool locked = false;  // this run holds the table's advisory lock
  // While exclusive: the threads reading its timestamp ranges (null before the first read).
  std::unique_ptr<LaneReader> lanes;
};

struct Database {
  DatabaseSettings settings;
  std::shared_ptr<pg::PgPool> pool;       // the primary: batches, deletes, VACUUM
  std::unique_ptr<PgConnection> control;  // autocommit: the state table (source thread only)
  std::unique_ptr<PgConnection> replica;  // autocommit: unlocked reads (source thread only)
  // Source thread only:
  std::vector<size_t> jobs;  // its tables (indexes into jobs_), archived in this order
  size_t next_job = 0;
  int slot = -1;       // its committer slot while it is being archived, else -1
  int handed_out = 0;  // its batches in flight: handed out, neither committed nor abandoned
};

class ArchiveSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Make(const NodeOptions& o) {
    auto s = std::unique_ptr<ArchiveSource>(new ArchiveSource());
    s->id_ = o.id();
    SLUICE_ASSIGN_OR_RETURN(s->options_, ParseArchiveOptions(o, NowMicros()));
    for (auto& db_settings : s->options_.databases) {
      Database db;
      db.settings = db_settings;
      for (const auto& t : db_settings.tables) {
        TableJob job;
        job.database = s->databases_.size();
        job.settings = t;
        job.quoted = QuoteIdentifier(t.table);
        db.jobs.push_back(s->jobs_.size());
        s->jobs_.push_back(std::move(job));
      }
      s->databases_.push_back(std::move(db));
    }
    s->slots_.assign(std::min<size_t>(static_cast<size_t>(s->options_.max_parallel_databases),
                                      s->databases_.size()),
                     -1);
    if (!s->options_.state_table.empty()) {
      s->state_ = std::make_unique<StateTable>(s->options_.state_table, s->id_);
    }
    return std::unique_ptr<Source>(std::move(s));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    run_token_ = fmt::format("{:06x}", std::random_device{}() & 0xffffff);
    // Connect to every database and plan every table now: a bad DSN, a missing table or
    // column fails before any thread runs or any row is locked.
    for (size_t d = 0; d < databases_.size(); ++d) {
      Database& db = databases_[d];
      pg::PgPoolOptions pool_options;
      pool_options.max_size = db.settings.pool_size;
      pool_options.connect_timeout_us = options_.connect_timeout_us;
      // Waits are retried by Lease, which notices a cancelled run or a stopping lane between.
      pool_options.acquire_timeout_us = 200'000;
      pool_options.on_connect = [this](PgConnection* conn) { return Prepare(conn); };
      auto pool = pg::PgPool::Make(db.settings.dsn, pool_options);
      if (!pool.ok())
        return pool.status().WithContext("node '{}': database '{}'", id_, db.settings.name);
      db.pool = std::move(*pool);
      SLUICE_ASSIGN_OR_RETURN(PgLease conn, Lease(d));
      for (size_t j : db.jobs) {
        auto plan = PlanTable(conn.get(), jobs_[j].quoted, jobs_[j].settings,
                              !db.settings.replica_dsn.empty());
        if (!plan.ok()) {
          return plan.status().WithContext("node '{}': database '{}' table '{}'", id_,
                                           db.settings.name, jobs_[j].settings.table);
        }
        jobs_[j].plan = std::move(*plan);
      }
      if (!db.settings.replica_dsn.empty()) {
        SLUICE_ASSIGN_OR_RETURN(db.replica, Connect(d, db.settings.replica_dsn, " (replica)"));
        for (size_t j : db.jobs) {
          auto checked = db.replica->Exec(
              fmt::format("SELECT {} FROM {} LIMIT 0", jobs_[j].plan.select_list, jobs_[j].quoted));
          if (!checked.ok()) {
            return checked.status().WithContext("node '{}': database '{}' (replica) table '{}'",
                                                id_, db.settings.name, jobs_[j].settings.table);
          }
        }
        Log(LogLevel::kInfo,
            "node '{}': database '{}' is read on the replica {}; rows are locked and deleted on "
            "the primary {}",
            id_, db.settings.name, pg::DescribeDsn(db.settings.replica_dsn),
            pg::DescribeDsn(db.settings.dsn));
      }
      if (!ctx_->dry_run()) {
        // The state table and the tables' advisory locks, outside the pool: the pool's size
        // bounds the batches in flight.
        SLUICE_ASSIGN_OR_RETURN(db.control, Connect(d, db.settings.dsn, ""));
        if (state_ != nullptr) {
          if (Status made = state_->Create(db.control.get()); !made.ok()) {
            return made.WithContext("node '{}': database '{}'", id_, db.settings.name);
          }
        }
      }
    }
    for (size_t k = 0; k < slots_.size(); ++k) Activate(k);
    committer_ = std::make_unique<Committer>(slots_.size(),
                                             [this](InFlight& f) { return DeleteAndCommit(f); });
    return Status::OK();
  }

  int MaxInFlight() const override {
    // One open transaction per batch in flight. Next() reads from a database being archived
    // whose batches in flight leave a pooled connection free; there is one while fewer than
    // (the pools of the databases being archived + the batches still in flight of those
    // finished) are out. Connections held by the committers come back without any ack, so
    // waiting for them cannot deadlock a sink that holds acks until asked to flush.
    int bound = 0;
    for (const auto& db : databases_) bound += db.slot >= 0 ? InFlightLimit(db) : db.handed_out;
    return std::max(bound, 1);
  }

  /// Return how many batches of `db` may be out at once: its pool, less the connections its
  /// read lanes may hold beyond one (a lane holds one while reading or with a page read ahead),
  /// so that while fewer are out a lane always has a connection to read with.
  int InFlightLimit(const Database& db) const {
    const int lanes = std::max(1, std::min(options_.read_lanes, db.settings.pool_size - 1));
    return db.settings.pool_size - (lanes - 1);
  }
  bool ConsumesInput() const override { return true; }

  Result<BatchPtr> Next(uint64_t seq) override {
    if (committer_ != nullptr) SLUICE_RETURN_NOT_OK(committer_->error());
    while (true) {
      const int slot = PickSlot();
      if (slot == -1) return BatchPtr{};
      // Every database being archived has all the batches out it may: the engine's bound
      // shrank while this call finished another database. Reading now could wait for a
      // connection that only an ack gives back, and acks need this thread: hand out nothing
      // (an empty batch, settled at once) so the engine waits for acks instead.
      if (slot == -2) return Batch::MakeUnchecked(MakeSchema({}), {}, 0);
      const size_t d = static_cast<size_t>(slots_[static_cast<size_t>(slot)]);
      next_slot_ = static_cast<size_t>(slot) + 1;
      SLUICE_ASSIGN_OR_RETURN(auto batch, NextOfDatabase(d, seq));
      if (batch != nullptr) return batch;
      // Every table of database d is done: another database takes its slot.
      databases_[d].slot = -1;
      slots_[static_cast<size_t>(slot)] = -1;
      Activate(static_cast<size_t>(slot));
    }
  }

  ~ArchiveSource() override {
    in_flight_.clear();  // their connections close (rolled back), so no lane waits for one
    for (auto& job : jobs_) job.lanes.reset();
    if (committer_ != nullptr) committer_->Stop();
  }

  Status Commit(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return Status::OK();  // an empty batch
    --databases_[it->second.database].handed_out;
    committer_->Submit(std::move(it->second));
    in_flight_.erase(it);
    return committer_->error();
  }

  void Abandon(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return;
    InFlight& f = it->second;
    --databases_[f.database].handed_out;
    if (f.conn) (void)f.conn->Rollback();  // the rows stay, unlocked; a rerun archives them
    in_flight_.erase(it);
  }

  Status Close() override {
    for (auto& job : jobs_) job.lanes.reset();  // pages read and not handed out roll back
    if (committer_ != nullptr) committer_->Stop();
    for (auto& [seq, f] : in_flight_) {
      if (f.conn) (void)f.conn->Rollback();
    }
    in_flight_.clear();
    for (auto& db : databases_) {
      db.control.reset();
      db.replica.reset();
    }
    if (committer_ != nullptr) SLUICE_RETURN_NOT_OK(committer_->error());
    if (ctx_ == nullptr || ctx_->dry_run() || ctx_->cancelled()) return Status::OK();
    for (const auto& job : jobs_) {
      if (job.archived == 0 || job.settings.vacuum == "none") continue;
      SLUICE_ASSIGN_OR_RETURN(PgLease conn, Lease(job.database));
      const int64_t t0 = NowNs();
      auto r = conn->Exec(fmt::format(
          "VACUUM {}{}", job.settings.vacuum == "full" ? "(FULL, ANALYZE) " : "(ANALYZE) ",
          job.quoted));
      ctx_->stats()->AddPhase("vacuum", NowNs() - t0);
      if (!r.ok()) {
        return r.status().WithContext("node '{}': database '{}': vacuum of '{}'", id_,
                                      databases_[job.database].settings.name, job.settings.table);
      }
    }
    return Status::OK();
  }

 private:
  /// Set up a new connection: exact text output for every type, and the statement timeout.
  Status Prepare(PgConnection* conn) {
    SLUICE_RETURN_NOT_OK(pg::ApplyExactTextSettings(conn));
    // Text forms of timestamptz values (a key, a range, an array) and the comparison of a
    // `timestamp` column with the cutoff depend on the session's zone: pin it, so that a rerun
    // reads a redone batch exactly as the killed run did, whatever PGTZ or role defaults say.
    SLUICE_RETURN_NOT_OK(conn->Exec("SET TimeZone = 'UTC'").status());
    if (options_.statement_timeout_ms > 0) {
      SLUICE_RETURN_NOT_OK(conn->SetStatementTimeout(options_.statement_timeout_ms));
    }
    return Status::OK();
  }

  /// Give slot `slot` to the next database not yet archived, if any.
  void Activate(size_t slot) {
    if (next_database_ >= databases_.size()) return;
    const size_t d = next_database_++;
    databases_[d].slot = static_cast<int>(slot);
    slots_[slot] = static_cast<int>(d);
  }

  /// Return the slot to read from next: the first, round-robin from the one after the last
  /// used, whose database has fewer batches out than InFlightLimit; -2 when every database
  /// being archived is at its limit; -1 when every database is done.
  int PickSlot() const {
    int full = -1;
    for (size_t i = 0; i < slots_.size(); ++i) {
      const size_t k = (next_slot_ + i) % slots_.size();
      if (slots_[k] < 0) continue;
      const Database& db = databases_[static_cast<size_t>(slots_[k])];
      if (db.handed_out < InFlightLimit(db)) return static_cast<int>(k);
      full = -2;
    }
    return full;
  }

  /// Return the next batch of database `d`, its tables one after another; null when done.
  Result<BatchPtr> NextOfDatabase(size_t d, uint64_t seq) {
    Database& db = databases_[d];
    while (db.next_job < db.jobs.size()) {
      TableJob& job = jobs_[db.jobs[db.next_job]];
      if (job.sizer == nullptr) {
        job.sizer = std::make_unique<AdaptiveBatchSizer>(job.settings.sizing);
        SLUICE_RETURN_NOT_OK(ClaimTable(job));
        // The unfinished batches in the state table are a dead run's only when no live run
        // holds the table (a run's advisory lock ends with its session): redo them then.
        if (job.locked) SLUICE_RETURN_NOT_OK(LoadIntents(job));
        // Redone batches stay locked while in flight, and a delete-as-you-read page could take
        // their rows and wait for them: a run that redoes batches locks the pages it reads
        // (keeping the advisory lock, so no other run takes the table meanwhile).
        job.exclusive = job.locked && job.pending.empty() && db.replica == nullptr;
      }
      if (!job.pending.empty()) {
        SLUICE_ASSIGN_OR_RETURN(auto batch, RecoverBatch(job, seq));
        if (batch != nullptr) return batch;
        continue;
      }
      auto batch = db.replica != nullptr ? ReadBatchViaReplica(job, seq) : ReadBatch(job, seq);
      if (!batch.ok()) return batch.status();
      if (*batch != nullptr) return batch;
      if (!job.last_ts.empty() && job.pass_rows > 0 && !ctx_->dry_run() && !job.exclusive) {
        // The bounded reads ran dry: sweep once more from the start of the table, for rows
        // skipped behind the bound (locked elsewhere at the time). A sweep that hands out
        // nothing ends the table.
        job.last_ts.clear();
        job.last_ctid.clear();
        job.pass_rows = 0;
        continue;
      }
      ReleaseTable(job);
      ++db.next_job;
    }
    return BatchPtr{};
  }

  /// Take the table's advisory lock on the control connection, if no other archiver holds it:
  /// then this run redoes what a dead run left, and (without a replica) reads the table alone,
  /// deleting each batch as it reads it. Otherwise (or under --dry-run) batches are locked with
  /// FOR UPDATE SKIP LOCKED, which lets several archivers share a table.
  Status ClaimTable(TableJob& job) {
    Database& db = databases_[job.database];
    if (ctx_->dry_run() || db.control == nullptr) return Status::OK();
    auto r = db.control->ExecParams(
        "SELECT pg_try_advisory_lock((hashtext('sluice_archive')::bigint << 32) | "
        "$1::regclass::oid::bigint)",
        {job.quoted});
    if (!r.ok()) {
      return r.status().WithContext("node '{}': database '{}': advisory lock on '{}'", id_,
                                    db.settings.name, job.settings.table);
    }
    job.locked = r->Value(0, 0) == "t";
    if (!job.locked) {
      Log(LogLevel::kInfo,
          "node '{}': another archiver is reading table '{}'; this run takes the rows it does "
          "not hold (FOR UPDATE SKIP LOCKED)",
          id_, job.settings.table);
    }
    return Status::OK();
  }

  /// Give the table's advisory lock back once the table is read to the end.
  void ReleaseTable(TableJob& job) {
    job.exclusive = false;
    if (!job.locked) return;
    job.locked = false;
    (void)databases_[job.database].control->ExecParams(
        "SELECT pg_advisory_unlock((hashtext('sluice_archive')::bigint << 32) | "
        "$1::regclass::oid::bigint)",
        {job.quoted});
  }

  /// Delete the rows of batch `f` in the transaction that locked them, check the count, forget
  /// its state record, commit. Runs on a committer thread.
  Status DeleteAndCommit(InFlight& f) {
    const TableJob& job = jobs_[f.job];
    const std::string& db_name = databases_[f.database].settings.name;
    const int64_t t0 = NowNs();
    if (!ctx_->dry_run()) {
      auto fail = [&](Status st) {
        (void)f.conn->Rollback();
        return st;
      };
      if (!f.deleted) {  // else the statement that read the rows deleted them
        auto r = f.conn->ExecParams(
            fmt::format("DELETE FROM {} WHERE ctid = ANY($1::tid[]) AND {} < $2::timestamptz",
                        job.quoted, job.plan.quoted_ts),
            {f.ctids, FormatTimestamp(job.settings.cutoff_us)});
        if (!r.ok()) {
          return fail(
              r.status().WithContext("node '{}': database '{}' table '{}': deleting batch {}", id_,
                                     db_name, job.settings.table, f.batch_id));
        }
        if (r->AffectedRows() != f.rows) {
          return fail(Status::DataLoss(
              "node '{}': database '{}' table '{}': batch {} archived {} rows but the DELETE "
              "matched {}; rolled back, nothing deleted",
              id_, db_name, job.settings.table, f.batch_id, f.rows, r->AffectedRows()));
        }
      }
      if (f.recorded && state_ != nullptr) {
        Status forgot = state_->Forget(f.conn.get(), job.settings.table, f.batch_id);
        if (!forgot.ok()) {
          return fail(forgot.WithContext("node '{}': database '{}'", id_, db_name));
        }
      }
      SLUICE_RETURN_NOT_OK(f.conn->Commit().WithContext("node '{}': committing the delete", id_));
    } else if (f.conn) {
      SLUICE_RETURN_NOT_OK(f.conn->Rollback());
    }
    const int64_t delete_ns = NowNs() - t0;
    RecordRequest("delete", delete_ns);
    ctx_->stats()->AddCounter(ctx_->dry_run() ? "rows_would_delete" : "deleted_rows", f.rows);
    Log(LogLevel::kInfo,
        "database={} table={} batch={} records={} bytes={} query_ms={:.1f} delete_ms={:.1f}{}",
        db_name, job.settings.table, f.batch_id, f.rows, f.bytes, f.query_ns / 1e6, delete_ns / 1e6,
        ctx_->dry_run() ? " dry_run=true" : "");
    return Status::OK();
  }

  /// Add one statement's time to its phase and to the node's request-latency histogram.
  void RecordRequest(const char* phase, int64_t nanos) {
    ctx_->stats()->AddPhase(phase, nanos);
    ctx_->stats()->request_latency.Record(nanos);
  }

  /// Borrow a connection to the primary of database `d`.
  /// Wait for a pooled connection, giving up when the run is cancelled or `*stop` is set (a
  /// lane being stopped: its wait must not outlast the source thread that waits for it).
  Result<PgLease> Lease(size_t d, const std::atomic<bool>* stop = nullptr) {
    while (true) {
      auto lease = databases_[d].pool->Acquire();
      if (lease.ok()) return lease;
      if (lease.status().code() != StatusCode::kTimeout) {
        return lease.status().WithContext("node '{}': database '{}'", id_,
                                          databases_[d].settings.name);
      }
      if (ctx_->cancelled() || (stop != nullptr && stop->load())) {
        return Status::Cancelled("node '{}': stopped while waiting for a connection", id_);
      }
    }
  }

  /// Open a connection outside the pool (state table, replica), set up like pooled ones.
  Result<std::unique_ptr<PgConnection>> Connect(size_t d, const std::string& dsn,
                                                const char* which) {
    auto conn = PgConnection::Connect(dsn, options_.connect_timeout_us);
    Status st = conn.status();
    if (st.ok()) st = Prepare(conn->get());
    if (!st.ok()) {
      return st.WithContext("node '{}': database '{}'{}", id_, databases_[d].settings.name, which);
    }
    return std::move(*conn);
  }

  /// Run `sql` (a page of `job`: PageQuery, DeleteQuery or RecoveryQuery) in a new transaction
  /// on a pooled connection and decode its rows; with `copy`, as COPY ... (FORMAT binary),
  /// decoding while the rows stream in. `lock_timeout` ("": the server's) bounds waits for row
  /// locks. The transaction stays open on success.
  Result<std::pair<PgLease, RowsRead>> LockAndRead(
      TableJob& job, const std::string& sql, const pg::PgParams& params, bool copy,
      const char* lock_timeout, int64_t expected_rows = 0, const std::atomic<bool>* stop = nullptr,
      RowsPrefix prefix = RowsPrefix::kKeyset, RowSizes* sizes = nullptr) {
    SLUICE_ASSIGN_OR_RETURN(PgLease conn, Lease(job.database, stop));
    const int64_t t0 = NowNs();
    Status st = conn->Begin();
    if (st.ok() && *lock_timeout != '\0') {
      st = conn->Exec(fmt::format("SET LOCAL lock_timeout = '{}'", lock_timeout)).status();
    }
    Result<RowsRead> rows = st;
    if (st.ok() && copy) {
      rows = CopyRows(conn.get(), job.plan, sql, expected_rows, prefix, sizes);
    } else if (st.ok()) {
      auto result = conn->ExecParams(sql, params, pg::PgFormat::kBinary);
      rows = result.ok() ? DecodeRows(job.plan, *result, &scratch_, prefix)
                         : Result<RowsRead>(result.status());
    }
    if (!rows.ok()) {
      (void)conn->Rollback();  // a connection left inside COPY is closed by the lease instead
      return rows.status().WithContext("node '{}': database '{}' table '{}'", id_,
                                       databases_[job.database].settings.name, job.settings.table);
    }
    rows->query_ns = NowNs() - t0;
    RecordRequest("query", rows->query_ns);
    return std::make_pair(std::move(conn), std::move(*rows));
  }

  /// Read the next batch of `job` on the primary, its rows locked (or, holding the table,
  /// deleted) in the batch's open transaction; null when the table has no more rows.
  Result<BatchPtr> ReadBatch(TableJob& job, uint64_t seq) {
    const int64_t limit = job.sizer->read_size();
    Result<std::pair<PgLease, RowsRead>> read = Status::OK();
    if (job.exclusive) {
      if (job.lanes == nullptr) SLUICE_RETURN_NOT_OK(StartLanes(job));
      while (true) {
        bool done = false;
        auto page = job.lanes->Next(/*wait_ms=*/100, &done);
        const std::string state = page.ok() ? "" : pg::SqlState(page.status());
        if (state == "55P03" || state == "40P01") {
          // A row another session holds (an application's long transaction) stalled a
          // DELETE: give the table up to the locking reads, which skip such rows. Pages
          // already read were handed out; the locking reads skip their rows (ours, locked).
          Log(LogLevel::kWarn,
              "node '{}': table '{}': a row is locked by another session; this run now locks "
              "its pages (FOR UPDATE SKIP LOCKED) and leaves locked rows for a later run",
              id_, job.settings.table);
          job.lanes.reset();
          ReleaseTable(job);
          job.last_ts.clear();
          job.last_ctid.clear();
          break;
        }
        if (!page.ok()) return page.status();
        if (page->has_value()) {
          LanePage& p = **page;
          return Admit(job, std::move(p.conn), std::move(p.rows), seq, UtcDate(), nullptr,
                       /*deleted=*/true);
        }
        if (done) {
          job.lanes.reset();
          return BatchPtr{};
        }
        if (ctx_->cancelled()) return Status::Cancelled("node '{}': cancelled", id_);
      }
    }
    if (!job.exclusive) {
      pg::PgParams params;
      const std::string sql = PageQuery(job.plan, job.settings, job.quoted, limit, job.last_ts,
                                        job.last_ctid, /*lock=*/!ctx_->dry_run(), &params);
      read = LockAndRead(job, sql, params, /*copy=*/false, "");
    }
    if (!read.ok()) return read.status();
    auto& [conn, rows] = *read;
    if (rows.batch->num_rows() == 0) {
      (void)conn->Rollback();
      return BatchPtr{};
    }
    job.sizer->Observe(rows.batch->num_rows(), rows.query_ns / 1000);
    ctx_->stats()->SetGauge("batch_size_target_rows", static_cast<double>(job.sizer->read_size()));
    job.last_ts = rows.last_ts;
    job.last_ctid = rows.last_ctid;
    return Admit(job, std::move(conn), std::move(rows), seq, UtcDate(), nullptr);
  }

  /// Start reading `job`, held alone, over up to `read_lanes` ranges at once, each on its own
  /// thread and pooled connection, deleting as it reads: its heap blocks split evenly
  /// (read_order: physical), or the span of its old rows' timestamps (audit rows are spread
  /// over time).
  Status StartLanes(TableJob& job) {
    const int want = std::min(options_.read_lanes, databases_[job.database].settings.pool_size - 1);
    if (job.settings.by_blocks) return StartBlockLanes(job, std::max(want, 1));
    std::vector<std::string> cuts;  // the ranges' boundaries
    if (want > 1) {
      auto conn = Lease(job.database);
      // Infinite bounds fail the arithmetic; equal bounds or no rows give no cut: one range.
      auto r = conn.ok()
                   ? (*conn)->ExecParams(
                         fmt::format("WITH b AS (SELECT min({0}) AS lo, max({0}) AS hi FROM {1} "
                                     "WHERE {0} < $1::timestamptz) SELECT (lo + (hi - lo) * k / "
                                     "$2::int)::text FROM b, generate_series(1, $2::int - 1) AS k "
                                     "WHERE lo < hi ORDER BY k",
                                     job.plan.quoted_ts, job.quoted),
                         {FormatTimestamp(job.settings.cutoff_us), std::to_string(want)})
                   : Result<pg::PgResult>(conn.status());
      if (r.ok()) {
        for (int i = 0; i < r->num_rows(); ++i) cuts.emplace_back(r->Value(i, 0));
      }
    }
    std::vector<Lane> lanes(cuts.size() + 1);
    for (size_t k = 0; k < lanes.size(); ++k) {
      if (k > 0) lanes[k].lower = cuts[k - 1];
      if (k < cuts.size()) lanes[k].upper = cuts[k];
      lanes[k].sizer = std::make_unique<AdaptiveBatchSizer>(job.settings.sizing);
    }
    job.lanes = std::make_unique<LaneReader>(
        std::move(lanes), [this, &job](Lane& lane) -> Result<std::optional<LanePage>> {
          const int64_t limit = lane.sizer->read_size();
          auto read = LockAndRead(job,
                                  DeleteQuery(job.plan, job.settings, job.quoted, limit,
                                              lane.last_ts, lane.last_ctid, lane.lower, lane.upper),
                                  {}, /*copy=*/true, /*lock_timeout=*/"5s", limit, lane.stop,
                                  RowsPrefix::kKeyset, &lane.sizes);
          if (!read.ok()) return read.status();
          auto& [conn, rows] = *read;
          if (rows.batch->num_rows() == 0) {
            (void)conn->Rollback();
            return std::optional<LanePage>();
          }
          lane.sizer->Observe(rows.batch->num_rows(), rows.query_ns / 1000);
          lane.last_ts = rows.last_ts;
          lane.last_ctid = rows.last_ctid;
          return std::optional<LanePage>(LanePage{std::move(conn), std::move(rows)});
        });
    return Status::OK();
  }

  /// Start reading `job` by heap blocks: the table's blocks as it is now split into `want`
  /// contiguous ranges, one lane each. Pages added after this (new rows, in practice newer
  /// than the cutoff) are left for a later run.
  Status StartBlockLanes(TableJob& job, int want) {
    SLUICE_ASSIGN_OR_RETURN(PgLease conn, Lease(job.database));
    auto r = conn->ExecParams(
        "SELECT pg_relation_size(c.oid) / current_setting('block_size')::int8, c.reltuples, "
        "c.relpages FROM pg_class c WHERE c.oid = $1::regclass",
        {job.quoted});
    if (!r.ok()) {
      return r.status().WithContext("node '{}': database '{}' table '{}': its size", id_,
                                    databases_[job.database].settings.name, job.settings.table);
    }
    const int64_t blocks = std::stoll(std::string(r->Value(0, 0)));
    const double tuples = std::stod(std::string(r->Value(0, 1)));
    const double pages = std::stod(std::string(r->Value(0, 2)));
    // The first page assumes every row is old (from the planner's statistics when there are
    // some): at most the batch size; each page after sizes itself on what its lane found.
    const double rows_per_block = tuples > 0 && pages > 0 ? tuples / pages : 50;
    const int64_t lanes = std::clamp<int64_t>(want, 1, std::max<int64_t>(blocks, 1));
    std::vector<Lane> ranges(static_cast<size_t>(lanes));
    for (int64_t k = 0; k < lanes; ++k) {
      Lane& lane = ranges[static_cast<size_t>(k)];
      lane.by_blocks = true;
      lane.next_block = static_cast<uint32_t>(blocks * k / lanes);
      lane.end_block = static_cast<uint32_t>(blocks * (k + 1) / lanes);
      lane.rows_per_block = std::max(rows_per_block, 0.01);
      lane.sizer = std::make_unique<AdaptiveBatchSizer>(job.settings.sizing);
    }
    conn = PgLease{};
    job.lanes = std::make_unique<LaneReader>(
        std::move(ranges), [this, &job](Lane& lane) -> Result<std::optional<LanePage>> {
          return ReadBlocks(job, lane);
        });
    return Status::OK();
  }

  /// Read, lock and delete the next page of blocks of `lane` that holds old rows; nullopt when
  /// the lane is read to its end. A page is sized to hold about the batch size the lane's
  /// sizer asks for; one that found more than max_batch_size rows is rolled back and read
  /// again smaller, so a batch never exceeds it (unless one block holds more).
  Result<std::optional<LanePage>> ReadBlocks(TableJob& job, Lane& lane) {
    while (lane.next_block < lane.end_block) {
      const int64_t limit = lane.sizer->read_size();
      const auto left = static_cast<double>(lane.end_block - lane.next_block);
      const auto blocks = static_cast<uint32_t>(
          std::clamp(static_cast<double>(limit) / lane.rows_per_block, 1.0, left));
      const uint32_t first = lane.next_block;
      auto read = LockAndRead(
          job, BlockDeleteQuery(job.plan, job.settings, job.quoted, first, first + blocks), {},
          /*copy=*/true, /*lock_timeout=*/"5s", limit, lane.stop, RowsPrefix::kCtid, &lane.sizes);
      if (!read.ok()) return read.status();
      auto& [conn, rows] = *read;
      const int64_t n = rows.batch->num_rows();
      const double seen = static_cast<double>(n) / blocks;
      if (n > job.settings.sizing.max_rows && blocks > 1) {
        (void)conn->Rollback();
        ctx_->stats()->AddCounter("pages_read_again", 1);
        lane.rows_per_block = seen;
        continue;
      }
      // Grow pages at most fourfold at a time through blocks without old rows.
      lane.rows_per_block = std::max(seen, lane.rows_per_block / 4);
      lane.next_block = first + blocks;
      if (n == 0) {
        (void)conn->Rollback();
        continue;
      }
      lane.sizer->Observe(n, rows.query_ns / 1000);
      rows.first_block = first;
      rows.end_block = first + blocks;
      return std::optional<LanePage>(LanePage{std::move(conn), std::move(rows)});
    }
    return std::optional<LanePage>();
  }

  /// Read the next page of `job` on the replica (no locks), then lock exactly those keys on the
  /// primary in the batch's transaction and keep the rows whose keys were locked. Pages of
  /// which no row could be locked are passed over. Null when the replica has no more rows.
  Result<BatchPtr> ReadBatchViaReplica(TableJob& job, uint64_t seq) {
    Database& db = databases_[job.database];
    while (true) {
      if (!db.replica->IsHealthy()) {
        SLUICE_ASSIGN_OR_RETURN(db.replica,
                                Connect(job.database, db.settings.replica_dsn, " (replica)"));
      }
      pg::PgParams params;
      const std::string sql = PageQuery(job.plan, job.settings, job.quoted, job.sizer->read_size(),
                                        job.last_ts, job.last_ctid, /*lock=*/false, &params);
      const int64_t t0 = NowNs();
      auto result = db.replica->ExecParams(sql, params, pg::PgFormat::kBinary);
      if (!result.ok()) {
        return result.status().WithContext("node '{}': database '{}' (replica) table '{}'", id_,
                                           db.settings.name, job.settings.table);
      }
      const int64_t read_ns = NowNs() - t0;
      SLUICE_ASSIGN_OR_RETURN(RowsRead page, DecodeRows(job.plan, *result, &scratch_));
      if (page.batch->num_rows() == 0) {
        RecordRequest("query", read_ns);
        return BatchPtr{};
      }
      job.sizer->Observe(page.batch->num_rows(), read_ns / 1000);
      // The bound moves past the whole page, locked or not: the sweep retries the rest.
      job.last_ts = page.last_ts;
      job.last_ctid = page.last_ctid;
      if (ctx_->dry_run()) {
        RecordRequest("query", read_ns);
        return Admit(job, PgLease{}, std::move(page), seq, UtcDate(), nullptr);
      }
      // Lock the page's keys on the primary; the primary's ctids are what the DELETE uses.
      const std::string lock_sql = fmt::format(
          "SELECT ctid::text, {1}::text, {2}::text FROM {0} WHERE {1}::text = ANY($1::text[]) "
          "AND {2} < $2::timestamptz FOR UPDATE SKIP LOCKED",
          job.quoted, QuoteIdentifier(job.settings.key_column),
          QuoteIdentifier(job.settings.timestamp_column));
      SLUICE_ASSIGN_OR_RETURN(PgLease conn, Lease(job.database));
      const int64_t t1 = NowNs();
      Status begun = conn->Begin();
      auto locked = begun.ok()
                        ? conn->ExecParams(lock_sql, {TextArrayLiteral(page.keys),
                                                      FormatTimestamp(job.settings.cutoff_us)})
                        : Result<pg::PgResult>(begun);
      page.query_ns = read_ns + (NowNs() - t1);
      RecordRequest("query", page.query_ns);
      if (!locked.ok()) {
        (void)conn->Rollback();
        return locked.status().WithContext("node '{}': database '{}' table '{}': locking rows", id_,
                                           db.settings.name, job.settings.table);
      }
      const int64_t rows = page.batch->num_rows();
      const int64_t kept = KeepLockedRows(*locked, &page);
      if (kept < rows) ctx_->stats()->AddCounter("replica_rows_not_locked", rows - kept);
      if (kept == 0) {
        (void)conn->Rollback();
        continue;
      }
      return Admit(job, std::move(conn), std::move(page), seq, UtcDate(), nullptr);
    }
  }

  /// Hand the rows read (locked in the open transaction on `conn`) downstream as batch `seq`:
  /// record them in the state table unless they are the redo of `intent`, and keep the
  /// transaction in flight until the ack. On error the transaction is rolled back.
  Result<BatchPtr> Admit(TableJob& job, PgLease conn, RowsRead rows, uint64_t seq,
                         const std::string& date, const Intent* intent, bool deleted = false) {
    Database& db = databases_[job.database];
    InFlight f;
    f.database = job.database;
    f.job = static_cast<size_t>(&job - jobs_.data());
    f.committer = static_cast<size_t>(db.slot);
    f.rows = rows.batch->num_rows();
    f.bytes = rows.batch->ByteSize();
    f.query_ns = rows.query_ns;
    f.deleted = deleted;
    // Rows deleted as they were read by blocks need no list of ctids (recorded or deleted).
    if (!deleted || rows.end_block == 0) f.ctids = TidArrayLiteral(rows.ctids);
    f.batch_id = intent != nullptr ? intent->batch_id : BatchId(rows, run_token_);
    if (state_ != nullptr && !ctx_->dry_run()) {
      f.recorded = true;
      if (intent == nullptr) {
        Intent record{f.batch_id, date, f.ctids, TextArrayLiteral(rows.keys), f.rows, "", "", ""};
        if (rows.end_block > 0) {
          // Where the rows were, not each row: the record stays small.
          record.ctids.clear();
          record.keys = "{}";
          record.blocks = fmt::format("{}-{}", rows.first_block, rows.end_block);
          record.cutoff =
              rows.cutoff.empty() ? FormatTimestamp(job.settings.cutoff_us) : rows.cutoff;
          record.digest = fmt::format("{:016x}", rows.ctid_digest);
        }
        Status st = state_->Record(db.control.get(), job.settings.table, record);
        if (!st.ok()) {
          if (conn) (void)conn->Rollback();
          return st.WithContext("node '{}': database '{}'", id_, db.settings.name);
        }
      }
    }
    f.conn = std::move(conn);
    job.archived += f.rows;
    job.pass_rows += f.rows;
    ++db.handed_out;
    BatchTags tags{{std::string(tag::kDatabase), db.settings.name},
                   {std::string(tag::kTable), job.settings.table},
                   {std::string(tag::kDate), date},
                   {std::string(tag::kBatchId), f.batch_id},
                   {std::string(tag::kPgTypes), job.plan.tags_json}};
    BatchPtr batch = rows.batch->WithTags(std::move(tags));
    in_flight_.emplace(seq, std::move(f));
    return batch;
  }

  /// Look up the batches a killed run left recorded and not deleted, oldest first.
  Status LoadIntents(TableJob& job) {
    if (state_ == nullptr || ctx_->dry_run()) return Status::OK();
    Database& db = databases_[job.database];
    auto intents = state_->Load(db.control.get(), job.settings.table);
    if (!intents.ok()) {
      return intents.status().WithContext("node '{}': database '{}'", id_, db.settings.name);
    }
    job.pending = std::move(*intents);
    if (!job.pending.empty()) {
      Log(LogLevel::kWarn,
          "node '{}': database={} table={}: redoing {} batch(es) an earlier run left unfinished",
          id_, db.settings.name, job.settings.table, job.pending.size());
    }
    return Status::OK();
  }

  /// Lock exactly the rows of the oldest unfinished batch (same ctid and key, still older than
  /// the cutoff) and hand them on as that batch again: same rows, order, date and batch id, so
  /// the same object key. Null when none of its rows is left.
  Result<BatchPtr> RecoverBatch(TableJob& job, uint64_t seq) {
    Intent intent = std::move(job.pending.front());
    job.pending.pop_front();
    Database& db = databases_[job.database];
    // Wait for rows locked elsewhere: another archiver redoing the same batch (it deletes them:
    // we then read none and forget the record), or a backend of the killed run that has not yet
    // noticed its client is gone (it rolls back: we then read them). Skipping them instead could
    // let a later read archive them under another key.
    pg::PgParams params;
    RowsPrefix prefix = RowsPrefix::kKeyset;
    const std::string sql =
        RecoveryQuery(job.plan, job.settings, job.quoted, intent, &params, &prefix);
    // Waits for locks (see above), but not forever.
    SLUICE_ASSIGN_OR_RETURN(auto read,
                            LockAndRead(job, sql, params, /*copy=*/false, /*lock_timeout=*/"60s",
                                        /*expected_rows=*/0, /*stop=*/nullptr, prefix));
    auto& [conn, rows] = read;
    const int64_t found = rows.batch->num_rows();
    bool identical = false;
    auto kept = KeepRecordedRows(intent, &rows, &identical);
    if (!kept.ok()) {
      (void)conn->Rollback();
      return kept.status().WithContext("node '{}': table '{}'", id_, job.settings.table);
    }
    const int64_t matching = *kept;
    if (matching < found) {
      Log(LogLevel::kWarn,
          "node '{}': table={} batch {}: {} row(s) at its recorded places now hold other rows; "
          "they are left for a later batch",
          id_, job.settings.table, intent.batch_id, found - matching);
    }
    if (matching == 0) {
      // Finished elsewhere (or deleted by hand): forget the record.
      (void)conn->Rollback();
      Status forgot = state_->Forget(db.control.get(), job.settings.table, intent.batch_id);
      if (!forgot.ok()) return forgot.WithContext("node '{}'", id_);
      return BatchPtr{};
    }
    ctx_->stats()->AddCounter("redone_batches", 1);
    const std::string date = intent.date;
    if (!identical) {
      // Its object (if the killed run wrote it) holds other rows too, and an object is never
      // replaced by other content: send what remains as a new batch under a new id, and
      // forget the old record first (a crash between the two leaves the rows in the table,
      // at worst archived twice, never lost).
      Log(LogLevel::kWarn,
          "node '{}': table={} batch {}: {} row(s) of it remain, not exactly the {} it "
          "recorded; they go out as a new batch (an object the earlier run may have written "
          "under the old id keeps its copy)",
          id_, job.settings.table, intent.batch_id, matching, intent.rows);
      if (!intent.blocks.empty()) {  // recorded again by blocks, with the cutoff read with
        std::sscanf(intent.blocks.c_str(), "%u-%u", &rows.first_block, &rows.end_block);
        const std::string current = FormatTimestamp(job.settings.cutoff_us);
        rows.cutoff = intent.cutoff.empty() ? current : std::min(intent.cutoff, current);
      }
      Status forgot = state_->Forget(db.control.get(), job.settings.table, intent.batch_id);
      if (!forgot.ok()) {
        (void)conn->Rollback();
        return forgot.WithContext("node '{}'", id_);
      }
      return Admit(job, std::move(conn), std::move(rows), seq, date, nullptr);
    }
    return Admit(job, std::move(conn), std::move(rows), seq, date, &intent);
  }

  std::string id_;
  NodeContext* ctx_ = nullptr;
  ArchiveOptions options_;
  std::unique_ptr<StateTable> state_;  // null when `state_table: none`
  std::vector<Database> databases_;
  std::vector<TableJob> jobs_;
  // Source thread only:
  std::vector<int> slots_;    // slot -> the database being archived in it, or -1
  size_t next_slot_ = 0;      // where the round-robin of Next() continues
  size_t next_database_ = 0;  // the next database to archive
  std::map<uint64_t, InFlight> in_flight_;
  std::string scratch_;
  std::unique_ptr<Committer> committer_;
  std::string run_token_;  // unique per run: the last part of every new batch id
};

}  // namespace

}  // namespace sluice::pg_archive

namespace sluice {

void RegisterPostgresArchiveNode(NodeRegistry* registry) {
  registry->AddSource(
      "postgres_archive",
      "Archive rows older than a cutoff out of PostgreSQL tables: lock a batch (FOR UPDATE SKIP "
      "LOCKED), hand it downstream, and delete exactly those rows in the same transaction once "
      "every sink made it durable.",
      pg_archive::ArchiveOptionSchema(), &pg_archive::ArchiveSource::Make);
}

}  // namespace sluice
