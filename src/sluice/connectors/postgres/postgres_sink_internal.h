#pragma once

// The `postgres` sink's parts, shared by its files: postgres_sink.cc (writing batches),
// postgres_sink_ddl.cc (creating the table, its partitions and indexes) and
// postgres_sink_options.cc (options). Private to connectors/postgres.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "sluice/connectors/postgres/parallel_writes.h"
#include "sluice/connectors/postgres/pg_pool.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/connectors/postgres/postgres.h"
#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/engine/index_entries.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice::pg_sink {

using pg::PgCodec;
using pg::PgConnection;

inline constexpr int64_t kDefaultBatchRows = 10'000;
inline constexpr int kDefaultPoolSize = 2;
inline constexpr int kDefaultRetryMaxAttempts = 5;
// Encoded COPY data is sent whenever this much has accumulated: memory stays bounded whatever
// the size of the batch.
inline constexpr size_t kCopySendBytes = 1 << 20;
// PostgreSQL's limit on bind parameters per statement.
inline constexpr int64_t kMaxParams = 65'535;
inline constexpr int64_t kMaxRowsPerInsert = 1'000;
inline constexpr size_t kMaxIdentifierBytes = 63;

enum class SinkMode : uint8_t { kInsert, kUpsert, kInsertBatch, kDelete };
enum class PartitionInterval : uint8_t { kNone, kDay, kMonth };

struct SinkConfig {
  std::string dsn;
  std::string table;
  bool create_table = false;
  SinkMode mode = SinkMode::kInsert;
  /// Upsert with on_conflict: keep — a key already in the table keeps its row.
  bool keep_existing = false;
  std::vector<std::string> key;
  std::vector<std::string> indexes;
  /// Create `indexes` once the load is over (at Close, after a successful run) instead of
  /// with the table: one sorted build instead of an update per row, and any existing table.
  bool index_after_load = false;
  std::string partition_by;
  PartitionInterval interval = PartitionInterval::kNone;
  int partitions_ahead = 0;  ///< periods after the latest written made ahead of time
  int64_t retention_us =
      0;  ///< 0: keep; else drop partitions ending this long before the newest row
  int pool_size = kDefaultPoolSize;
  int max_parallel_writes = 1;  ///< batches written at once, each on its own connection
  int64_t batch_rows = kDefaultBatchRows;
  int retry_max_attempts = kDefaultRetryMaxAttempts;
  int64_t retry_initial_backoff_us = 1'000'000;
  int64_t statement_timeout_us = 0;
  int64_t connect_timeout_us = pg::kDefaultConnectTimeoutUs;
};

/// Return `names` quoted and comma-separated, each prefixed with `prefix` ("s.").
std::string QuotedList(const std::vector<std::string>& names, std::string_view prefix = "");

/// Return `table` with its last part replaced by `name` (keeping the schema), quoted. Names
/// are cut to PostgreSQL's 63 bytes from the table's part, so that suffixes stay distinct.
std::string SiblingName(const std::string& table, std::string_view suffix);

/// Parse and check the sink's options.
Result<SinkConfig> ParseSinkOptions(const NodeOptions& o);

/// Write batches to one PostgreSQL table; see the file comment. Write() is called from one
/// thread; it uses one pooled connection at a time.
class PostgresSink final : public Sink {
 public:
  PostgresSink(std::string id, SinkConfig config) : id_(std::move(id)), config_(std::move(config)) {
    policy_.initial_us = config_.retry_initial_backoff_us;
    policy_.max_attempts = config_.retry_max_attempts;
  }

  Status Open(NodeContext* ctx) override;
  Status Write(const BatchPtr& input, AckSet acks) override;
  Status Flush() override;
  Status Close() override;

