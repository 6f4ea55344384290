// The `postgres_archive` source: the reading and deleting half of the audit-table archiver.
//
// One batch = one transaction on its own connection:
//   BEGIN; SELECT cols FROM t WHERE ts < cutoff ORDER BY ts, key LIMIT n FOR UPDATE SKIP LOCKED
// ... the batch travels to the sinks (encode, upload, verify) ...
//   Commit(seq): DELETE FROM t WHERE key = ANY(keys); assert deleted == read; COMMIT
//   Abandon(seq): ROLLBACK (the rows stay, unlocked, for a rerun)
// The rows are locked from the SELECT until the DELETE, so a second archiver on the same table
// skips them (SKIP LOCKED) and no row is archived twice; a crash at any point rolls back.
#include "sluice/connectors/postgres/archive_source.h"

#include <chrono>
#include <deque>
#include <map>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/core/units.h"
#include "sluice/resilience/adaptive_batch_sizer.h"

namespace sluice {

namespace {

using pg::PgConnection;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string Quote(const std::string& ident) {
  // Schema-qualified names quote each part: public.audit -> "public"."audit".
  std::string out;
  size_t start = 0;
  while (true) {
    const size_t dot = ident.find('.', start);
    std::string part =
        ident.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    std::string q = "\"";
    for (char c : part) {
      if (c == '"') q += '"';
      q += c;
    }
    q += '"';
    out += (out.empty() ? "" : ".") + q;
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return out;
}

struct TableJob {
  std::string database;  // the name under `databases:`
  std::string table;
  bool done = false;
  int64_t archived = 0;
};

struct Database {
  std::string name;
  std::string dsn;
  std::string replica_dsn;  // reserved: SELECT on a replica needs a separate lock design
  int pool_size = 4;
  std::vector<std::unique_ptr<PgConnection>> idle;
  int open = 0;  // connections created (idle + in use)
};

/// One batch handed out and not yet settled: its transaction is open on `conn`.
struct InFlight {
  size_t database;
  std::string table;
  std::unique_ptr<PgConnection> conn;
  std::string key_array;  // the keys as a PostgreSQL array literal
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t query_ns = 0;
  uint64_t batch_number = 0;
};

class ArchiveSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Make(const NodeOptions& o) {
    auto s = std::unique_ptr<ArchiveSource>(new ArchiveSource());
    s->id_ = o.id();
    const auto& defaults = o.GetJson("defaults");
    auto str = [&](const char* key, const std::string& fallback) {
      return defaults.is_object() && defaults.contains(key) && defaults[key].is_string()
                 ? defaults[key].get<std::string>()
                 : fallback;
    };
    s->ts_column_ = str("timestamp_column", "created_at");
    s->key_column_ = str("key_column", "id");
    const std::string cutoff = str("cutoff", "90d");
    auto cutoff_ts = ParseTimestamp(cutoff);
    if (cutoff_ts.ok()) {
      s->cutoff_us_ = *cutoff_ts;
    } else {
      auto age = ParseDurationMicros(cutoff);
      if (!age.ok()) {
        return o.ErrorAt("defaults",
                         "cutoff '" + cutoff + "' is neither a timestamp nor an age like 90d");
      }
      s->cutoff_us_ = NowMicros() - *age;
    }
    AdaptiveBatchSizerOptions sizing;
    sizing.initial_rows = o.GetInt("batch_size");
    sizing.min_rows = o.GetInt("min_batch_size");
    sizing.max_rows = o.GetInt("max_batch_size");
    sizing.target_latency_us = o.GetDurationMicros("target_query_time");
    if (sizing.min_rows < 1 || sizing.max_rows < sizing.min_rows) {
      return o.ErrorAt("min_batch_size", "need 1 <= min_batch_size <= max_batch_size");
    }
    s->sizer_ = std::make_unique<AdaptiveBatchSizer>(sizing);
    s->vacuum_ = o.GetString("vacuum");
    s->statement_timeout_ms_ = o.GetDurationMicros("statement_timeout") / 1000;
    s->connect_timeout_us_ = o.GetDurationMicros("connect_timeout");

    const auto& dbs = o.GetJson("databases");
    if (!dbs.is_object() || dbs.empty()) {
      return o.ErrorAt("databases",
                       "expected a mapping of database name -> {dsn, tables, pool_size}");
    }
    for (auto it = dbs.begin(); it != dbs.end(); ++it) {
      const auto& d = it.value();
      if (!d.is_object() || !d.contains("dsn") || !d["dsn"].is_string()) {
        return o.ErrorAt("databases", "database '" + it.key() + "' needs a `dsn`");
      }
      Database db;
      db.name = it.key();
      db.dsn = d["dsn"].get<std::string>();
      if (d.contains("pool_size")) {
        if (!d["pool_size"].is_number_integer() || d["pool_size"].get<int64_t>() < 1) {
          return o.ErrorAt("databases", "database '" + it.key() + "': pool_size must be >= 1");
        }
        db.pool_size = static_cast<int>(d["pool_size"].get<int64_t>());
      }
      if (!d.contains("tables") || !(d["tables"].is_array() || d["tables"].is_string())) {
        return o.ErrorAt("databases", "database '" + it.key() + "' needs `tables: [name, ...]`");
      }
      std::vector<std::string> tables;
      if (d["tables"].is_string()) {
        tables.push_back(d["tables"].get<std::string>());
      } else {
        for (const auto& t : d["tables"]) {
          if (!t.is_string()) return o.ErrorAt("databases", "table names must be strings");
          tables.push_back(t.get<std::string>());
        }
      }
      for (auto& t : tables) s->jobs_.push_back({db.name, t});
      s->databases_.push_back(std::move(db));
    }
    return std::unique_ptr<Source>(std::move(s));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    // Connect to every database now: a bad DSN or a missing table fails before any thread runs.
    for (size_t d = 0; d < databases_.size(); ++d) {
      SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
      for (const auto& job : jobs_) {
        if (job.database != databases_[d].name) continue;
        auto r = conn->ExecParams(fmt::format("SELECT {} , {} FROM {} LIMIT 0", Quote(ts_column_),
                                              Quote(key_column_), Quote(job.table)),
                                  {});
        if (!r.ok()) {
          return r.status().WithContext("node '{}': database '{}' table '{}'", id_,
                                        databases_[d].name, job.table);
        }
      }
      Return(d, std::move(conn));
    }
    return Status::OK();
  }

  int MaxInFlight() const override {
    // One open transaction per batch in flight; the pools bound them. Batches of one table at a
    // time, so the smallest pool of the databases is the bound.
    int bound = 0;
    for (const auto& d : databases_)
      bound = bound == 0 ? d.pool_size : std::min(bound, d.pool_size);
    return bound;
  }
  bool ConsumesInput() const override { return true; }

  Result<BatchPtr> Next(uint64_t seq) override {
    while (next_job_ < jobs_.size()) {
      TableJob& job = jobs_[next_job_];
      const size_t d = DatabaseIndex(job.database);
      SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
      auto batch = ReadBatch(d, job, std::move(conn), seq);
      if (!batch.ok()) return batch.status();
      if (*batch != nullptr) return batch;
      job.done = true;
      ++next_job_;
      last_key_.clear();
    }
    return BatchPtr{};
  }

  Status Commit(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return Status::OK();  // an empty batch
    InFlight f = std::move(it->second);
    in_flight_.erase(it);
    const Database& db = databases_[f.database];
    const int64_t t0 = NowNs();
    int64_t deleted = 0;
    if (!ctx_->dry_run()) {
      auto r = f.conn->ExecParams(
          fmt::format("DELETE FROM {} WHERE {} = ANY($1)", Quote(f.table), Quote(key_column_)),
          {f.key_array});
      if (!r.ok()) {
        (void)f.conn->Rollback();
        return r.status().WithContext("node '{}': database '{}' table '{}': deleting batch {}", id_,
                                      db.name, f.table, f.batch_number);
      }
      deleted = r->AffectedRows();
      if (deleted != f.rows) {
        (void)f.conn->Rollback();
        return Status::DataLoss(
            "node '{}': database '{}' table '{}': batch {} archived {} rows but the DELETE "
            "matched {}; rolled back, nothing deleted",
            id_, db.name, f.table, f.batch_number, f.rows, deleted);
      }
      SLUICE_RETURN_NOT_OK(f.conn->Commit().WithContext("node '{}': committing the delete", id_));
    } else {
      SLUICE_RETURN_NOT_OK(f.conn->Rollback());
    }
    const int64_t delete_ns = NowNs() - t0;
    ctx_->stats()->AddPhase("delete", delete_ns);
    ctx_->stats()->AddCounter(ctx_->dry_run() ? "rows_would_delete" : "deleted_rows", f.rows);
    Log(LogLevel::kInfo,
        "database={} table={} batch={} records={} bytes={} query_ms={:.1f} delete_ms={:.1f}{}",
        db.name, f.table, f.batch_number, f.rows, f.bytes, f.query_ns / 1e6, delete_ns / 1e6,
        ctx_->dry_run() ? " dry_run=true" : "");
    Return(f.database, std::move(f.conn));
    return Status::OK();
  }

  void Abandon(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return;
    (void)it->second.conn->Rollback();  // the rows stay, unlocked; a rerun archives them
    Return(it->second.database, std::move(it->second.conn));
    in_flight_.erase(it);
  }

  Status Close() override {
    for (auto& [seq, f] : in_flight_) (void)f.conn->Rollback();
    in_flight_.clear();
    if (vacuum_ == "none" || ctx_ == nullptr || ctx_->dry_run() || ctx_->cancelled()) {
      return Status::OK();
    }
    for (const auto& job : jobs_) {
      if (job.archived == 0) continue;
      const size_t d = DatabaseIndex(job.database);
      SLUICE_ASSIGN_OR_RETURN(auto conn, Lease(d));
      const int64_t t0 = NowNs();
      auto r = conn->Exec(fmt::format(
          "VACUUM {}{}", vacuum_ == "full" ? "(FULL, ANALYZE) " : "(ANALYZE) ", Quote(job.table)));
      ctx_->stats()->AddPhase("vacuum", NowNs() - t0);
      if (!r.ok()) {
        return r.status().WithContext("node '{}': database '{}': vacuum of '{}'", id_, job.database,
                                      job.table);
      }
      Return(d, std::move(conn));
    }
    return Status::OK();
  }

 private:
  size_t DatabaseIndex(const std::string& name) const {
    for (size_t i = 0; i < databases_.size(); ++i) {
      if (databases_[i].name == name) return i;
    }
    return 0;
  }

  Result<std::unique_ptr<PgConnection>> Lease(size_t d) {
    Database& db = databases_[d];
    while (!db.idle.empty()) {
      auto conn = std::move(db.idle.back());
      db.idle.pop_back();
      if (conn->IsHealthy()) return conn;
      --db.open;  // dropped: a fresh one replaces it
    }
    auto conn = PgConnection::Connect(db.dsn, connect_timeout_us_);
    if (!conn.ok()) {
      return conn.status().WithContext("node '{}': database '{}'", id_, db.name);
    }
    ++db.open;
    if (statement_timeout_ms_ > 0)
      SLUICE_RETURN_NOT_OK((*conn)->SetStatementTimeout(statement_timeout_ms_));
    return std::move(*conn);
  }

  void Return(size_t d, std::unique_ptr<PgConnection> conn) {
    if (conn != nullptr && !conn->InTransaction()) databases_[d].idle.push_back(std::move(conn));
  }

  /// Lock and read the next batch of `job` on `conn`; null when the table has no more rows.
  Result<BatchPtr> ReadBatch(size_t d, TableJob& job, std::unique_ptr<PgConnection> conn,
                             uint64_t seq) {
    const int64_t limit = sizer_->read_size();
    std::string sql;
    pg::PgParams params = {FormatTimestamp(cutoff_us_)};
    if (ctx_->dry_run()) {
      // Touch nothing: no locks; page through with the key instead of deleting.
      sql = fmt::format("SELECT * FROM {} WHERE {} < $1::timestamptz{} ORDER BY {} LIMIT {}",
                        Quote(job.table), Quote(ts_column_),
                        last_key_.empty() ? "" : fmt::format(" AND {} > $2", Quote(key_column_)),
                        Quote(key_column_), limit);
      if (!last_key_.empty()) params.push_back(last_key_);
    } else {
      sql = fmt::format(
          "SELECT * FROM {} WHERE {} < $1::timestamptz ORDER BY {}, {} LIMIT {} FOR UPDATE SKIP "
          "LOCKED",
          Quote(job.table), Quote(ts_column_), Quote(ts_column_), Quote(key_column_), limit);
    }
    const int64_t t0 = NowNs();
    SLUICE_RETURN_NOT_OK(conn->Begin());
    auto result = conn->ExecParams(sql, params, pg::PgFormat::kBinary);
    if (!result.ok()) {
      (void)conn->Rollback();
      return result.status().WithContext("node '{}': database '{}' table '{}'", id_, job.database,
                                         job.table);
    }
    const int64_t query_ns = NowNs() - t0;
    ctx_->stats()->AddPhase("query", query_ns);
    const int rows = result->num_rows();
    if (rows == 0) {
      (void)conn->Rollback();
      Return(d, std::move(conn));
      return BatchPtr{};
    }
    sizer_->Observe(rows, query_ns / 1000);

    // Decode; cache the column plan per table.
    auto& plan = plans_[job.database + "." + job.table];
    if (plan.schema == nullptr) {
      SLUICE_ASSIGN_OR_RETURN(auto columns, pg::ResolveColumns(conn.get(), *result));
      std::vector<Field> fields;
      for (const auto& c : columns) {
        if (!c.codec) {
          return Status::NotImplemented(
              "node '{}': table '{}' column '{}' has type {} that sluice cannot read yet", id_,
              job.table, c.name, c.type_name);
        }
        plan.codecs.push_back(*c.codec);
        fields.push_back({c.name, pg::DefaultTypeFor(*c.codec), true});
        if (c.name == key_column_) plan.key_index = static_cast<int>(fields.size()) - 1;
      }
      if (plan.key_index < 0) {
        return Status::ConfigError("node '{}': table '{}' has no key column '{}'", id_, job.table,
                                   key_column_);
      }
      plan.data_schema = MakeSchema(fields);
      fields.push_back({"_database", TypeId::kString, false});
      fields.push_back({"_table", TypeId::kString, false});
      plan.schema = MakeSchema(std::move(fields));
    }
    std::vector<ColumnBuilder> builders;
    for (const auto& f : plan.data_schema->fields()) builders.emplace_back(f.type, rows);
    SLUICE_RETURN_NOT_OK(pg::AppendResultRows(*result, plan.codecs, &builders, &scratch_));
    std::vector<Column> cols;
    for (auto& b : builders) cols.push_back(b.Finish());
    ColumnBuilder db_col(TypeId::kString, rows), table_col(TypeId::kString, rows);
    for (int i = 0; i < rows; ++i) {
      db_col.AppendString(job.database);
      table_col.AppendString(job.table);
    }
    cols.push_back(db_col.Finish());
    cols.push_back(table_col.Finish());
    BatchPtr batch = Batch::MakeUnchecked(plan.schema, std::move(cols), rows);

    // Remember the keys, as an array literal for DELETE ... = ANY($1).
    const Column& key = batch->column(plan.key_index);
    std::string keys = "{";
    for (int64_t i = 0; i < rows; ++i) {
      if (i > 0) keys += ',';
      if (key.type() == TypeId::kInt64) {
        keys += std::to_string(key.GetInt64(i));
      } else {
        keys += '"';
        for (char c : key.GetView(i)) {
          if (c == '"' || c == '\\') keys += '\\';
          keys += c;
        }
        keys += '"';
      }
    }
    keys += '}';
    if (ctx_->dry_run()) {
      last_key_ = key.type() == TypeId::kInt64 ? std::to_string(key.GetInt64(rows - 1))
                                               : std::string(key.GetView(rows - 1));
    }
    job.archived += rows;
    InFlight f{d,    job.table,         std::move(conn), std::move(keys),
               rows, batch->ByteSize(), query_ns,        ++batches_};
    in_flight_.emplace(seq, std::move(f));
    return batch;
  }

  struct Plan {
    SchemaPtr schema;       // data columns + _database + _table
    SchemaPtr data_schema;  // as read
    std::vector<pg::PgCodec> codecs;
    int key_index = -1;
  };

  std::string id_;
  NodeContext* ctx_ = nullptr;
  std::string ts_column_;
  std::string key_column_;
  int64_t cutoff_us_ = 0;
  std::string vacuum_;
  int64_t statement_timeout_ms_ = 0;
  int64_t connect_timeout_us_ = 10'000'000;
  std::unique_ptr<AdaptiveBatchSizer> sizer_;
  std::vector<Database> databases_;
  std::vector<TableJob> jobs_;
  size_t next_job_ = 0;
  std::map<uint64_t, InFlight> in_flight_;
  std::map<std::string, Plan> plans_;
  std::string scratch_;
  std::string last_key_;  // dry-run paging
  uint64_t batches_ = 0;
};

}  // namespace

void RegisterPostgresArchiveNode(NodeRegistry* registry) {
  registry->AddSource(
      "postgres_archive",
      "Archive rows older than a cutoff out of PostgreSQL tables: lock a batch (FOR UPDATE SKIP "
      "LOCKED), hand it downstream, and delete it in the same transaction once every sink made "
      "it durable.",
      {
          {"databases",
           OptionType::kMap,
           "",
           "Database name -> {dsn, tables: [..], pool_size}.",
           true,
           {}},
          {"defaults",
           OptionType::kMap,
           "",
           "Shared by every table: timestamp_column (created_at), key_column (id), cutoff (an "
           "age like 90d, or a timestamp).",
           false,
           {}},
          {"batch_size", OptionType::kInt, "10000", "Rows in the first batch.", false, {}},
          {"min_batch_size", OptionType::kInt, "1000", "Smallest adaptive batch.", false, {}},
          {"max_batch_size", OptionType::kInt, "50000", "Largest adaptive batch.", false, {}},
          {"target_query_time",
           OptionType::kDuration,
           "2s",
           "Batch sizes adapt (AIMD) toward this SELECT time.",
           false,
           {}},
          {"vacuum",
           OptionType::kEnum,
           "analyze",
           "After the run, per table archived from.",
           false,
           {"analyze", "full", "none"}},
          {"statement_timeout", OptionType::kDuration, "0s", "Per statement; 0 = none.", false, {}},
          {"connect_timeout", OptionType::kDuration, "10s", "Per connection attempt.", false, {}},
      },
      &ArchiveSource::Make);
}

}  // namespace sluice
