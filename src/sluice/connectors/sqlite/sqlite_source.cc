// The `sqlite` source: stream rows of a table or query into batches; as the embedded archiver
// (delete_after_ack), delete each batch's rows once every sink has made them durable.

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>

#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/connectors/sqlite/sqlite_internal.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice {

using sqlite_internal::DbPtr;
using sqlite_internal::StmtPtr;

namespace {

constexpr int64_t kDefaultBatchRows = 10'000;
constexpr int64_t kDefaultBusyTimeoutUs = 5'000'000;
// Keys bound per DELETE statement; well under SQLite's 32766 variable limit, large enough that
// statement overhead is negligible.
constexpr int kDeleteChunk = 500;

int64_t ElapsedNanos(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start)
      .count();
}

std::string_view StorageClassName(int storage_class) {
  switch (storage_class) {
    case SQLITE_INTEGER:
      return "INTEGER";
    case SQLITE_FLOAT:
      return "REAL";
    case SQLITE_TEXT:
      return "TEXT";
    case SQLITE_BLOB:
      return "BLOB";
    default:
      return "NULL";
  }
}

TypeId TypeFromStorageClass(int storage_class) {
  switch (storage_class) {
    case SQLITE_INTEGER:
      return TypeId::kInt64;
    case SQLITE_FLOAT:
      return TypeId::kFloat64;
    case SQLITE_BLOB:
      return TypeId::kBytes;
    default:
      return TypeId::kString;  // TEXT, and NULL: nothing better to go on
  }
}

struct SourceConfig {
  std::string path;
  std::string query;
  std::string table;
  std::string where;
  std::vector<std::string> columns;
  int64_t batch_rows = kDefaultBatchRows;
  std::vector<std::pair<std::string, TypeId>> types;  // from `schema`
  bool delete_after_ack = false;
  std::string key;
  int64_t busy_timeout_us = kDefaultBusyTimeoutUs;
};

/// Read rows from SQLite. With `key`, rows are read in keyset pages
/// (`WHERE key >= next ORDER BY key LIMIT batch_rows`), one statement run per batch, so no
/// read statement stays open between Next() calls.
///
/// Deleting (delete_after_ack) deletes only rows that are still as they were read. A row may
/// change between Next() and Commit(): updated so that it no longer matches `where:`, updated in
/// place, or deleted and its rowid reused by a new row (SQLite reuses the largest rowid after it
/// is deleted, unless the table is AUTOINCREMENT). So each row is read with a digest of the
/// values it was read with and its key (sqlite_internal::RegisterRowDigest), and the DELETE
/// names each row by key AND repeats the `where:` condition AND requires the same digest of the
/// row's current values. A row that changed stays in the table for a later run (its old values
/// are archived, the new ones will be); only rows whose archived values are exactly what the
/// table holds are deleted. Deleting more rows than the batch read (a key that is not unique)
/// rolls back.
///
/// Deleting uses the reading connection, between pages: Commit() is called
/// on the source's own thread, never during Next(), and by then the page statement has been
/// reset, so the DELETE can neither invalidate nor be blocked by our own read, and no second
/// connection (which would contend for the file lock, and in rollback-journal mode get
/// SQLITE_BUSY against our own reader) is needed. This works in any journal mode, so the
/// source never changes the user's database to WAL. Keyset paging also means rows already read
/// but not yet deleted are never read twice, and rows deleted by a commit never shift a page.
///
/// Next(), Commit(), Abandon() and Close() are called from one thread.
class SqliteSource final : public Source {
 public:
  SqliteSource(std::string id, SourceConfig config)
      : id_(std::move(id)), config_(std::move(config)) {}

  Status Open(NodeContext* ctx) override;
  Result<BatchPtr> Next(uint64_t seq) override;
  Status Commit(uint64_t seq) override;
  void Abandon(uint64_t seq) override { pending_keys_.erase(seq); }
  Status Close() override;
  SchemaPtr schema() const override { return schema_; }
  int64_t EstimatedRows() const override { return estimated_rows_; }
  bool ConsumesInput() const override { return config_.delete_after_ack; }

