// How the `postgres_archive` source redoes the batches a dead run left in its state table: the
// same rows, in the same order, under the same batch id, so their objects are found identical.
#include "sluice/connectors/postgres/archive_source_internal.h"

namespace sluice::pg_archive {

Status ArchiveSource::LoadIntents(TableJob& job) {
  if (state_ == nullptr || ctx_->dry_run()) return Status::OK();
  Database& db = databases_[job.database];
  auto intents = state_->Load(db.control.get(), job.settings.table);
  if (!intents.ok()) {
    return intents.status().WithContext("node '{}': database '{}'", id_, db.settings.name);
  }
  job.pending = std::move(*intents);
  if (!job.pending.empty()) {
    Log(LogLevel::kWarn,
        "node '{}': database={} table={}: redoing {} batch(es) an earlier run left unfinished", id_,
        db.settings.name, job.settings.table, job.pending.size());
  }
  return Status::OK();
}

Result<BatchPtr> ArchiveSource::RecoverBatch(TableJob& job, uint64_t seq) {
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

}  // namespace sluice::pg_archive
