// The `postgres` sink's options.

#include "sluice/connectors/postgres/postgres_sink_internal.h"
#include "sluice/core/log.h"

namespace sluice::pg_sink {

Result<SinkConfig> ParseSinkOptions(const NodeOptions& o) {
  SinkConfig c;
  c.dsn = o.GetString("dsn");
  if (c.dsn.empty()) return o.ErrorAt("dsn", "a PostgreSQL connection string is required");
  c.table = o.GetString("table");
  if (c.table.empty()) return o.ErrorAt("table", "a table name is required");
  if (o.Has("create_table")) c.create_table = o.GetBool("create_table");
  if (o.Has("mode")) {
    const std::string mode = o.GetString("mode");
    if (mode == "insert") {
      c.mode = SinkMode::kInsert;
    } else if (mode == "upsert") {
      c.mode = SinkMode::kUpsert;
    } else if (mode == "insert_batch") {
      c.mode = SinkMode::kInsertBatch;
    } else if (mode == "delete") {
      c.mode = SinkMode::kDelete;
    } else {
      return o.ErrorAt("mode", "must be insert, upsert, insert_batch or delete");
    }
  }
  c.keep_existing = o.GetString("on_conflict") == "keep";
  if (c.keep_existing && c.mode != SinkMode::kUpsert) {
    return o.ErrorAt("on_conflict", "applies to mode: upsert");
  }
  c.key = o.GetStringList("key");
  if (c.mode == SinkMode::kUpsert && c.key.empty()) {
    return o.ErrorAt("key", "upsert needs 'key': the columns of the unique index ON CONFLICT uses");
  }
  if (c.mode == SinkMode::kDelete && c.key.empty()) {
    return o.ErrorAt("key", "delete needs 'key': the columns whose values name the rows to delete");
  }
  if (c.mode == SinkMode::kDelete && c.create_table) {
    return o.ErrorAt("create_table", "mode delete removes rows from an existing table");
  }
  c.indexes = o.GetStringList("indexes");
  if (o.Has("index_after_load")) c.index_after_load = o.GetBool("index_after_load");
  if (!c.indexes.empty() && !c.create_table && !c.index_after_load) {
    return o.ErrorAt("indexes",
                     "indexes are created with the table; set create_table: true, or "
                     "index_after_load: true to index an existing table once the load is over");
  }
  if (c.index_after_load && c.indexes.empty()) {
    return o.ErrorAt("index_after_load", "needs 'indexes': the columns to index");
  }
  c.partition_by = o.GetString("partition_by");
  const std::string interval = o.GetString("partition_interval");
  if (!c.partition_by.empty()) {
    if (!c.create_table) {
      return o.ErrorAt("partition_by",
                       "partitions are declared when creating the table; set create_table: true");
    }
    if (interval == "day") {
      c.interval = PartitionInterval::kDay;
    } else if (interval == "month" || interval.empty()) {
      c.interval = PartitionInterval::kMonth;
    } else {
      return o.ErrorAt("partition_interval", "must be day or month");
    }
  } else if (!interval.empty()) {
    return o.ErrorAt("partition_interval", "needs 'partition_by'");
  }
  if (o.Has("partitions_ahead")) {
    const int64_t n = o.GetInt("partitions_ahead");
    if (n < 0 || n > 366) return o.ErrorAt("partitions_ahead", "must be 0 to 366");
    if (n > 0 && c.partition_by.empty()) {
      return o.ErrorAt("partitions_ahead", "needs 'partition_by'");
    }
    c.partitions_ahead = static_cast<int>(n);
  }
  if (o.Has("retention")) {
    if (c.partition_by.empty()) return o.ErrorAt("retention", "needs 'partition_by'");
    c.retention_us = o.GetDurationMicros("retention");
    if (c.retention_us <= 0) return o.ErrorAt("retention", "must be positive");
  }
  for (const std::string& index : c.indexes) {
    for (std::string_view col : SplitIndexColumns(index)) {
      if (col.empty()) {
        return o.ErrorAt("indexes", "'" + index +
                                        "': an empty column name (a multicolumn index is "
                                        "written \"host, ts\")");
      }
    }
  }
  if (o.Has("pool_size")) c.pool_size = static_cast<int>(o.GetInt("pool_size"));
  if (c.pool_size < 1) return o.ErrorAt("pool_size", "must be at least 1");
  if (o.Has("max_parallel_writes")) {
    const int64_t n = o.GetInt("max_parallel_writes");
    if (n < 1 || n > 64) return o.ErrorAt("max_parallel_writes", "must be 1 to 64");
    c.max_parallel_writes = static_cast<int>(n);
    if (n > 1 && c.mode == SinkMode::kUpsert && !c.keep_existing) {
      // Not an error: keys written by one batch each (a copy, a first load) lose nothing.
      Log(LogLevel::kWarn,
          "{}: node '{}': max_parallel_writes {} commits batches in any order: a key in several "
          "batches keeps the row of whichever commits last, not of the last batch",
          o.LocationOf("max_parallel_writes"), o.id(), n);
    }
  }
  if (o.Has("batch_rows")) c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  if (o.Has("retry_max_attempts")) {
    c.retry_max_attempts = static_cast<int>(o.GetInt("retry_max_attempts"));
  }
  if (c.retry_max_attempts < 1) return o.ErrorAt("retry_max_attempts", "must be at least 1");
  if (o.Has("retry_initial_backoff")) {
    c.retry_initial_backoff_us = o.GetDurationMicros("retry_initial_backoff");
  }
  if (o.Has("statement_timeout")) c.statement_timeout_us = o.GetDurationMicros("statement_timeout");
  if (o.Has("connect_timeout")) c.connect_timeout_us = o.GetDurationMicros("connect_timeout");
  if (c.connect_timeout_us <= 0) return o.ErrorAt("connect_timeout", "must be positive");
  return c;
}

}  // namespace sluice::pg_sink

