// How the `postgres_archive` source reads pages: by heap blocks or timestamps over read lanes
// (deleting as it reads, when it holds a table alone), with locking reads when it shares one,
// and on a read replica.
#include "sluice/connectors/postgres/archive_source_internal.h"

namespace sluice::pg_archive {

Result<BatchPtr> ArchiveSource::ReadBatch(TableJob& job, uint64_t seq) {
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

Status ArchiveSource::StartLanes(TableJob& job) {
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
                                DeleteQuery(job.plan, job.settings, job.quoted, limit, lane.last_ts,
                                            lane.last_ctid, lane.lower, lane.upper),
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

Status ArchiveSource::StartBlockLanes(TableJob& job, int want) {
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

Result<std::optional<LanePage>> ArchiveSource::ReadBlocks(TableJob& job, Lane& lane) {
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

Result<BatchPtr> ArchiveSource::ReadBatchViaReplica(TableJob& job, uint64_t seq) {
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
    auto locked = begun.ok() ? conn->ExecParams(lock_sql, {TextArrayLiteral(page.keys),
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

}  // namespace sluice::pg_archive
