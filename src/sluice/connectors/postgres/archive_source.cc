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

#include <random>

#include <nlohmann/json.hpp>

#include "sluice/connectors/postgres/archive_source_internal.h"

namespace sluice::pg_archive {

Result<std::unique_ptr<Source>> ArchiveSource::Make(const NodeOptions& o) {
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

Status ArchiveSource::Open(NodeContext* ctx) {
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
          return checked.status().WithContext("node '{}': database '{}' (replica) table '{}'", id_,
                                              db.settings.name, jobs_[j].settings.table);
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

int ArchiveSource::MaxInFlight() const {
  // One open transaction per batch in flight. Next() reads from a database being archived
  // whose batches in flight leave a pooled connection free; there is one while fewer than
  // (the pools of the databases being archived + the batches still in flight of those
  // finished) are out. Connections held by the committers come back without any ack, so
  // waiting for them cannot deadlock a sink that holds acks until asked to flush.
  int bound = 0;
  for (const auto& db : databases_) bound += db.slot >= 0 ? InFlightLimit(db) : db.handed_out;
  return std::max(bound, 1);
}

int ArchiveSource::InFlightLimit(const Database& db) const {
  const int lanes = std::max(1, std::min(options_.read_lanes, db.settings.pool_size - 1));
  return db.settings.pool_size - (lanes - 1);
}

Result<BatchPtr> ArchiveSource::Next(uint64_t seq) {
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

ArchiveSource::~ArchiveSource() {
  in_flight_.clear();  // their connections close (rolled back), so no lane waits for one
  for (auto& job : jobs_) job.lanes.reset();
  if (committer_ != nullptr) committer_->Stop();
}

Status ArchiveSource::Commit(uint64_t seq) {
  auto it = in_flight_.find(seq);
  if (it == in_flight_.end()) return Status::OK();  // an empty batch
  --databases_[it->second.database].handed_out;
  committer_->Submit(std::move(it->second));
  in_flight_.erase(it);
  return committer_->error();
}

void ArchiveSource::Abandon(uint64_t seq) {
  auto it = in_flight_.find(seq);
  if (it == in_flight_.end()) return;
  InFlight& f = it->second;
  --databases_[f.database].handed_out;
  if (f.conn) (void)f.conn->Rollback();  // the rows stay, unlocked; a rerun archives them
  in_flight_.erase(it);
}

Status ArchiveSource::Close() {
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
    auto r = conn->Exec(
        fmt::format("VACUUM {}{}",
                    job.settings.vacuum == "full" ? "(FULL, ANALYZE) " : "(ANALYZE) ", job.quoted));
    ctx_->stats()->AddPhase("vacuum", NowNs() - t0);
    if (!r.ok()) {
      return r.status().WithContext("node '{}': database '{}': vacuum of '{}'", id_,
                                    databases_[job.database].settings.name, job.settings.table);
    }
  }
  return Status::OK();
}

Status ArchiveSource::Prepare(PgConnection* conn) {
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

void ArchiveSource::Activate(size_t slot) {
  if (next_database_ >= databases_.size()) return;
  const size_t d = next_database_++;
  databases_[d].slot = static_cast<int>(slot);
  slots_[slot] = static_cast<int>(d);
}

int ArchiveSource::PickSlot() const {
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

Result<BatchPtr> ArchiveSource::NextOfDatabase(size_t d, uint64_t seq) {
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

Status ArchiveSource::ClaimTable(TableJob& job) {
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

void ArchiveSource::ReleaseTable(TableJob& job) {
  job.exclusive = false;
  if (!job.locked) return;
  job.locked = false;
  (void)databases_[job.database].control->ExecParams(
      "SELECT pg_advisory_unlock((hashtext('sluice_archive')::bigint << 32) | "
      "$1::regclass::oid::bigint)",
      {job.quoted});
}

Status ArchiveSource::DeleteAndCommit(InFlight& f) {
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
        return fail(r.status().WithContext("node '{}': database '{}' table '{}': deleting batch {}",
                                           id_, db_name, job.settings.table, f.batch_id));
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

void ArchiveSource::RecordRequest(const char* phase, int64_t nanos) {
  ctx_->stats()->AddPhase(phase, nanos);
  ctx_->stats()->request_latency.Record(nanos);
}

Result<PgLease> ArchiveSource::Lease(size_t d, const std::atomic<bool>* stop) {
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

Result<std::unique_ptr<PgConnection>> ArchiveSource::Connect(size_t d, const std::string& dsn,
                                                             const char* which) {
  auto conn = PgConnection::Connect(dsn, options_.connect_timeout_us);
  Status st = conn.status();
  if (st.ok()) st = Prepare(conn->get());
  if (!st.ok()) {
    return st.WithContext("node '{}': database '{}'{}", id_, databases_[d].settings.name, which);
  }
  return std::move(*conn);
}

Result<std::pair<PgLease, RowsRead>> ArchiveSource::LockAndRead(
    TableJob& job, const std::string& sql, const pg::PgParams& params, bool copy,
    const char* lock_timeout, int64_t expected_rows, const std::atomic<bool>* stop,
    RowsPrefix prefix, RowSizes* sizes) {
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

Result<BatchPtr> ArchiveSource::Admit(TableJob& job, PgLease conn, RowsRead rows, uint64_t seq,
                                      const std::string& date, const Intent* intent, bool deleted) {
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
        record.cutoff = rows.cutoff.empty() ? FormatTimestamp(job.settings.cutoff_us) : rows.cutoff;
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
