// The `sqlite` sink: insert batches into a table with one reused prepared statement, one
// transaction per batch (or per batch_rows rows of a larger batch).

#include <array>
#include <chrono>
#include <filesystem>

#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/connectors/sqlite/sqlite_internal.h"
#include "sluice/core/durable_dir.h"
#include "sluice/core/time.h"

namespace sluice {

using sqlite_internal::DbPtr;
using sqlite_internal::StmtPtr;

namespace {

constexpr int64_t kDefaultTransactionRows = 50'000;
constexpr int64_t kDefaultBusyTimeoutUs = 5'000'000;

struct SinkConfig {
  std::string path;
  std::string table;
  bool create_table = true;
  std::string primary_key;           // column declared INTEGER PRIMARY KEY when creating
  std::vector<std::string> indexes;  // columns indexed when creating
  int64_t batch_rows = kDefaultTransactionRows;
  bool replace = false;
  std::string journal_mode = "wal";
  // FULL: each commit is on disk before Write releases the acks, so a source that deletes what
  // it read (delete_after_ack) never deletes a row that a power loss could take from here. In
  // WAL mode NORMAL would only sync at checkpoints: the last commits could be lost.
  std::string synchronous = "full";
  bool timestamp_micros = false;
  int64_t busy_timeout_us = kDefaultBusyTimeoutUs;
};

/// Insert rows into a SQLite table. Each Write commits before it returns and only then
/// releases the batch's acks, so an acked row is on disk (to the durability `synchronous`
/// gives). A batch larger than batch_rows is split into several transactions; if a later one
/// fails, the earlier ones stay committed and a rerun inserts those rows again (at-least-once,
/// unless mode: replace and a primary key make the rerun idempotent). Called from one thread.
class SqliteSink final : public Sink {
 public:
  SqliteSink(std::string id, SinkConfig config) : id_(std::move(id)), config_(std::move(config)) {}

  Status Open(NodeContext* ctx) override;
  Status Write(const BatchPtr& batch, AckSet acks) override;
  Status Close() override;

 private:
  std::string Context() const { return fmt::format("node '{}'", id_); }
  Status PrepareFor(const SchemaPtr& schema);
  Status InsertRows(const Batch& batch, int64_t begin, int64_t end);
  Status InsertTransaction(const Batch& batch, int64_t begin, int64_t end);