 private:
  bool Paged() const { return !config_.key.empty(); }
  std::string FromWhereSql() const;
  std::string SelectSql() const;
  std::string DigestSql() const;
  std::string DeleteSql() const;
  Status ListDigestColumns();
  std::string Context() const { return fmt::format("node '{}'", id_); }
  Result<BatchPtr> ReadBatch(uint64_t seq);
  void WarnIfKeyIsNotIndexed();
  Status CountRows();
  Status StartPage();
  Status Step();
  Status ResolveSchema();
  Status AppendCell(int c, TypeId type, ColumnBuilder* b, int64_t row);
  Status CellError(int c, TypeId type, int64_t row, std::string_view why) const;
  struct PendingRows {
    std::vector<int64_t> keys;
    std::vector<int64_t> digests;  // sluice_row_digest of each row's values as read
  };
  Status DeleteRows(uint64_t seq, const PendingRows& rows, int64_t* deleted);

  const std::string id_;
  const SourceConfig config_;
  NodeContext* ctx_ = nullptr;
  DbPtr db_;
  StmtPtr select_;
  StmtPtr delete_;
  SchemaPtr schema_;
  int num_columns_ = 0;  // output columns; the key, when paging, follows them, then the digest
  // delete_after_ack: the quoted expressions of the output columns, hashed with the key on
  // reading and again when deleting.
  std::vector<std::string> digest_columns_;
  bool row_pending_ = false;  // select_ is positioned on a row not yet consumed
  bool page_open_ = false;    // keyset: select_ has been bound and stepped for this page
  bool finished_ = false;
  int64_t next_key_ = INT64_MIN;  // keyset: the lower bound of the next page
  int64_t rows_read_ = 0;
  int64_t estimated_rows_ = -1;
  Status stream_error_;  // set when a plain query failed mid-stream; returned from then on
  // delete_after_ack: the keys and digests of every batch handed out and not yet committed or
  // abandoned. Keys of one batch need not be contiguous, so the list is kept; it is bounded by
  // the batches in flight.
  std::map<uint64_t, PendingRows> pending_keys_;
};

std::string SqliteSource::FromWhereSql() const {
  using sqlite_internal::QuoteIdentifier;
  std::string sql = " FROM " + QuoteIdentifier(config_.table);
  std::vector<std::string> conditions;
  if (!config_.where.empty()) conditions.push_back("(" + config_.where + ")");
  if (Paged()) conditions.push_back(QuoteIdentifier(config_.key) + " >= ?1");
  for (size_t i = 0; i < conditions.size(); ++i) {
    sql += (i == 0 ? " WHERE " : " AND ") + conditions[i];
  }
  return sql;
}

std::string SqliteSource::SelectSql() const {
  using sqlite_internal::QuoteIdentifier;
  if (!config_.query.empty()) return config_.query;
  std::string sql = "SELECT ";
  if (config_.columns.empty()) {
    sql += "*";
  } else {
    for (size_t i = 0; i < config_.columns.size(); ++i) {
      if (i > 0) sql += ", ";
      sql += QuoteIdentifier(config_.columns[i]);
    }
  }
  if (Paged()) sql += ", " + QuoteIdentifier(config_.key);
  if (!digest_columns_.empty()) sql += ", " + DigestSql();
  sql += FromWhereSql();
  if (Paged()) sql += " ORDER BY " + QuoteIdentifier(config_.key) + " LIMIT ?2";
  return sql;
}

std::string SqliteSource::DigestSql() const {
  std::string sql = std::string(sqlite_internal::kRowDigestFunction) + "(";
  for (const auto& column : digest_columns_) sql += column + ", ";
  return sql + sqlite_internal::QuoteIdentifier(config_.key) + ")";
}

std::string SqliteSource::DeleteSql() const {
  // ?1..?N the keys, ?N+1..?2N the digests of the rows as they were read (see the class
  // comment): a row is deleted only if it has one of the keys, still matches `where:`, and its
  // current values hash to one of the digests. The digest covers the key, so a row cannot match
  // another row's digest.
  using sqlite_internal::QuoteIdentifier;
  std::string sql = "DELETE FROM " + QuoteIdentifier(config_.table) + " WHERE " +
                    QuoteIdentifier(config_.key) + " IN (";
  for (int i = 1; i <= kDeleteChunk; ++i) sql += fmt::format("{}?{}", i == 1 ? "" : ",", i);
  sql += ")";
  if (!config_.where.empty()) sql += " AND (" + config_.where + ")";
  sql += " AND " + DigestSql() + " IN (";
  for (int i = 1; i <= kDeleteChunk; ++i) {
    sql += fmt::format("{}?{}", i == 1 ? "" : ",", kDeleteChunk + i);
  }
  return sql + ")";
}

