#include "sluice/connectors/postgres/archive_options.h"

#include "sluice/core/time.h"
#include "sluice/core/units.h"

namespace sluice::pg_archive {

namespace {

/// The keys a table entry (and `defaults:`) may set. Their defaults are documentation: a key
/// left out inherits from `defaults:`, then from the node's top-level option of that name.
std::vector<OptionSpec> TableFields() {
  return {
      {"timestamp_column", OptionType::kString, "created_at",
       "Rows whose value here is older than the cutoff are archived (timestamptz, timestamp or "
       "date; rows where it is NULL are never archived)."},
      {"key_column", OptionType::kString, "id",
       "Names objects ({first_key}) and checks a redone batch's rows; any type, NULLs and "
       "duplicates allowed (rows are locked and deleted by their physical identity)."},
      {"cutoff", OptionType::kString, "90d", "An age (90d, 12h) or a timestamp (2026-01-01)."},
      {"batch_size", OptionType::kInt, "", "Rows in the first batch (node option by default)."},
      {"min_batch_size", OptionType::kInt, "", "Smallest adaptive batch."},
      {"max_batch_size", OptionType::kInt, "", "Largest adaptive batch."},
      {"target_query_time", OptionType::kDuration, "", "Batch sizes adapt toward this."},
      {"vacuum",
       OptionType::kEnum,
       "",
       "After the run, if rows were archived.",
       false,
       {"analyze", "full", "none"}},
      {"read_order",
       OptionType::kEnum,
       "",
       "Order of batches in a table this run holds alone (node option by default).",
       false,
       {"physical", "time"}},
  };
}

/// Return `key` of the first of `layers` (most specific first) that sets it, else null.
const OptionJson* Lookup(const std::vector<const OptionJson*>& layers, const char* key) {
  for (const OptionJson* layer : layers) {
    if (layer != nullptr && layer->is_object() && layer->contains(key)) return &(*layer)[key];
  }
  return nullptr;
}

/// Return the option path of `key` in the first layer that sets it, for error positions.
std::string PathOf(const std::vector<std::pair<const OptionJson*, std::string>>& layers,
                   const char* key, const std::string& fallback) {
  for (const auto& [layer, path] : layers) {
    if (layer != nullptr && layer->is_object() && layer->contains(key)) return path + "." + key;
  }
  return fallback;
}

}  // namespace

OptionSchema ArchiveOptionSchema() {
  std::vector<OptionSpec> table_fields = TableFields();
  return {
      OptionSpec::NamedRecords(
          "databases",
          "Database name -> {dsn, replica_dsn, pool_size, tables}. With replica_dsn the batches "
          "are read (unlocked) on that replica, then locked, re-checked against the cutoff and "
          "deleted on the primary: rows the replica does not have yet are archived by a later "
          "run, and a row updated on the primary after the replica read it is archived as the "
          "replica saw it (fine for append-only tables).",
          {
              {"dsn", OptionType::kString, "", "libpq connection string of the primary.", true},
              {"replica_dsn", OptionType::kString, "",
               "Read the pages here, without locks; lock and delete on the primary."},
              {"pool_size", OptionType::kInt, "4",
               "Connections to the primary: batches in flight at once."},
              OptionSpec::NamedRecords(
                  "tables",
                  "Tables to archive, one after another: a list of names, or name -> settings "
                  "overriding `defaults` for that table.",
                  table_fields, /*required=*/true, /*names_as_list=*/true),
          },
          /*required=*/true),
      {"read_lanes", OptionType::kInt, "2",
       "Timestamp ranges of a table read at once, each on its own pooled connection (at most "
       "pool_size - 1), when this run holds the table alone; 1 reads one page at a time."},
      {"max_parallel_databases", OptionType::kInt, "1",
       "Databases archived at once (each with its own pool); their batches interleave. The "
       "tables of one database go one after another."},
      OptionSpec::Record("defaults",
                         "Settings shared by every table (a table's own entry overrides them).",
                         table_fields),
      {"batch_size", OptionType::kInt, "10000", "Rows in the first batch."},
      {"min_batch_size", OptionType::kInt, "1000", "Smallest adaptive batch."},
      {"max_batch_size", OptionType::kInt, "50000", "Largest adaptive batch."},
      {"target_query_time", OptionType::kDuration, "2s",
       "Batch sizes adapt (AIMD) toward this SELECT time."},
      {"vacuum",
       OptionType::kEnum,
       "analyze",
       "After the run, per table archived from.",
       false,
       {"analyze", "full", "none"}},
      {"read_order",
       OptionType::kEnum,
       "physical",
       "How a table this run holds alone is cut into batches. physical: ranges of its heap "
       "blocks, each deleted in one pass (every page written once; an object holds the old rows "
       "of its blocks, of any age). time: (timestamp, ctid) order, each object a contiguous "
       "span of time; slower when rows are not stored in time order (each batch touches pages "
       "all over the table). Shared and replica reads are always in time order.",
       false,
       {"physical", "time"}},
      {"statement_timeout", OptionType::kDuration, "0s", "Per statement; 0 = none."},
      {"connect_timeout", OptionType::kDuration, "10s", "Per connection attempt."},
      {"state_table", OptionType::kString, "sluice_archive_batches",
       "Table (created in each database) recording each batch's rows until its DELETE commits, "
       "so a rerun after a crash rewrites the same objects instead of duplicating rows; `none` "
       "turns it off (at-least-once after a crash)."},
  };
}

Result<ArchiveOptions> ParseArchiveOptions(const NodeOptions& o, int64_t now_us) {
  ArchiveOptions out;
  out.state_table = o.GetString("state_table");
  if (out.state_table == "none") out.state_table.clear();
  out.statement_timeout_ms = o.GetDurationMicros("statement_timeout") / 1000;
  out.connect_timeout_us = o.GetDurationMicros("connect_timeout");
  const int64_t parallel = o.GetInt("max_parallel_databases");
  if (parallel < 1) return o.ErrorAt("max_parallel_databases", "must be at least 1");
  out.max_parallel_databases = static_cast<int>(parallel);
  const int64_t lanes = o.GetInt("read_lanes");
  if (lanes < 1 || lanes > 64) return o.ErrorAt("read_lanes", "must be 1..64");
  out.read_lanes = static_cast<int>(lanes);

  const OptionJson& defaults = o.GetJson("defaults");
  const OptionJson& dbs = o.GetJson("databases");
  if (!dbs.is_object() || dbs.empty()) {
    return o.ErrorAt("databases", "expected a mapping of database name -> {dsn, tables}");
  }
  for (const auto& [db_name, d] : dbs.items()) {
    const std::string db_path = "databases." + db_name;
    DatabaseSettings db;
    db.name = db_name;
    db.dsn = d.value("dsn", "");
    if (db.dsn.empty()) return o.ErrorAt(db_path + ".dsn", "must not be empty");
    db.replica_dsn = d.value("replica_dsn", "");
    const int64_t pool = d.value("pool_size", int64_t{4});
    if (pool < 1 || pool > 1000) return o.ErrorAt(db_path + ".pool_size", "must be 1..1000");
    db.pool_size = static_cast<int>(pool);
    for (const auto& [table, entry] : d["tables"].items()) {
      const std::string table_path = db_path + ".tables." + table;
      const std::vector<const OptionJson*> layers = {&entry, &defaults};
      const std::vector<std::pair<const OptionJson*, std::string>> paths = {
          {&entry, table_path}, {&defaults, "defaults"}};
      auto text = [&](const char* key, const std::string& fallback) {
        const OptionJson* v = Lookup(layers, key);
        return v != nullptr && v->is_string() ? v->get<std::string>() : fallback;
      };
      auto integer = [&](const char* key) {
        const OptionJson* v = Lookup(layers, key);
        return v != nullptr && v->is_number_integer() ? v->get<int64_t>() : o.GetInt(key);
      };
      TableSettings t;
      t.table = table;
      t.timestamp_column = text("timestamp_column", "created_at");
      t.key_column = text("key_column", "id");
      for (const char* key : {"timestamp_column", "key_column"}) {
        if (text(key, "x").empty()) return o.ErrorAt(PathOf(paths, key, table_path), "is empty");
      }
      t.cutoff_text = text("cutoff", "90d");
      if (auto at = ParseTimestamp(t.cutoff_text); at.ok()) {
        t.cutoff_us = *at;
      } else if (auto age = ParseDurationMicros(t.cutoff_text); age.ok() && *age > 0) {
        t.cutoff_us = now_us - *age;
      } else {
        return o.ErrorAt(
            PathOf(paths, "cutoff", table_path),
            "'" + t.cutoff_text + "' is neither an age like 90d nor a timestamp like 2026-01-01");
      }
      t.sizing.initial_rows = integer("batch_size");
      t.sizing.min_rows = integer("min_batch_size");
      t.sizing.max_rows = integer("max_batch_size");
      const OptionJson* target = Lookup(layers, "target_query_time");
      t.sizing.target_latency_us = target != nullptr && target->is_number_integer()
                                       ? target->get<int64_t>()
                                       : o.GetDurationMicros("target_query_time");
      if (t.sizing.min_rows < 1 || t.sizing.max_rows < t.sizing.min_rows ||
          t.sizing.initial_rows < 1) {
        return o.ErrorAt(
            PathOf(paths, "min_batch_size", "min_batch_size"),
            fmt::format("table '{}': need 1 <= min_batch_size ({}) <= "
                        "max_batch_size ({}) and batch_size ({}) >= 1",
                        table, t.sizing.min_rows, t.sizing.max_rows, t.sizing.initial_rows));
      }
      t.vacuum = text("vacuum", o.GetString("vacuum"));
      t.by_blocks = text("read_order", o.GetString("read_order")) == "physical";
      db.tables.push_back(std::move(t));
    }
    out.databases.push_back(std::move(db));
  }
  return out;
}

}  // namespace sluice::pg_archive