 private:
  std::string Context() const { return fmt::format("node '{}'", id_); }
  /// Run `op` (returning Status) until it succeeds or fails permanently; count retries.
  template <typename F>
  Status WithRetry(F&& op);
  Result<pg::PgLease> Lease();
  Status PrepareTarget(const Batch& batch);
  /// Create the table (if absent) with a column per field of `batch`, typed as the batch's
  /// `pg_types` tag records (the source's own types, e.g. from an archive's manifest), else by
  /// the sluice type.
  Status CreateTable(PgConnection* conn, const Batch& batch);
  /// Return the column types the `pg_types` tag of `batch` gives, checked to be type names
  /// this database knows.
  Result<std::map<std::string, std::string>> RecordedTypes(PgConnection* conn, const Batch& batch);
  Status ResolveTargets(PgConnection* conn, const SchemaPtr& schema);
  Status EnsurePartitions(const Batch& batch);
  /// Drop the partitions this sink names (`<table>_pYYYYMMDD`, `_pYYYYMM`) that end at or
  /// before `cutoff` (µs).
  Status DropExpiredPartitions(PgConnection* conn, int64_t cutoff);
  /// Create the `indexes` the config asks for (if absent; `auto`: the tag columns the table
  /// has): B-tree, or GiST for geometry and geography columns. Counts in indexes_created the
  /// ones made now and times the phase 'index'.
  Status CreateIndexes(PgConnection* conn);
  /// Upsert: fail with kInvalidArgument, naming the key columns and counting the rows, when a row
  /// of `batch` has a NULL key column (no unique index matches it: it would be inserted again on
  /// every run, or several would collapse into one).
  Status CheckUpsertKeys(const Batch& batch) const;
  /// Whether a batch of new keys may be COPYed straight into the table: a unique index on
  /// exactly the key makes a COPY of a taken key fail, and nothing makes COPY differ from
  /// INSERT (row-level security, rules, BEFORE INSERT row triggers).
  Result<bool> DirectCopyAllowed(PgConnection* conn) const;
  /// Delete: `batch` reduced to its key columns.
  Result<BatchPtr> KeyColumns(const BatchPtr& batch);
  /// What a thread writing batches reuses between them: the COPY data, and its own copy of
  /// the encoder (which keeps scratch of its own).
  struct Scratch {
    std::string buffer;
    std::optional<pg::CopyBinaryEncoder> encoder;
    uint64_t encoder_generation = 0;
  };
  pg::CopyBinaryEncoder& EncoderFor(Scratch* scratch) const;
  Status WriteOnce(const Batch& batch, Scratch* scratch);
  Status WriteInTransaction(PgConnection* conn, const Batch& batch, Scratch* scratch);
  Result<int64_t> CopyRows(PgConnection* conn, const std::string& copy_sql, const Batch& batch,
                           Scratch* scratch);
  Status InsertRows(PgConnection* conn, const Batch& batch, Scratch* scratch);
  void AddPhase(const char* phase, std::chrono::steady_clock::time_point start) {
    if (ctx_->stats() != nullptr) ctx_->stats()->AddPhase(phase, pg_internal::ElapsedNanos(start));
  }

  const std::string id_;
  const SinkConfig config_;
  NodeContext* ctx_ = nullptr;
  std::shared_ptr<pg::PgPool> pool_;
  RetryPolicy policy_;
  std::unique_ptr<pg_internal::CancellableClock> clock_;

  // Derived from the schema of the batches (redone if it changes).
  SchemaPtr schema_;
  bool table_ready_ = false;  // created (if asked) and its columns resolved
  pg::CopyBinaryEncoder encoder_;
  std::vector<Oid> param_types_;  // insert_batch: the target columns' OIDs
  std::string column_list_;       // ("a", "b")
  std::string copy_sql_;  // insert: COPY table; upsert or text input: COPY into the staging table
  std::string create_stage_sql_;  // empty: insert mode without text input (no staging)
  std::string upsert_sql_;        // upsert, or insert of a staged batch (text input)
  std::string direct_copy_sql_;   // upsert: COPY into the table, for batches of new keys only
  std::atomic<bool> direct_refused_{false};  // a direct COPY clashed: stage every batch after
  std::vector<std::string> param_casts_;     // insert_batch: "" or "::type" per column
  int partition_column_ = -1;
  std::set<int64_t> partitions_made_;  // period starts (µs) whose partition exists
  bool default_partition_made_ = false;
  int64_t expired_through_ = INT64_MIN;       // retention: partitions ending by this are dropped
  uint64_t encoder_generation_ = 0;           // bumped each time encoder_ is made
  Scratch scratch_;                           // the sink's own thread's
  std::vector<Scratch> worker_scratch_;       // max_parallel_writes: one per writing thread
  std::unique_ptr<ParallelWrites> parallel_;  // max_parallel_writes > 1
  bool wrote_one_ = false;                    // a batch was written on this thread
  // Delete: the input's key columns (the rest of a row is not needed), for each input schema.
  SchemaPtr delete_input_schema_;
  SchemaPtr delete_key_schema_;
  std::vector<int> delete_key_columns_;
};

}  // namespace sluice::pg_sink