  const std::string id_;
  const SinkConfig config_;
  NodeContext* ctx_ = nullptr;
  DbPtr db_;
  StmtPtr insert_;
  SchemaPtr schema_;  // the schema insert_ was prepared for
  // One formatting buffer per column for ISO timestamps, bound with SQLITE_STATIC: each stays
  // untouched until the row it holds has been stepped.
  std::vector<std::array<char, 40>> timestamp_text_;
};

Status SqliteSink::Open(NodeContext* ctx) {
  ctx_ = ctx;
  if (ctx_->dry_run()) return Status::OK();
  // Create the database's folder (`path: demo/audit.db` in a fresh checkout), and make a new
  // folder and a new database file durable: SQLite syncs the file and its journal, not the
  // directory entry of the database file itself.
  const bool in_memory = config_.path == ":memory:";
  const std::string dir = std::filesystem::path(config_.path).parent_path().string();
  std::error_code ec;
  const bool is_new = !in_memory && !std::filesystem::exists(config_.path, ec);
  if (is_new && !dir.empty()) {
    auto created = CreateDirectoriesDurably(dir);
    if (!created.ok()) {
      return created.status().WithContext("{}: creating the folder of SQLite database '{}'",
                                          Context(), config_.path);
    }
  }
  SLUICE_ASSIGN_OR_RETURN(
      db_, sqlite_internal::OpenDatabase(
               config_.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
               config_.busy_timeout_us, Context()));
  // Both values come from the option's enum choices, so pasting them is safe.
  SLUICE_RETURN_NOT_OK(
      sqlite_internal::Exec(db_.get(), "PRAGMA journal_mode = " + config_.journal_mode, Context()));
  SLUICE_RETURN_NOT_OK(
      sqlite_internal::Exec(db_.get(), "PRAGMA synchronous = " + config_.synchronous, Context()));
  if (is_new) {
    Status st = FsyncDirectory(dir);
    if (!st.ok()) return st.WithContext("{}: new SQLite database '{}'", Context(), config_.path);
  }
  return Status::OK();
}

Status SqliteSink::PrepareFor(const SchemaPtr& schema) {
  using sqlite_internal::QuoteIdentifier;
  insert_.reset();
  const std::string table = QuoteIdentifier(config_.table);
  if (config_.create_table) {
    std::string ddl = "CREATE TABLE IF NOT EXISTS " + table + " (";
    for (int i = 0; i < schema->num_fields(); ++i) {
      const Field& f = schema->field(i);
      if (i > 0) ddl += ", ";
      ddl += QuoteIdentifier(f.name);
      ddl += ' ';
      if (f.name == config_.primary_key) {
        // An integer primary key is the rowid: deletes and keyset paging by it need no index.
        if (f.type != TypeId::kInt64) {
          return Status::ConfigError("{}: primary_key '{}' must be an int64 column, not {}",
                                     Context(), f.name, TypeName(f.type));
        }
        ddl += "INTEGER PRIMARY KEY";
        continue;
      }
      // Timestamps are declared TIMESTAMP in both formats: the source reads ISO text and
      // integer µs alike.
      ddl += sqlite_internal::DeclaredTypeFor(f.type);
    }
    ddl += ")";
    if (!config_.primary_key.empty() && schema->FieldIndex(config_.primary_key) < 0) {
      return Status::ConfigError("{}: primary_key '{}' is not a column of the input", Context(),
                                 config_.primary_key);
    }
    SLUICE_RETURN_NOT_OK(sqlite_internal::Exec(db_.get(), ddl, Context()));
    for (const auto& col : config_.indexes) {
      if (schema->FieldIndex(col) < 0) {
        return Status::ConfigError("{}: cannot index '{}': not a column of the input", Context(),
                                   col);
      }
      SLUICE_RETURN_NOT_OK(sqlite_internal::Exec(
          db_.get(),
          "CREATE INDEX IF NOT EXISTS " + QuoteIdentifier(config_.table + "_" + col) + " ON " +
              table + " (" + QuoteIdentifier(col) + ")",
          Context()));
    }
  }
  std::string sql = config_.replace ? "INSERT OR REPLACE INTO " : "INSERT INTO ";
  sql += table + " (";
  std::string values;
  for (int i = 0; i < schema->num_fields(); ++i) {
    if (i > 0) {
      sql += ", ";
      values += ", ";
    }
    sql += QuoteIdentifier(schema->field(i).name);
    values += "?";
  }
  sql += ") VALUES (" + values + ")";
  SLUICE_ASSIGN_OR_RETURN(insert_, sqlite_internal::Prepare(db_.get(), sql, Context()));
  schema_ = schema;
  timestamp_text_.assign(static_cast<size_t>(schema->num_fields()), {});
  return Status::OK();
}

Status SqliteSink::Write(const BatchPtr& batch, AckSet acks) {
  if (ctx_->dry_run() || batch->num_rows() == 0) return Status::OK();
  const auto start = std::chrono::steady_clock::now();
  if (insert_ == nullptr || (schema_ != batch->schema() && !(*schema_ == *batch->schema()))) {
    SLUICE_RETURN_NOT_OK(PrepareFor(batch->schema()));
  }
  const int64_t n = batch->num_rows();
  for (int64_t begin = 0; begin < n; begin += config_.batch_rows) {
    SLUICE_RETURN_NOT_OK(InsertTransaction(*batch, begin, std::min(n, begin + config_.batch_rows)));
  }
  if (ctx_->stats() != nullptr) {
    ctx_->stats()->AddPhase("insert", std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now() - start)
                                          .count());
  }
  acks.Release();  // committed: the rows are durable
  return Status::OK();
}

Status SqliteSink::InsertTransaction(const Batch& batch, int64_t begin, int64_t end) {
  sqlite3* db = db_.get();
  // IMMEDIATE takes the write lock now, so a busy database fails before any row is bound.
  SLUICE_RETURN_NOT_OK(sqlite_internal::Exec(db, "BEGIN IMMEDIATE", Context()));
  Status st = InsertRows(batch, begin, end);
  if (st.ok()) {
    const int rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return Status::OK();
    st = sqlite_internal::SqliteError(rc, db, Context() + ": committing inserts");
  }
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return st;
}

Status SqliteSink::InsertRows(const Batch& batch, int64_t begin, int64_t end) {
  sqlite3_stmt* stmt = insert_.get();
  const int num_columns = batch.num_columns();
  for (int64_t r = begin; r < end; ++r) {
    for (int c = 0; c < num_columns; ++c) {
      const Column& col = batch.column(c);
      const int p = c + 1;
      int rc;
      if (col.IsNull(r)) {
        rc = sqlite3_bind_null(stmt, p);
      } else {
        switch (col.type()) {
          case TypeId::kBool:
            rc = sqlite3_bind_int(stmt, p, col.GetBool(r) ? 1 : 0);
            break;
          case TypeId::kInt64:
            rc = sqlite3_bind_int64(stmt, p, col.GetInt64(r));
            break;
          case TypeId::kFloat64:
            rc = sqlite3_bind_double(stmt, p, col.GetFloat64(r));
            break;
          case TypeId::kTimestamp:
            if (config_.timestamp_micros) {
              rc = sqlite3_bind_int64(stmt, p, col.GetInt64(r));
            } else {
              char* buf = timestamp_text_[static_cast<size_t>(c)].data();
              const int len = FormatTimestamp(col.GetInt64(r), buf);
              rc = sqlite3_bind_text(stmt, p, buf, len, SQLITE_STATIC);
            }
            break;
          case TypeId::kString:
          case TypeId::kJson: {
            // A null pointer would bind SQL NULL; an empty value must stay an empty string.
            const std::string_view v = col.GetView(r);
            rc = sqlite3_bind_text(stmt, p, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                                   SQLITE_STATIC);
            break;
          }
          case TypeId::kBytes:
          case TypeId::kGeometry: {
            const std::string_view v = col.GetView(r);
            rc = sqlite3_bind_blob(stmt, p, v.empty() ? "" : v.data(), static_cast<int>(v.size()),
                                   SQLITE_STATIC);
            break;
          }
          default:
            rc = SQLITE_MISMATCH;
        }
      }
      if (rc != SQLITE_OK) {
        return sqlite_internal::SqliteError(rc, db_.get(),
                                            fmt::format("{}: binding row {} column '{}'", Context(),
                                                        r, batch.schema()->field(c).name));
      }
    }
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
      return sqlite_internal::SqliteError(
          rc, db_.get(),
          fmt::format("{}: inserting row {} into '{}'", Context(), r, config_.table));
    }
  }
  return Status::OK();
}

