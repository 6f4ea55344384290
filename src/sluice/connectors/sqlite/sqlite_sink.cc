// The `sqlite` sink: insert (or replace) batches into a table with one reused prepared
// statement, or delete the table's rows whose key is in the batch; one transaction per batch (or
// per batch_rows rows of a larger batch). Indexes are made with the table or after the load.

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>

#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/connectors/sqlite/sqlite_internal.h"
#include "sluice/connectors/sqlite/sqlite_sink_internal.h"
#include "sluice/core/durable_dir.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/engine/index_entries.h"

namespace sluice {

using sqlite_internal::DbPtr;
using sqlite_internal::QuoteIdentifier;
using sqlite_internal::StmtPtr;
using sqlite_sink::SinkConfig;
using sqlite_sink::SinkMode;

namespace {

/// Write rows into a SQLite table (insert, replace) or delete the table's rows whose `key` is
/// in the batch. Each Write commits before it returns and only then releases the batch's acks,
/// so an acked row is on disk (to the durability `synchronous` gives). A batch larger than
/// batch_rows is split into several transactions; if a later one fails, the earlier ones stay
/// committed and a rerun writes those rows again (at-least-once, unless mode: replace and a
/// primary key make the rerun idempotent; deletes are idempotent: a row already gone is no
/// error). Called from one thread.
class SqliteSink final : public Sink {
 public:
  SqliteSink(std::string id, SinkConfig config) : id_(std::move(id)), config_(std::move(config)) {}

  Status Open(NodeContext* ctx) override;
  Status Write(const BatchPtr& batch, AckSet acks) override;
  Status Close() override;

 private:
  std::string Context() const { return fmt::format("node '{}'", id_); }
  Status PrepareFor(const SchemaPtr& schema);
  Status CreateTable(const Schema& schema);
  /// Create the indexes `indexes` asks for that the table does not have yet; count them in
  /// indexes_created and time them as the phase 'index'.
  Status CreateIndexes();
  /// Return whether `schema_prefix` ("" or "\"main\".") has an index called `name`.
  Result<bool> IndexExists(const std::string& schema_prefix, const std::string& name);
  /// Return the table's column names; empty when there is no such table.
  Result<std::vector<std::string>> TableColumns();
  /// Fail (kInvalidArgument) when a row of `batch` has a NULL in a key column: a NULL matches
  /// no row, and deleting the rest would hide the bad input.
  Status CheckDeleteKeys(const Batch& batch) const;
  /// Run rows [begin, end) through the statement in one transaction; on success add the rows
  /// it changed to `*changed`.
  Status Transaction(const Batch& batch, int64_t begin, int64_t end, int64_t* changed);
  Status StepRows(const Batch& batch, int64_t begin, int64_t end, int64_t* changed);
  Status BindCell(const Batch& batch, int c, int64_t r, int param);