Status SqliteSource::ListDigestColumns() {
  if (!config_.columns.empty()) {
    for (const auto& c : config_.columns) {
      digest_columns_.push_back(sqlite_internal::QuoteIdentifier(c));
    }
    return Status::OK();
  }
  // `SELECT *`: name each column, so that the DELETE can hash the same values.
  SLUICE_ASSIGN_OR_RETURN(
      StmtPtr probe,
      sqlite_internal::Prepare(db_.get(),
                               "SELECT * FROM " + sqlite_internal::QuoteIdentifier(config_.table),
                               Context()));
  const int n = sqlite3_column_count(probe.get());
  for (int c = 0; c < n; ++c) {
    std::string quoted = "\"";
    for (const char* p = sqlite3_column_name(probe.get(), c); *p != '\0'; ++p) {
      quoted += *p == '"' ? std::string("\"\"") : std::string(1, *p);
    }
    digest_columns_.push_back(quoted + "\"");
  }
  return Status::OK();
}

Status SqliteSource::Open(NodeContext* ctx) {
  ctx_ = ctx;
  std::error_code ec;
  if (!std::filesystem::exists(config_.path, ec)) {
    return Status::NotFound("{}: SQLite database '{}' does not exist", Context(), config_.path);
  }
  const bool writes = config_.delete_after_ack && !ctx_->dry_run();
  const int flags = (writes ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) | SQLITE_OPEN_NOMUTEX;
  SLUICE_ASSIGN_OR_RETURN(
      db_, sqlite_internal::OpenDatabase(config_.path, flags, config_.busy_timeout_us, Context()));
  if (writes) {
    SLUICE_RETURN_NOT_OK(sqlite_internal::RegisterRowDigest(db_.get(), Context()));
    SLUICE_RETURN_NOT_OK(ListDigestColumns());
  }
  SLUICE_ASSIGN_OR_RETURN(select_, sqlite_internal::Prepare(db_.get(), SelectSql(), Context()));
  num_columns_ =
      sqlite3_column_count(select_.get()) - (Paged() ? 1 : 0) - (digest_columns_.empty() ? 0 : 1);
  if (num_columns_ <= 0) {
    return Status::ConfigError("{}: the query returns no columns", Context());
  }
  if (Paged()) {
    const char* declared = sqlite3_column_decltype(select_.get(), num_columns_);
    const auto type = sqlite_internal::TypeFromDeclared(declared);
    if (declared != nullptr && type != TypeId::kInt64) {
      return Status::ConfigError(
          "{}: option 'key': column '{}' is declared {}; paging and deleting need an integer "
          "key such as rowid or an INTEGER PRIMARY KEY",
          Context(), config_.key, declared);
    }
  }
  if (writes) {
    SLUICE_ASSIGN_OR_RETURN(delete_, sqlite_internal::Prepare(db_.get(), DeleteSql(), Context()));
  }
  if (Paged()) WarnIfKeyIsNotIndexed();
  if (!config_.table.empty()) SLUICE_RETURN_NOT_OK(CountRows());
  // Peek at the first row: its storage classes type the columns nothing else types, so the
  // schema is known once Open returns.
  SLUICE_RETURN_NOT_OK(StartPage());
  return ResolveSchema();
}

void SqliteSource::WarnIfKeyIsNotIndexed() {
  // Without an index on the key every page scans and sorts the table: quadratic in its size.
  auto plan = sqlite_internal::Prepare(db_.get(), "EXPLAIN QUERY PLAN " + SelectSql(), Context());
  if (!plan.ok()) return;
  while (sqlite3_step(plan->get()) == SQLITE_ROW) {
    const auto* detail = reinterpret_cast<const char*>(sqlite3_column_text(plan->get(), 3));
    if (detail != nullptr &&
        std::string_view(detail).find("TEMP B-TREE") != std::string_view::npos) {
      Log(LogLevel::kWarn,
          "{}: key '{}' of table '{}' has no index, so every batch scans the table; use rowid, "
          "an INTEGER PRIMARY KEY or an indexed column",
          Context(), config_.key, config_.table);
      if (ctx_->stats() != nullptr) ctx_->stats()->AddCounter("unindexed_key", 1);
      return;
    }
  }
}

Status SqliteSource::CountRows() {
  // A COUNT(*) is one pass over the table's smallest index; cheap next to reading the rows.
  std::string sql = "SELECT COUNT(*)" + FromWhereSql();
  SLUICE_ASSIGN_OR_RETURN(StmtPtr count, sqlite_internal::Prepare(db_.get(), sql, Context()));
  if (Paged()) sqlite3_bind_int64(count.get(), 1, INT64_MIN);
  const int rc = sqlite3_step(count.get());
  if (rc != SQLITE_ROW) return sqlite_internal::SqliteError(rc, db_.get(), Context());
  estimated_rows_ = sqlite3_column_int64(count.get(), 0);
  return Status::OK();
}

