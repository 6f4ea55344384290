#pragma once

// The options of `postgres_archive`: which databases and tables, and per table the timestamp
// column, key column, cutoff, batch sizes and VACUUM. Private to connectors/postgres/.

#include <cstdint>
#include <string>
#include <vector>

#include "sluice/engine/options.h"
#include "sluice/resilience/adaptive_batch_sizer.h"

namespace sluice::pg_archive {

/// What to archive from one table: `defaults:` overlaid with the table's own entry.
struct TableSettings {
  std::string table;             ///< As written; may be schema-qualified ("audit.logs").
  std::string timestamp_column;  ///< Rows with this older than the cutoff are archived.
  std::string key_column;        ///< Orders rows within one timestamp; names objects.
  int64_t cutoff_us = 0;         ///< Unix µs: rows older than this go.
  std::string cutoff_text;       ///< As written ("90d", "2026-01-01"), for messages.
  AdaptiveBatchSizerOptions sizing;
  std::string vacuum;  ///< "analyze", "full" or "none": after the run, if rows were archived.
  /// read_order: physical. Held alone, the table is read and deleted by ranges of heap blocks
  /// (else in (timestamp, ctid) order).
  bool by_blocks = true;
};

/// One entry of `databases:`.
struct DatabaseSettings {
  std::string name;         ///< The key under `databases:`.
  std::string dsn;          ///< The primary: rows are locked and deleted here.
  std::string replica_dsn;  ///< "" to read on the primary.
  int pool_size = 4;        ///< Connections, so batches in flight, on the primary.
  std::vector<TableSettings> tables;
};

/// Every option of a `postgres_archive` node, checked.
struct ArchiveOptions {
  std::vector<DatabaseSettings> databases;
  int max_parallel_databases = 1;
  int read_lanes = 2;       ///< Timestamp ranges of one table read at once (when held alone).
  std::string state_table;  ///< "" when off (`state_table: none`).
  int64_t statement_timeout_ms = 0;
  int64_t connect_timeout_us = 10'000'000;
};

/// Return the option schema of `postgres_archive`, nested maps included, so the loader
/// rejects a misspelt key at any depth and `sluice nodes postgres_archive` shows them all.
OptionSchema ArchiveOptionSchema();

/// Return the options of node `o`; config errors name the option's file:line:col. `now_us`
/// anchors ages ("90d" means older than now_us - 90 days).
Result<ArchiveOptions> ParseArchiveOptions(const NodeOptions& o, int64_t now_us);

}  // namespace sluice::pg_archive