namespace sluice {

using pg_sink::PostgresSink;
using pg_sink::SinkConfig;

const OptionSchema& PostgresSinkOptions() {
  static const OptionSchema kOptions = {
      {"dsn",
       OptionType::kString,
       "",
       "libpq connection string or postgresql:// URI (${ENV} expands).",
       true,
       {}},
      {"table", OptionType::kString, "", "Table to write (may be schema.table).", true, {}},
      {"create_table",
       OptionType::kBool,
       "false",
       "Create the table from the first batch's schema if it does not exist, with the "
       "PostgreSQL types the batch records (tag pg_types: from postgres_archive or an archive's "
       "manifest), else types mapped from the sluice types.",
       false,
       {}},
      {"mode",
       OptionType::kEnum,
       "insert",
       "insert (binary COPY), upsert (staging table + INSERT ON CONFLICT), insert_batch "
       "(multi-row INSERTs) or delete (the table's rows whose `key` is in the batch: staged by "
       "COPY, one DELETE per batch; rows already gone are no error, counted in rows_deleted).",
       false,
       {"insert", "upsert", "insert_batch", "delete"}},
      {"on_conflict",
       OptionType::kEnum,
       "update",
       "For upsert, a row whose key is already in the table: update it, or keep the row "
       "there (first write wins — what a window's results need across restarts, where a "
       "window recomputed from part of its rows must not overwrite the complete one).",
       false,
       {"update", "keep"}},
      {"key",
       OptionType::kStringList,
       "",
       "Columns of the unique key upsert matches on (the primary key when creating); a batch "
       "with a NULL key fails whole, and of rows with the same key the batch's last wins.",
       false,
       {}},
      {"indexes",
       OptionType::kStringList,
       "",
       "Indexes, one per entry: a column (B-tree, or GiST for geometry and geography), "
       "several comma-separated (\"host, ts\": one B-tree on both), or auto: replicate's tag "
       "columns the table has — scale_operation_id, template_source_id, tenant_id, (synthetic, "
       "scale_operation_id). Made with the table (create_table), or after the load with "
       "index_after_load; counted in indexes_created (those not there before).",
       false,
       {}},
      {"index_after_load",
       OptionType::kBool,
       "false",
       "Create `indexes` once every row is written (at the end of a successful run): one "
       "sorted build instead of an update per row; works on an existing table too.",
       false,
       {}},
      {"partition_by",
       OptionType::kString,
       "",
       "When creating the table: timestamp column to range-partition by; partitions are "
       "created for the timestamps written.",
       false,
       {}},
      {"partition_interval",
       OptionType::kEnum,
       "",
       "Width of each partition (default month).",
       false,
       {"day", "month"}},
      {"partitions_ahead",
       OptionType::kInt,
       "0",
       "Partitions made ahead of the newest row written: the next N periods (so that a new "
       "day does not wait for DDL).",
       false,
       {}},
      {"retention",
       OptionType::kDuration,
       "",
       "Drop the partitions named as this sink names them (<table>_pYYYYMMDD or _pYYYYMM, a "
       "real date) once they end this long before the newest row written (counted no later "
       "than this host's clock), checked when a batch starts a new period; partitions of other "
       "names are left alone.",
       false,
       {}},
      {"pool_size",
       OptionType::kInt,
       "2",
       "Most connections in the pool this sink uses (shared by nodes with the same dsn).",
       false,
       {}},
      {"max_parallel_writes",
       OptionType::kInt,
       "1",
       "Batches written at once, each in its own transaction on its own connection (1 to 64). "
       "The first batch is written alone; after it, batches commit in any order: right for "
       "inserts and for keys each in one batch, not for a key updated by several.",
       false,
       {}},
      {"batch_rows",
       OptionType::kInt,
       "10000",
       "Rows encoded at a time (COPY) or per INSERT statement (insert_batch, at most 1000).",
       false,
       {}},
      {"retry_max_attempts",
       OptionType::kInt,
       "5",
       "Attempts per batch, the first included, when it fails retryably.",
       false,
       {}},
      {"retry_initial_backoff",
       OptionType::kDuration,
       "1s",
       "Wait before the first retry; doubles each time, up to 30s.",
       false,
       {}},
      {"statement_timeout",
       OptionType::kDuration,
       "",
       "Cancel a statement that runs longer than this (default: the server's).",
       false,
       {}},
      {"connect_timeout",
       OptionType::kDuration,
       "10s",
       "Give up connecting after this long.",
       false,
       {}},
  };
  return kOptions;
}

Result<std::unique_ptr<Sink>> MakePostgresSink(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, pg_sink::ParseSinkOptions(options));
  return std::unique_ptr<Sink>(new PostgresSink(options.id(), std::move(config)));
}

}  // namespace sluice