Status SqliteSource::StartPage() {
  if (Paged()) {
    sqlite3_reset(select_.get());
    sqlite3_bind_int64(select_.get(), 1, next_key_);
    sqlite3_bind_int64(select_.get(), 2, config_.batch_rows);
  }
  page_open_ = true;
  return Step();
}

Status SqliteSource::Step() {
  const int rc = sqlite3_step(select_.get());
  if (rc == SQLITE_ROW) {
    row_pending_ = true;
    return Status::OK();
  }
  row_pending_ = false;
  if (rc == SQLITE_DONE) return Status::OK();
  Status st = sqlite_internal::SqliteError(rc, db_.get(), Context() + ": reading rows");
  sqlite3_reset(select_.get());
  page_open_ = false;
  return st;
}

Status SqliteSource::ResolveSchema() {
  std::vector<Field> fields;
  fields.reserve(static_cast<size_t>(num_columns_));
  for (int c = 0; c < num_columns_; ++c) {
    Field f;
    f.name = sqlite3_column_name(select_.get(), c);
    auto declared = sqlite_internal::TypeFromDeclared(sqlite3_column_decltype(select_.get(), c));
    if (declared.has_value()) {
      f.type = *declared;
    } else {
      f.type =
          TypeFromStorageClass(row_pending_ ? sqlite3_column_type(select_.get(), c) : SQLITE_NULL);
    }
    fields.push_back(std::move(f));
  }
  for (const auto& [column, type] : config_.types) {
    const std::string& name = column;  // lambdas may not capture structured bindings in clang 14
    auto it =
        std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == name; });
    if (it == fields.end()) {
      return Status::ConfigError(
          "{}: option 'schema' names column '{}', which the query does not "
          "return",
          Context(), name);
    }
    it->type = type;
  }
  schema_ = MakeSchema(std::move(fields));
  return Status::OK();
}

Status SqliteSource::CellError(int c, TypeId type, int64_t row, std::string_view why) const {
  const int storage = sqlite3_column_type(select_.get(), c);
  std::string_view preview;
  if (storage == SQLITE_TEXT) preview = sqlite_internal::ColumnText(select_.get(), c).substr(0, 40);
  return Status::Invalid("{}: row {}, column '{}': cannot read {} value '{}' as {}{}", Context(),
                         row, schema_->field(c).name, StorageClassName(storage), preview,
                         TypeName(type), why);
}

Status SqliteSource::AppendCell(int c, TypeId type, ColumnBuilder* b, int64_t row) {
  std::string_view why;
  if (sqlite_internal::AppendCell(select_.get(), c, type, b, &why)) return Status::OK();
  return CellError(c, type, row, why);
}

Result<BatchPtr> SqliteSource::Next(uint64_t seq) {
  if (ctx_->cancelled()) return Status::Cancelled("{}: cancelled", Context());
  if (!stream_error_.ok()) return stream_error_;
  if (finished_) return BatchPtr();
  Result<BatchPtr> batch = ReadBatch(seq);
  if (!batch.ok()) {
    if (Paged()) {
      // Drop the partial page: next_key_ still points at its first row, so a retry rereads
      // exactly the rows this call failed to deliver.
      sqlite3_reset(select_.get());
      page_open_ = false;
      row_pending_ = false;
    } else {
      // A plain query cannot resume mid-stream without skipping or repeating rows.
      stream_error_ = batch.status();
    }
  }
  return batch;
}

