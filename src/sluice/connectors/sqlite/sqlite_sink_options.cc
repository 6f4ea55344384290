// The `sqlite` sink's options: their schema (docs, validation) and parsing them into a
// SinkConfig.

#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/connectors/sqlite/sqlite_sink_internal.h"
#include "sluice/engine/index_entries.h"

namespace sluice {

namespace sqlite_sink {

Result<SinkConfig> ParseSinkOptions(const NodeOptions& o) {
  SinkConfig c;
  c.path = o.GetString("path");
  if (c.path.empty()) return o.ErrorAt("path", "a database file is required");
  c.table = o.GetString("table");
  if (c.table.empty()) return o.ErrorAt("table", "a table name is required");
  if (o.Has("create_table")) c.create_table = o.GetBool("create_table");
  c.primary_key = o.GetString("primary_key");
  c.indexes = o.GetStringList("indexes");
  for (const std::string& entry : c.indexes) {
    for (const std::string_view col : SplitIndexColumns(entry)) {
      if (col.empty()) {
        return o.ErrorAt("indexes", "'" + entry +
                                        "': an empty column name (a multicolumn index is "
                                        "written \"a, b\")");
      }
    }
  }
  if (o.Has("index_after_load")) c.index_after_load = o.GetBool("index_after_load");
  if (c.index_after_load && c.indexes.empty()) {
    return o.ErrorAt("index_after_load", "needs 'indexes': the columns to index");
  }
  if (o.Has("batch_rows")) c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  const std::string mode = o.Has("mode") ? o.GetString("mode") : "insert";
  if (mode == "insert") {
    c.mode = SinkMode::kInsert;
  } else if (mode == "replace") {
    c.mode = SinkMode::kReplace;
  } else if (mode == "delete") {
    c.mode = SinkMode::kDelete;
  } else {
    return o.ErrorAt("mode", "must be insert, replace or delete");
  }
  c.key = o.GetStringList("key");
  if (c.mode == SinkMode::kDelete) {
    if (c.key.empty()) {
      return o.ErrorAt("key",
                       "delete needs 'key': the columns whose values name the rows to delete");
    }
    // A delete removes rows from a table that is there; it neither makes nor indexes one
    // (create_table, true by default for the other modes, does not apply).
    c.create_table = false;
    if (!c.indexes.empty()) return o.ErrorAt("indexes", "mode delete creates no indexes");
    if (!c.primary_key.empty()) {
      return o.ErrorAt("primary_key", "mode delete matches rows by 'key', not primary_key");
    }
  } else if (!c.key.empty()) {
    return o.ErrorAt("key",
                     "only mode delete uses it; replace matches rows on the table's primary key "
                     "or unique constraints");
  }
  auto pick = [&](const std::string& name, std::string* out,
                  std::initializer_list<std::string_view> choices) -> Status {
    if (!o.Has(name)) return Status::OK();
    std::string v = o.GetString(name);
    for (auto& ch : v) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    for (std::string_view choice : choices) {
      if (v == choice) {
        *out = v;
        return Status::OK();
      }
    }
    return o.ErrorAt(name, fmt::format("'{}' is not one of {}", v, fmt::join(choices, ", ")));
  };
  SLUICE_RETURN_NOT_OK(pick("journal_mode", &c.journal_mode,
                            {"wal", "delete", "truncate", "persist", "memory", "off"}));
  SLUICE_RETURN_NOT_OK(pick("synchronous", &c.synchronous, {"off", "normal", "full", "extra"}));
  std::string ts_format = "iso";
  SLUICE_RETURN_NOT_OK(pick("timestamp_format", &ts_format, {"iso", "micros"}));
  c.timestamp_micros = ts_format == "micros";
  if (o.Has("busy_timeout")) c.busy_timeout_us = o.GetDurationMicros("busy_timeout");
  return c;
}

}  // namespace sqlite_sink

const OptionSchema& SqliteSinkOptions() {
  static const OptionSchema kOptions = {
      {"path", OptionType::kString, "", "SQLite database file (created if missing).", true, {}},
      {"table", OptionType::kString, "", "Table to write to (or delete from).", true, {}},
      {"primary_key",
       OptionType::kString,
       "",
       "When creating the table: this int64 column becomes its INTEGER PRIMARY KEY.",
       false,
       {}},
      {"indexes",
       OptionType::kStringList,
       "",
       "Indexes, one per entry: a column, several comma-separated (\"a, b\": one index on "
       "both), or auto: replicate's tag columns the table has — scale_operation_id, "
       "template_source_id, tenant_id, (synthetic, scale_operation_id). Made at the first "
       "batch, or after the load with index_after_load; counted in indexes_created (those not "
       "there before).",
       false,
       {}},
      {"index_after_load",
       OptionType::kBool,
       "false",
       "Create `indexes` once every row is written (at the end of a successful run): one "
       "sorted build instead of an update per row.",
       false,
       {}},
      {"create_table",
       OptionType::kBool,
       "true",
       "Create the table from the first batch's schema if it does not exist (mode delete never "
       "does).",
       false,
       {}},
      {"batch_rows", OptionType::kInt, "50000", "Most rows per transaction.", false, {}},
      {"mode",
       OptionType::kEnum,
       "insert",
       "insert; replace rows whose primary key or unique constraint matches; or delete the "
       "table's rows whose `key` is in the batch (rows already gone are no error; counted in "
       "rows_deleted).",
       false,
       {"insert", "replace", "delete"}},
      {"key",
       OptionType::kStringList,
       "",
       "For mode delete: the columns whose values name the rows to delete (a batch with a NULL "
       "key fails whole).",
       false,
       {}},
      {"journal_mode",
       OptionType::kEnum,
       "wal",
       "SQLite journal mode set on open.",
       false,
       {"wal", "delete", "truncate", "persist", "memory", "off"}},
      {"synchronous",
       OptionType::kEnum,
       "full",
       "SQLite synchronous setting set on open. full (the default) puts each batch on disk "
       "before it is acknowledged, as a source that deletes what it read needs.",
       false,
       {"off", "normal", "full", "extra"}},
      {"timestamp_format",
       OptionType::kEnum,
       "iso",
       "Store timestamps as ISO-8601 text or as integer microseconds.",
       false,
       {"iso", "micros"}},
      {"busy_timeout",
       OptionType::kDuration,
       "5s",
       "How long to wait for a locked database before failing (retryably).",
       false,
       {}},
  };
  return kOptions;
}

}  // namespace sluice