Status SqliteSink::Close() {
  insert_.reset();
  db_.reset();
  return Status::OK();
}

Result<SinkConfig> ParseSinkOptions(const NodeOptions& o) {
  SinkConfig c;
  c.path = o.GetString("path");
  if (c.path.empty()) return o.ErrorAt("path", "a database file is required");
  c.table = o.GetString("table");
  if (c.table.empty()) return o.ErrorAt("table", "a table name is required");
  if (o.Has("create_table")) c.create_table = o.GetBool("create_table");
  c.primary_key = o.GetString("primary_key");
  c.indexes = o.GetStringList("indexes");
  if (o.Has("batch_rows")) c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  if (o.Has("mode")) {
    const std::string mode = o.GetString("mode");
    if (mode != "insert" && mode != "replace") {
      return o.ErrorAt("mode", "must be 'insert' or 'replace'");
    }
    c.replace = mode == "replace";
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

}  // namespace

const OptionSchema& SqliteSinkOptions() {
  static const OptionSchema kOptions = {
      {"path", OptionType::kString, "", "SQLite database file (created if missing).", true, {}},
      {"table", OptionType::kString, "", "Table to insert into.", true, {}},
      {"primary_key",
       OptionType::kString,
       "",
       "When creating the table: this int64 column becomes its INTEGER PRIMARY KEY.",
       false,
       {}},
      {"indexes",
       OptionType::kStringList,
       "",
       "When creating the table: columns to index (one index each).",
       false,
       {}},
      {"create_table",
       OptionType::kBool,
       "true",
       "Create the table from the first batch's schema if it does not exist.",
       false,
       {}},
      {"batch_rows", OptionType::kInt, "50000", "Most rows per transaction.", false, {}},
      {"mode",
       OptionType::kEnum,
       "insert",
       "insert, or replace rows whose primary key or unique constraint matches.",
       false,
       {"insert", "replace"}},
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

Result<std::unique_ptr<Sink>> MakeSqliteSink(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, ParseSinkOptions(options));
  return std::unique_ptr<Sink>(new SqliteSink(options.id(), std::move(config)));
}

}  // namespace sluice