Result<BatchPtr> SqliteSource::ReadBatch(uint64_t seq) {
  const auto start = std::chrono::steady_clock::now();
  if (!page_open_) SLUICE_RETURN_NOT_OK(StartPage());

  std::vector<ColumnBuilder> builders;
  builders.reserve(static_cast<size_t>(num_columns_));
  for (const auto& f : schema_->fields()) builders.emplace_back(f.type, config_.batch_rows);
  PendingRows pending;
  const bool track_keys = delete_ != nullptr;
  if (track_keys) {
    pending.keys.reserve(static_cast<size_t>(config_.batch_rows));
    pending.digests.reserve(static_cast<size_t>(config_.batch_rows));
  }

  int64_t n = 0;
  int64_t page_next_key = next_key_;
  bool page_at_max_key = false;
  while (row_pending_ && n < config_.batch_rows) {
    const int64_t row = rows_read_ + n;
    for (int c = 0; c < num_columns_; ++c) {
      SLUICE_RETURN_NOT_OK(
          AppendCell(c, schema_->field(c).type, &builders[static_cast<size_t>(c)], row));
    }
    if (Paged()) {
      if (sqlite3_column_type(select_.get(), num_columns_) != SQLITE_INTEGER) {
        return Status::Invalid(
            "{}: row {}: key column '{}' holds a {} value; it must be an integer", Context(), row,
            config_.key, StorageClassName(sqlite3_column_type(select_.get(), num_columns_)));
      }
      const int64_t key = sqlite3_column_int64(select_.get(), num_columns_);
      if (track_keys) {
        pending.keys.push_back(key);
        pending.digests.push_back(sqlite3_column_int64(select_.get(), num_columns_ + 1));
      }
      if (key == INT64_MAX) {
        page_at_max_key = true;  // nothing can follow the largest key
      } else {
        page_next_key = key + 1;
      }
    }
    ++n;
    SLUICE_RETURN_NOT_OK(Step());
  }
  if (!row_pending_) {
    if (Paged()) {
      // End of page: reset so the connection holds no read transaction while the batch is in
      // flight (Commit deletes on this connection; other writers need the lock too).
      sqlite3_reset(select_.get());
      page_open_ = false;
      if (n < config_.batch_rows) finished_ = true;
    } else {
      finished_ = true;
    }
  }
  next_key_ = page_next_key;
  if (page_at_max_key) finished_ = true;
  rows_read_ += n;
  if (ctx_->stats() != nullptr) ctx_->stats()->AddPhase("read", ElapsedNanos(start));
  if (n == 0) return BatchPtr();

  std::vector<Column> columns;
  columns.reserve(builders.size());
  for (auto& b : builders) columns.push_back(b.Finish());
  if (track_keys) pending_keys_[seq] = std::move(pending);
  return Batch::MakeUnchecked(schema_, std::move(columns), n);
}

Status SqliteSource::Commit(uint64_t seq) {
  if (!config_.delete_after_ack) return Status::OK();
  auto it = pending_keys_.find(seq);
  if (it == pending_keys_.end()) {
    if (ctx_->dry_run()) return Status::OK();
    return Status::Internal("{}: commit of batch {}, which is not in flight", Context(), seq);
  }
  if (delete_ == nullptr) {  // dry run: touch nothing
    pending_keys_.erase(it);
    return Status::OK();
  }
  const auto start = std::chrono::steady_clock::now();
  int64_t deleted = 0;
  SLUICE_RETURN_NOT_OK(DeleteRows(seq, it->second, &deleted));
  const int64_t kept = static_cast<int64_t>(it->second.keys.size()) - deleted;
  if (kept > 0) {
    Log(LogLevel::kWarn,
        "{}: batch {}: {} of its {} rows changed or were deleted by someone else after they were "
        "read; they were not deleted (a later run archives them as they are now)",
        Context(), seq, kept, it->second.keys.size());
  }
  if (ctx_->stats() != nullptr) {
    ctx_->stats()->AddPhase("delete", ElapsedNanos(start));
    ctx_->stats()->AddCounter("deleted_rows", deleted);
    if (kept > 0) ctx_->stats()->AddCounter("changed_rows_kept", kept);
  }
  pending_keys_.erase(it);
  return Status::OK();
}

