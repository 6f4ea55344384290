#pragma once

// The `postgres_archive` source's class, shared by its files: archive_source.cc (open, hand
// out, commit and close batches), archive_reads.cc (reading pages: block and time lanes, the
// locking reads, the replica) and archive_recovery.cc (redoing a dead run's batches). Private
// to connectors/postgres/; see archive_source.cc for how a batch goes.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

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
#include "sluice/engine/node.h"

namespace sluice::pg_archive {

using pg::PgConnection;
using pg::PgLease;
using pg_internal::QuoteIdentifier;

inline int64_t NowNs() {
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

/// The source: see archive_source.cc.
class ArchiveSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Make(const NodeOptions& o);

  Status Open(NodeContext* ctx) override;

  int MaxInFlight() const override;

  /// Return how many batches of `db` may be out at once: its pool, less the connections its
  /// read lanes may hold beyond one (a lane holds one while reading or with a page read ahead),
  /// so that while fewer are out a lane always has a connection to read with.
  int InFlightLimit(const Database& db) const;
  bool ConsumesInput() const override { return true; }

  Result<BatchPtr> Next(uint64_t seq) override;

  ~ArchiveSource() override;

  Status Commit(uint64_t seq) override;

  void Abandon(uint64_t seq) override;

  Status Close() override;

 private:
  /// Set up a new connection: exact text output for every type, and the statement timeout.
  Status Prepare(PgConnection* conn);

  /// Give slot `slot` to the next database not yet archived, if any.
  void Activate(size_t slot);

  /// Return the slot to read from next: the first, round-robin from the one after the last
  /// used, whose database has fewer batches out than InFlightLimit; -2 when every database
  /// being archived is at its limit; -1 when every database is done.
  int PickSlot() const;

  /// Return the next batch of database `d`, its tables one after another; null when done.
  Result<BatchPtr> NextOfDatabase(size_t d, uint64_t seq);

  /// Take the table's advisory lock on the control connection, if no other archiver holds it:
  /// then this run redoes what a dead run left, and (without a replica) reads the table alone,
  /// deleting each batch as it reads it. Otherwise (or under --dry-run) batches are locked with
  /// FOR UPDATE SKIP LOCKED, which lets several archivers share a table.
  Status ClaimTable(TableJob& job);

  /// Give the table's advisory lock back once the table is read to the end.
  void ReleaseTable(TableJob& job);

  /// Delete the rows of batch `f` in the transaction that locked them, check the count, forget
  /// its state record, commit. Runs on a committer thread.
  Status DeleteAndCommit(InFlight& f);

  /// Add one statement's time to its phase and to the node's request-latency histogram.
  void RecordRequest(const char* phase, int64_t nanos);

  /// Borrow a connection to the primary of database `d`.
  /// Wait for a pooled connection, giving up when the run is cancelled or `*stop` is set (a
  /// lane being stopped: its wait must not outlast the source thread that waits for it).
  Result<PgLease> Lease(size_t d, const std::atomic<bool>* stop = nullptr);

  /// Open a connection outside the pool (state table, replica), set up like pooled ones.
  Result<std::unique_ptr<PgConnection>> Connect(size_t d, const std::string& dsn,
                                                const char* which);

  /// Run `sql` (a page of `job`: PageQuery, DeleteQuery or RecoveryQuery) in a new transaction
  /// on a pooled connection and decode its rows; with `copy`, as COPY ... (FORMAT binary),
  /// decoding while the rows stream in. `lock_timeout` ("": the server's) bounds waits for row
  /// locks. The transaction stays open on success.
  Result<std::pair<PgLease, RowsRead>> LockAndRead(
      TableJob& job, const std::string& sql, const pg::PgParams& params, bool copy,
      const char* lock_timeout, int64_t expected_rows = 0, const std::atomic<bool>* stop = nullptr,
      RowsPrefix prefix = RowsPrefix::kKeyset, RowSizes* sizes = nullptr);

  /// Read the next batch of `job` on the primary, its rows locked (or, holding the table,
  /// deleted) in the batch's open transaction; null when the table has no more rows.
  Result<BatchPtr> ReadBatch(TableJob& job, uint64_t seq);

  /// Start reading `job`, held alone, over up to `read_lanes` ranges at once, each on its own
  /// thread and pooled connection, deleting as it reads: its heap blocks split evenly
  /// (read_order: physical), or the span of its old rows' timestamps (audit rows are spread
  /// over time).
  Status StartLanes(TableJob& job);

  /// Start reading `job` by heap blocks: the table's blocks as it is now split into `want`
  /// contiguous ranges, one lane each. Pages added after this (new rows, in practice newer
  /// than the cutoff) are left for a later run.
  Status StartBlockLanes(TableJob& job, int want);

  /// Read, lock and delete the next page of blocks of `lane` that holds old rows; nullopt when
  /// the lane is read to its end. A page is sized to hold about the batch size the lane's
  /// sizer asks for; one that found more than max_batch_size rows is rolled back and read
  /// again smaller, so a batch never exceeds it (unless one block holds more).
  Result<std::optional<LanePage>> ReadBlocks(TableJob& job, Lane& lane);

  /// Read the next page of `job` on the replica (no locks), then lock exactly those keys on the
  /// primary in the batch's transaction and keep the rows whose keys were locked. Pages of
  /// which no row could be locked are passed over. Null when the replica has no more rows.
  Result<BatchPtr> ReadBatchViaReplica(TableJob& job, uint64_t seq);

  /// Hand the rows read (locked in the open transaction on `conn`) downstream as batch `seq`:
  /// record them in the state table unless they are the redo of `intent`, and keep the
  /// transaction in flight until the ack. On error the transaction is rolled back.
  Result<BatchPtr> Admit(TableJob& job, PgLease conn, RowsRead rows, uint64_t seq,
                         const std::string& date, const Intent* intent, bool deleted = false);

  /// Look up the batches a killed run left recorded and not deleted, oldest first.
  Status LoadIntents(TableJob& job);

  /// Lock exactly the rows of the oldest unfinished batch (same ctid and key, still older than
  /// the cutoff) and hand them on as that batch again: same rows, order, date and batch id, so
  /// the same object key. Null when none of its rows is left.
  Result<BatchPtr> RecoverBatch(TableJob& job, uint64_t seq);

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

}  // namespace sluice::pg_archive