  const std::string id_;
  const SinkConfig config_;
  NodeContext* ctx_ = nullptr;
  DbPtr db_;
  StmtPtr stmt_;                    // the INSERT (OR REPLACE) or the DELETE
  std::vector<int> bound_columns_;  // the batch columns bound to its parameters, in order
  SchemaPtr schema_;                // the schema stmt_ was prepared for
  bool indexes_made_ = false;       // CreateIndexes ran for the table (with it, not after)
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

Status SqliteSink::CreateTable(const Schema& schema) {
  std::string ddl = "CREATE TABLE IF NOT EXISTS " + QuoteIdentifier(config_.table) + " (";
  for (int i = 0; i < schema.num_fields(); ++i) {
    const Field& f = schema.field(i);
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
  if (!config_.primary_key.empty() && schema.FieldIndex(config_.primary_key) < 0) {
    return Status::ConfigError("{}: primary_key '{}' is not a column of the input", Context(),
                               config_.primary_key);
  }
  return sqlite_internal::Exec(db_.get(), ddl, Context());
}

Status SqliteSink::PrepareFor(const SchemaPtr& schema) {
  stmt_.reset();
  bound_columns_.clear();
  const std::string table = QuoteIdentifier(config_.table);
  std::string sql;
  if (config_.mode == SinkMode::kDelete) {
    sql = "DELETE FROM " + table + " WHERE ";
    for (size_t k = 0; k < config_.key.size(); ++k) {
      const int c = schema->FieldIndex(config_.key[k]);
      if (c < 0) {
        return Status::ConfigError("{}: option 'key': '{}' is not a column of the input", Context(),
                                   config_.key[k]);
      }
      if (k > 0) sql += " AND ";
      sql += QuoteIdentifier(config_.key[k]) + " = ?";
      bound_columns_.push_back(c);
    }
  } else {
    if (config_.create_table) SLUICE_RETURN_NOT_OK(CreateTable(*schema));
    if (!config_.indexes.empty() && !config_.index_after_load && !indexes_made_) {
      SLUICE_RETURN_NOT_OK(CreateIndexes());
      indexes_made_ = true;
    }
    sql = config_.mode == SinkMode::kReplace ? "INSERT OR REPLACE INTO " : "INSERT INTO ";
    sql += table + " (";
    std::string values;
    for (int i = 0; i < schema->num_fields(); ++i) {
      if (i > 0) {
        sql += ", ";
        values += ", ";
      }
      sql += QuoteIdentifier(schema->field(i).name);
      values += "?";
      bound_columns_.push_back(i);
    }
    sql += ") VALUES (" + values + ")";
  }
  SLUICE_ASSIGN_OR_RETURN(stmt_, sqlite_internal::Prepare(db_.get(), sql, Context()));
  schema_ = schema;
  timestamp_text_.assign(static_cast<size_t>(schema->num_fields()), {});
  return Status::OK();
}

Result<std::vector<std::string>> SqliteSink::TableColumns() {
  // "main.t" names table t of schema main (as QuoteIdentifier reads it).
  const size_t dot = config_.table.rfind('.');
  const std::string name = dot == std::string::npos ? config_.table : config_.table.substr(dot + 1);
  const std::string schema = dot == std::string::npos ? "main" : config_.table.substr(0, dot);
  SLUICE_ASSIGN_OR_RETURN(
      StmtPtr stmt,
      sqlite_internal::Prepare(db_.get(), "SELECT name FROM pragma_table_info(?1, ?2)", Context()));
  sqlite3_bind_text(stmt.get(), 1, name.c_str(), static_cast<int>(name.size()), SQLITE_STATIC);
  sqlite3_bind_text(stmt.get(), 2, schema.c_str(), static_cast<int>(schema.size()), SQLITE_STATIC);
  std::vector<std::string> columns;
  int rc;
  while ((rc = sqlite3_step(stmt.get())) == SQLITE_ROW) {
    columns.emplace_back(sqlite_internal::ColumnText(stmt.get(), 0));
  }
  if (rc != SQLITE_DONE) {
    return sqlite_internal::SqliteError(
        rc, db_.get(),
        fmt::format("{}: reading the columns of table '{}'", Context(), config_.table));
  }
  return columns;
}

Result<bool> SqliteSink::IndexExists(const std::string& schema_prefix, const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(
      StmtPtr stmt, sqlite_internal::Prepare(db_.get(),
                                             "SELECT count(*) FROM " + schema_prefix +
                                                 "sqlite_master WHERE type = 'index' AND name = ?1",
                                             Context()));
  sqlite3_bind_text(stmt.get(), 1, name.c_str(), static_cast<int>(name.size()), SQLITE_STATIC);
  const int rc = sqlite3_step(stmt.get());
  if (rc != SQLITE_ROW) {
    return sqlite_internal::SqliteError(rc, db_.get(),
                                        fmt::format("{}: looking for index '{}'", Context(), name));
  }
  // Finalized on return: a statement left stepping holds a read transaction, and a CREATE
  // INDEX would then have to upgrade it — refused at once (SQLITE_BUSY) when another
  // connection wrote meanwhile.
  return sqlite3_column_int64(stmt.get(), 0) > 0;
}

Status SqliteSink::CreateIndexes() {
  const auto start = std::chrono::steady_clock::now();
  SLUICE_ASSIGN_OR_RETURN(const std::vector<std::string> columns, TableColumns());
  if (columns.empty()) return Status::OK();  // no table: nothing was written, nothing to index
  auto has = [&](std::string_view c) {
    return std::find(columns.begin(), columns.end(), c) != columns.end();
  };
  if (HasAutoIndexes(config_.indexes) && scale_tags::AutoIndexes(has).empty()) {
    Log(LogLevel::kWarn,
        "{}: indexes: auto found none of replicate's tag columns ({}, {}, {}, {}) in table '{}': "
        "nothing to index for it",
        Context(), scale_tags::kSynthetic, scale_tags::kOperation, scale_tags::kTemplate,
        scale_tags::kTenant, config_.table);
  }
  const std::vector<std::vector<std::string>> indexes = ExpandIndexEntries(config_.indexes, has);
  for (const auto& cols : indexes) {
    for (const std::string& c : cols) {
      if (!has(c)) {
        return Status::ConfigError("{}: option 'indexes': table '{}' has no column '{}'", Context(),
                                   config_.table, c);
      }
    }
  }
  // An index on (synthetic, scale_operation_id) is named <table>_synthetic_scale_operation_id;
  // one on a single column keeps the name it always had, <table>_<column>.
  // SQLite names the schema on the index ("main"."t_id"), never on its table.
  const size_t dot = config_.table.rfind('.');
  const std::string schema_prefix =
      dot == std::string::npos ? "" : QuoteIdentifier(config_.table.substr(0, dot)) + ".";
  const std::string bare_table =
      dot == std::string::npos ? config_.table : config_.table.substr(dot + 1);
  int64_t created = 0;
  for (const auto& cols : indexes) {
    std::string name = config_.table, list;
    for (const std::string& c : cols) {
      name += "_" + c;
      list += (list.empty() ? "" : ", ") + QuoteIdentifier(c);
    }
    // Counted only when made now: a rerun finds them and makes none.
    const std::string bare_name = dot == std::string::npos ? name : name.substr(dot + 1);
    SLUICE_ASSIGN_OR_RETURN(const bool exists, IndexExists(schema_prefix, bare_name));
    if (exists) continue;
    SLUICE_RETURN_NOT_OK(sqlite_internal::Exec(db_.get(),
                                               "CREATE INDEX IF NOT EXISTS " +
                                                   QuoteIdentifier(name) + " ON " +
                                                   QuoteIdentifier(bare_table) + " (" + list + ")",
                                               Context()));
    ++created;
  }
  if (ctx_->stats() != nullptr) {
    ctx_->stats()->AddCounter("indexes_created", created);
    ctx_->stats()->AddPhase("index", std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - start)
                                         .count());
  }
  return Status::OK();
}

Status SqliteSink::CheckDeleteKeys(const Batch& batch) const {
  std::vector<std::string> null_columns;
  std::vector<const Column*> keys;
  for (size_t k = 0; k < bound_columns_.size(); ++k) {
    const Column& col = batch.column(bound_columns_[k]);
    if (col.null_count() == 0) continue;
    null_columns.push_back(config_.key[k]);
    keys.push_back(&col);
  }
  if (keys.empty()) return Status::OK();
  int64_t rows = 0, first = -1;
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    if (std::any_of(keys.begin(), keys.end(), [r](const Column* c) { return c->IsNull(r); })) {
      if (first < 0) first = r;
      ++rows;
    }
  }
  return Status::Invalid(
      "{}: delete from table '{}': {} of the batch's {} rows have a NULL key (column{} '{}', "
      "first at row {}); a NULL names no row, so nothing of the batch was deleted: fill the key "
      "or filter those rows out before this node",
      Context(), config_.table, rows, batch.num_rows(), null_columns.size() > 1 ? "s" : "",
      fmt::join(null_columns, "', '"), first);
}

Status SqliteSink::Write(const BatchPtr& batch, AckSet acks) {
  if (ctx_->dry_run() || batch->num_rows() == 0) return Status::OK();
  const auto start = std::chrono::steady_clock::now();
  if (stmt_ == nullptr || (schema_ != batch->schema() && !(*schema_ == *batch->schema()))) {
    SLUICE_RETURN_NOT_OK(PrepareFor(batch->schema()));
  }
  const bool deleting = config_.mode == SinkMode::kDelete;
  if (deleting) SLUICE_RETURN_NOT_OK(CheckDeleteKeys(*batch));
  const int64_t n = batch->num_rows();
  for (int64_t begin = 0; begin < n; begin += config_.batch_rows) {
    int64_t changed = 0;
    SLUICE_RETURN_NOT_OK(
        Transaction(*batch, begin, std::min(n, begin + config_.batch_rows), &changed));
    // Counted once committed: fewer than the rows sent when some were gone already (a rerun)
    // or a key came twice.
    if (deleting && ctx_->stats() != nullptr) ctx_->stats()->AddCounter("rows_deleted", changed);
  }
  if (ctx_->stats() != nullptr) {
    ctx_->stats()->AddPhase(deleting ? "delete" : "insert",
                            std::chrono::duration_cast<std::chrono::nanoseconds>(
                                std::chrono::steady_clock::now() - start)
                                .count());
  }
  acks.Release();  // committed: the rows are durable
  return Status::OK();
}

Status SqliteSink::Transaction(const Batch& batch, int64_t begin, int64_t end, int64_t* changed) {
  sqlite3* db = db_.get();
  // IMMEDIATE takes the write lock now, so a busy database fails before any row is bound.
  SLUICE_RETURN_NOT_OK(sqlite_internal::Exec(db, "BEGIN IMMEDIATE", Context()));
  int64_t n = 0;
  Status st = StepRows(batch, begin, end, &n);
  if (st.ok()) {
    const int rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) {
      *changed += n;
      return Status::OK();
    }
    st = sqlite_internal::SqliteError(rc, db, Context() + ": committing");
  }
  sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return st;
}

Status SqliteSink::BindCell(const Batch& batch, int c, int64_t r, int p) {
  sqlite3_stmt* stmt = stmt_.get();
  const Column& col = batch.column(c);
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
  if (rc == SQLITE_OK) return Status::OK();
  return sqlite_internal::SqliteError(
      rc, db_.get(),
      fmt::format("{}: binding row {} column '{}'", Context(), r, batch.schema()->field(c).name));
}

Status SqliteSink::StepRows(const Batch& batch, int64_t begin, int64_t end, int64_t* changed) {
  sqlite3_stmt* stmt = stmt_.get();
  const bool deleting = config_.mode == SinkMode::kDelete;
  for (int64_t r = begin; r < end; ++r) {
    for (size_t i = 0; i < bound_columns_.size(); ++i) {
      SLUICE_RETURN_NOT_OK(BindCell(batch, bound_columns_[i], r, static_cast<int>(i) + 1));
    }
    const int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    if (rc != SQLITE_DONE) {
      return sqlite_internal::SqliteError(
          rc, db_.get(),
          fmt::format("{}: {} row {} {} '{}'", Context(), deleting ? "deleting" : "inserting", r,
                      deleting ? "from" : "into", config_.table));
    }
    *changed += sqlite3_changes64(db_.get());
  }
  return Status::OK();
}

Status SqliteSink::Close() {
  stmt_.reset();
  Status st;
  // A run that failed or was cancelled loaded only part of its rows: its indexes wait for the
  // rerun (which creates them) rather than costing time now.
  if (config_.index_after_load && db_ != nullptr && !ctx_->dry_run() && !ctx_->cancelled()) {
    st = CreateIndexes();
  }
  db_.reset();
  return st;
}

}  // namespace

Result<std::unique_ptr<Sink>> MakeSqliteSink(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, sqlite_sink::ParseSinkOptions(options));
  return std::unique_ptr<Sink>(new SqliteSink(options.id(), std::move(config)));
}

}  // namespace sluice