Status SqliteSource::DeleteRows(uint64_t seq, const PendingRows& rows, int64_t* deleted_out) {
  const std::vector<int64_t>& keys = rows.keys;
  sqlite3* db = db_.get();
  sqlite3_stmt* del = delete_.get();
  const std::string context = fmt::format("{}: deleting the rows of batch {}", Context(), seq);
  // IMMEDIATE takes the write lock up front, so a busy database fails here (retryably) rather
  // than halfway through the deletes.
  SLUICE_RETURN_NOT_OK(sqlite_internal::Exec(db, "BEGIN IMMEDIATE", context));
  auto rollback = [&] { sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr); };
  int64_t deleted = 0;
  for (size_t begin = 0; begin < keys.size(); begin += kDeleteChunk) {
    const size_t end = std::min(keys.size(), begin + kDeleteChunk);
    // The last chunk repeats its last row to fill the statement; a row listed twice in IN (...)
    // is still deleted once, so the count stays exact with one prepared statement.
    for (int i = 0; i < kDeleteChunk; ++i) {
      const size_t k = std::min(begin + static_cast<size_t>(i), end - 1);
      sqlite3_bind_int64(del, i + 1, keys[k]);
      sqlite3_bind_int64(del, kDeleteChunk + i + 1, rows.digests[k]);
    }
    const int rc = sqlite3_step(del);
    sqlite3_reset(del);
    if (rc != SQLITE_DONE) {
      Status st = sqlite_internal::SqliteError(rc, db, context);
      rollback();
      return st;
    }
    const int64_t changes = sqlite3_changes64(db);
    // Keys of a batch are distinct (keyset paging), so more deletions than keys means another
    // row shares a key with an archived row, and has the same values: the key is not unique.
    if (changes > static_cast<int64_t>(end - begin)) {
      rollback();
      return Status::DataLoss(
          "{}: {} rows matched {} archived keys; rolled back, nothing deleted ('{}' is not "
          "unique: use rowid or an INTEGER PRIMARY KEY)",
          context, changes, end - begin, config_.key);
    }
    deleted += changes;
  }
  const int rc = sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    Status st = sqlite_internal::SqliteError(rc, db, context + ": committing");
    rollback();
    return st;
  }
  *deleted_out = deleted;
  return Status::OK();
}

Status SqliteSource::Close() {
  // Batches never committed keep their rows: a rerun reads them again.
  pending_keys_.clear();
  select_.reset();
  delete_.reset();
  db_.reset();
  return Status::OK();
}

Result<SourceConfig> ParseSourceOptions(const NodeOptions& o) {
  SourceConfig c;
  c.path = o.GetString("path");
  if (c.path.empty()) return o.ErrorAt("path", "a database file is required");
  SLUICE_ASSIGN_OR_RETURN(TableOrQuery read, GetTableOrQuery(o));
  c.query = std::move(read.query);
  c.table = std::move(read.table);
  c.where = std::move(read.where);
  c.columns = std::move(read.columns);
  if (o.Has("batch_rows")) c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  if (o.Has("busy_timeout")) c.busy_timeout_us = o.GetDurationMicros("busy_timeout");
  SLUICE_ASSIGN_OR_RETURN(SchemaPtr declared, o.GetSchema("schema"));
  if (declared != nullptr) {
    for (const auto& f : declared->fields()) c.types.emplace_back(f.name, f.type);
  }
  c.delete_after_ack = o.GetBool("delete_after_ack");
  c.key = o.GetString("key");
  if (c.delete_after_ack && c.key.empty()) {
    return o.ErrorAt("key", "delete_after_ack needs 'key', a unique integer column (e.g. rowid)");
  }
  if (!c.key.empty() && c.table.empty()) {
    return o.ErrorAt("key", "'key' pages through a 'table'; it cannot be used with 'query'");
  }
  return c;
}

}  // namespace

const OptionSchema& SqliteSourceOptions() {
  static const OptionSchema kOptions = {
      {"path", OptionType::kString, "", "SQLite database file to read (must exist).", true, {}},
      {"query", OptionType::kString, "", "SQL query to read (instead of 'table').", false, {}},
      {"table", OptionType::kString, "", "Table to read (instead of 'query').", false, {}},
      {"where", OptionType::kString, "", "SQL predicate selecting the table's rows.", false, {}},
      {"columns",
       OptionType::kStringList,
       "",
       "Columns of 'table' to read (default: all).",
       false,
       {}},
      {"batch_rows", OptionType::kInt, "10000", "Rows per batch.", false, {}},
      {"schema",
       OptionType::kMap,
       "",
       "Column name -> type, overriding types taken from declarations or the first row.",
       false,
       {}},
      {"delete_after_ack",
       OptionType::kBool,
       "false",
       "Delete each batch's rows once every sink has made them durable (archiving); a row "
       "changed since it was read (values, `where`, or a reused rowid) is kept.",
       false,
       {}},
      {"key",
       OptionType::kString,
       "",
       "Unique integer column (rowid, INTEGER PRIMARY KEY) to page by and delete by; rows whose "
       "key is NULL are not read.",
       false,
       {}},
      {"busy_timeout",
       OptionType::kDuration,
       "5s",
       "How long to wait for a locked database before failing (retryably).",
       false,
       {}},
  };
  return kOptions;
}

Result<std::unique_ptr<Source>> MakeSqliteSource(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SourceConfig config, ParseSourceOptions(options));
  return std::unique_ptr<Source>(new SqliteSource(options.id(), std::move(config)));
}

}  // namespace sluice
