// The `postgres` sink: each batch is written in one transaction — binary COPY into the table
// (insert), binary COPY into a temporary staging table then INSERT ... ON CONFLICT (upsert),
// or multi-row prepared INSERTs with binary parameters (insert_batch) — and acknowledged once
// committed. String values for columns whose type has no binary codec (inet, arrays, interval,
// ranges, a domain over int, ...) are PostgreSQL text forms: they travel as text and are cast
// with the column's own type (its input function, so exactly as `'...'::type` would read
// them); with such columns, insert mode stages the batch too. A batch that fails retryably
// (connection lost, serialization failure, deadlock, server restarting) is retried whole, on a
// fresh connection, with backoff.

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>
#include <set>

#include "sluice/connectors/postgres/pg_pool.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/connectors/postgres/postgres.h"
#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/core/time.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice {

using pg::PgCodec;
using pg::PgConnection;
using pg_internal::QuoteIdentifier;

namespace {

constexpr int64_t kDefaultBatchRows = 10'000;
constexpr int kDefaultPoolSize = 2;
constexpr int kDefaultRetryMaxAttempts = 5;
// Encoded COPY data is sent whenever this much has accumulated: memory stays bounded whatever
// the size of the batch.
constexpr size_t kCopySendBytes = 1 << 20;
// PostgreSQL's limit on bind parameters per statement.
constexpr int64_t kMaxParams = 65'535;
constexpr int64_t kMaxRowsPerInsert = 1'000;
constexpr size_t kMaxIdentifierBytes = 63;

enum class SinkMode : uint8_t { kInsert, kUpsert, kInsertBatch };
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
  std::string partition_by;
  PartitionInterval interval = PartitionInterval::kNone;
  int pool_size = kDefaultPoolSize;
  int64_t batch_rows = kDefaultBatchRows;
  int retry_max_attempts = kDefaultRetryMaxAttempts;
  int64_t retry_initial_backoff_us = 1'000'000;
  int64_t statement_timeout_us = 0;
  int64_t connect_timeout_us = pg::kDefaultConnectTimeoutUs;
};

std::string QuotedList(const std::vector<std::string>& names, std::string_view prefix = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::string(prefix) + pg_internal::QuoteName(names[i]);
  }
  return out;
}

/// Return `table` with its last part replaced by `name` (keeping the schema), quoted. Names
/// are cut to PostgreSQL's 63 bytes from the table's part, so that suffixes stay distinct.
std::string SiblingName(const std::string& table, std::string_view suffix) {
  const std::string_view base = pg_internal::BaseName(table);
  const std::string schema = table.substr(0, table.size() - base.size());
  const size_t keep =
      std::min(base.size(), kMaxIdentifierBytes - std::min(kMaxIdentifierBytes, suffix.size()));
  return (schema.empty() ? "" : QuoteIdentifier(schema.substr(0, schema.size() - 1)) + ".") +
         QuoteIdentifier(std::string(base.substr(0, keep)) + std::string(suffix));
}

/// Write batches to one PostgreSQL table; see the file comment. Write() is called from one
/// thread; it uses one pooled connection at a time.
class PostgresSink final : public Sink {
 public:
  PostgresSink(std::string id, SinkConfig config) : id_(std::move(id)), config_(std::move(config)) {
    policy_.initial_us = config_.retry_initial_backoff_us;
    policy_.max_attempts = config_.retry_max_attempts;
  }

  Status Open(NodeContext* ctx) override;
  Status Write(const BatchPtr& batch, AckSet acks) override;
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
  /// Upsert: fail with kInvalidArgument, naming the key columns and counting the rows, when a row
  /// of `batch` has a NULL key column (no unique index matches it: it would be inserted again on
  /// every run, or several would collapse into one).
  Status CheckUpsertKeys(const Batch& batch) const;
  Status WriteOnce(const Batch& batch);
  Status WriteInTransaction(PgConnection* conn, const Batch& batch);
  Result<int64_t> CopyRows(PgConnection* conn, const std::string& copy_sql, const Batch& batch);
  Status InsertRows(PgConnection* conn, const Batch& batch);
  void AddPhase(const char* phase, std::chrono::steady_clock::time_point start) {
    if (ctx_->stats() != nullptr) ctx_->stats()->AddPhase(phase, pg_internal::ElapsedNanos(start));
  }

  const std::string id_;
  const SinkConfig config_;
  NodeContext* ctx_ = nullptr;
  std::shared_ptr<pg::PgPool> pool_;
  RetryPolicy policy_;
  RetryStats retry_stats_;
  std::unique_ptr<pg_internal::CancellableClock> clock_;

  // Derived from the schema of the batches (redone if it changes).
  SchemaPtr schema_;
  bool table_ready_ = false;  // created (if asked) and its columns resolved
  pg::CopyBinaryEncoder encoder_;
  std::vector<Oid> param_types_;  // insert_batch: the target columns' OIDs
  std::string column_list_;       // ("a", "b")
  std::string copy_sql_;  // insert: COPY table; upsert or text input: COPY into the staging table
  std::string create_stage_sql_;          // empty: insert mode without text input (no staging)
  std::string upsert_sql_;                // upsert, or insert of a staged batch (text input)
  std::vector<std::string> param_casts_;  // insert_batch: "" or "::type" per column
  int partition_column_ = -1;
  std::set<int64_t> partitions_made_;  // period starts (µs) whose partition exists
  bool default_partition_made_ = false;
  std::string buffer_;  // encoded COPY data, reused between batches
};

template <typename F>
Status PostgresSink::WithRetry(F&& op) {
  const int64_t retries_before = retry_stats_.retries;
  Status st = Retry(
      policy_, clock_.get(),
      [&]() -> Status {
        if (ctx_->cancelled()) return Status::Cancelled("{}: the run was cancelled", Context());
        return op();
      },
      &retry_stats_, /*cancelled=*/nullptr);
  if (ctx_->stats() != nullptr && retry_stats_.retries > retries_before) {
    ctx_->stats()->AddCounter("retries", retry_stats_.retries - retries_before);
  }
  return st;
}

Status PostgresSink::Open(NodeContext* ctx) {
  ctx_ = ctx;
  clock_ = std::make_unique<pg_internal::CancellableClock>(ctx);
  if (ctx_->dry_run()) return Status::OK();
  pg::PgPoolOptions options;
  options.max_size = config_.pool_size;
  options.connect_timeout_us = config_.connect_timeout_us;
  auto pool = pg::PgPool::ForDsn(config_.dsn, options);
  if (!pool.ok()) return pool.status().WithContext("{}", Context());
  pool_ = *pool;
  // Connect now, so that a bad DSN or an unreachable server fails the run before any data
  // moves (the connection then waits in the pool for the first batch).
  SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
  return Status::OK();
}

Result<pg::PgLease> PostgresSink::Lease() {
  auto lease = pool_->Acquire();
  if (!lease.ok()) return lease.status().WithContext("{}", Context());
  if (config_.statement_timeout_us > 0) {
    SLUICE_RETURN_NOT_OK((*lease)
                             ->SetStatementTimeout(config_.statement_timeout_us / 1000)
                             .WithContext("{}", Context()));
  }
  return lease;
}

Status PostgresSink::Write(const BatchPtr& batch, AckSet acks) {
  if (ctx_->dry_run() || batch->num_rows() == 0) return Status::OK();
  if (!table_ready_ || (schema_ != batch->schema() && !(*schema_ == *batch->schema()))) {
    table_ready_ = false;
    SLUICE_RETURN_NOT_OK(WithRetry([&] { return PrepareTarget(*batch); }));
    table_ready_ = true;
  }
  if (config_.mode == SinkMode::kUpsert) SLUICE_RETURN_NOT_OK(CheckUpsertKeys(*batch));
  if (partition_column_ >= 0) {
    SLUICE_RETURN_NOT_OK(WithRetry([&] { return EnsurePartitions(*batch); }));
  }
  SLUICE_RETURN_NOT_OK(WithRetry([&] { return WriteOnce(*batch); }));
  acks.Release();  // committed: the rows are durable
  return Status::OK();
}

Status PostgresSink::PrepareTarget(const Batch& batch) {
  SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
  Status st;
  if (config_.create_table) st = CreateTable(lease.get(), batch);
  if (st.ok()) st = ResolveTargets(lease.get(), batch.schema());
  if (!st.ok() && !lease->IsHealthy()) lease.Discard();
  return st;
}

Result<std::map<std::string, std::string>> PostgresSink::RecordedTypes(PgConnection* conn,
                                                                       const Batch& batch) {
  std::map<std::string, std::string> types;
  const std::string_view tag_text = batch.tags().Get(tag::kPgTypes);
  if (tag_text.empty()) return types;
  const auto recorded = nlohmann::json::parse(tag_text, nullptr, /*allow_exceptions=*/false);
  if (!recorded.is_object()) {
    return Status::Invalid("{}: batch tag '{}' is not a JSON object: {}", Context(), tag::kPgTypes,
                           tag_text.substr(0, 200));
  }
  for (const Field& f : batch.schema()->fields()) {
    const auto it = recorded.find(f.name);
    if (it == recorded.end() || !it->is_string()) continue;
    const std::string type = it->get<std::string>();
    // The text goes into the CREATE TABLE as written (format_type's output: "numeric(30,10)",
    // "integer[]", a user type's name); to_regtype reads it as nothing but a type name, and
    // no comment or statement separator can hide in one.
    if (type.find(";") != std::string::npos || type.find("--") != std::string::npos ||
        type.find("/*") != std::string::npos) {
      return Status::Invalid("{}: creating table '{}': column '{}': '{}' is not a type name",
                             Context(), config_.table, f.name, type);
    }
    auto known = conn->ExecParams("SELECT to_regtype($1) IS NOT NULL", {type});
    if (!known.ok()) {
      return known.status().WithContext("{}: creating table '{}': type '{}' of column '{}'",
                                        Context(), config_.table, type, f.name);
    }
    if (known->Value(0, 0) != "t") {
      return Status::Invalid(
          "{}: creating table '{}': column '{}' had type {} where the rows came from (batch tag "
          "'{}'), and this database has no such type; create it first (enums, domains and "
          "composite types are not archived with the rows) or create the table yourself",
          Context(), config_.table, f.name, type, tag::kPgTypes);
    }
    types[f.name] = type;
  }
  return types;
}

Status PostgresSink::CreateTable(PgConnection* conn, const Batch& batch) {
  const Schema& schema = *batch.schema();
  SLUICE_ASSIGN_OR_RETURN(const auto recorded, RecordedTypes(conn, batch));
  for (const std::string& k : config_.key) {
    if (schema.FieldIndex(k) < 0) {
      return Status::ConfigError("{}: option 'key': '{}' is not a column of the input", Context(),
                                 k);
    }
  }
  std::string ddl = "CREATE TABLE IF NOT EXISTS " + QuoteIdentifier(config_.table) + " (";
  for (int i = 0; i < schema.num_fields(); ++i) {
    const Field& f = schema.field(i);
    if (i > 0) ddl += ", ";
    const auto it = recorded.find(f.name);
    ddl += pg_internal::QuoteName(f.name) + " " +
           (it != recorded.end() ? it->second : std::string(pg::PgTypeNameFor(f.type)));
    if (!f.nullable) ddl += " NOT NULL";
  }
  if (!config_.key.empty()) ddl += ", PRIMARY KEY (" + QuotedList(config_.key) + ")";
  ddl += ")";
  if (!config_.partition_by.empty()) {
    ddl += " PARTITION BY RANGE (" + pg_internal::QuoteName(config_.partition_by) + ")";
  }
  auto created = conn->Exec(ddl);
  if (!created.ok()) {
    return created.status().WithContext("{}: creating table '{}'", Context(), config_.table);
  }
  for (const std::string& col : config_.indexes) {
    if (schema.FieldIndex(col) < 0) {
      return Status::ConfigError("{}: option 'indexes': '{}' is not a column of the input",
                                 Context(), col);
    }
    const std::string name = std::string(pg_internal::BaseName(config_.table)) + "_" + col + "_idx";
    auto indexed = conn->Exec(
        "CREATE INDEX IF NOT EXISTS " + QuoteIdentifier(name.substr(0, kMaxIdentifierBytes)) +
        " ON " + QuoteIdentifier(config_.table) + " (" + pg_internal::QuoteName(col) + ")");
    if (!indexed.ok()) {
      return indexed.status().WithContext("{}: indexing '{}' of table '{}'", Context(), col,
                                          config_.table);
    }
  }
  return Status::OK();
}

Status PostgresSink::ResolveTargets(PgConnection* conn, const SchemaPtr& schema) {
  // The types of the table's columns: as declared (for casts), and a domain's base type (it has
  // the same binary format).
  auto columns = conn->ExecParams(
      "SELECT a.attname, b.oid, b.typname, b.typtype, format_type(a.atttypid, a.atttypmod) "
      "FROM pg_catalog.pg_attribute a "
      "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
      "JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype "
      "ELSE t.oid END "
      "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
      "ORDER BY a.attnum",
      {QuoteIdentifier(config_.table)});
  if (!columns.ok()) {
    return columns.status().WithContext("{}: writing to table '{}'", Context(), config_.table);
  }
  std::vector<PgCodec> targets;
  std::vector<std::string> names;
  std::vector<std::string> stage_exprs;   // the staging table's columns
  std::vector<std::string> insert_exprs;  // what INSERT ... SELECT takes from the staging table
  bool text_input = false;
  param_types_.clear();
  param_casts_.clear();
  for (const Field& f : schema->fields()) {
    int row = -1;
    for (int r = 0; r < columns->num_rows(); ++r) {
      if (columns->Value(r, 0) == f.name) row = r;
    }
    if (row < 0) {
      std::vector<std::string> have;
      have.reserve(static_cast<size_t>(columns->num_rows()));
      for (int r = 0; r < columns->num_rows(); ++r) have.emplace_back(columns->Value(r, 0));
      return Status::ConfigError("{}: column '{}' of the input is not a column of table '{}' ({})",
                                 Context(), f.name, config_.table, fmt::join(have, ", "));
    }
    Oid oid = 0;
    const std::string_view oid_text = columns->Value(row, 1);
    std::from_chars(oid_text.data(), oid_text.data() + oid_text.size(), oid);
    const std::string_view type_name = columns->Value(row, 2);
    const char type_type = columns->Value(row, 3).empty() ? 'b' : columns->Value(row, 3)[0];
    const std::string declared(columns->Value(row, 4));
    const std::optional<PgCodec> codec = pg::CodecForType(oid, type_name, type_type);
    const std::string name = pg_internal::QuoteName(f.name);
    if (codec.has_value() && pg::CanEncode(f.type, *codec)) {
      targets.push_back(*codec);
      param_types_.push_back(oid);
      param_casts_.emplace_back();
      stage_exprs.push_back(name);
      insert_exprs.push_back(name);
    } else if (f.type == TypeId::kString || f.type == TypeId::kJson) {
      // A text form: sent as text, read by the column type's input function.
      text_input = true;
      targets.push_back(PgCodec::kText);
      param_types_.push_back(pg::oids::kText);
      param_casts_.push_back("::" + declared);
      stage_exprs.push_back(name + "::text AS " + name);
      insert_exprs.push_back(name + "::" + declared);
    } else {
      return Status::ConfigError(
          "{}: cannot write {} column '{}' to column of type {} in table '{}'", Context(),
          TypeName(f.type), f.name, declared, config_.table);
    }
    names.push_back(f.name);
  }
  SLUICE_ASSIGN_OR_RETURN(encoder_, pg::CopyBinaryEncoder::Make(schema, std::move(targets)));

  column_list_ = "(" + QuotedList(names) + ")";
  copy_sql_ =
      "COPY " + QuoteIdentifier(config_.table) + " " + column_list_ + " FROM STDIN (FORMAT binary)";
  create_stage_sql_.clear();
  upsert_sql_.clear();
  if (config_.mode == SinkMode::kUpsert || (config_.mode == SinkMode::kInsert && text_input)) {
    for (const std::string& k : config_.key) {
      if (schema->FieldIndex(k) < 0) {
        return Status::ConfigError("{}: option 'key': '{}' is not a column of the input", Context(),
                                   k);
      }
    }
    const std::string stage_list = fmt::format("{}", fmt::join(stage_exprs, ", "));
    const std::string insert_list = fmt::format("{}", fmt::join(insert_exprs, ", "));
    // One staging table per session, table and column list; emptied by every commit.
    const std::string stage = QuoteIdentifier(
        fmt::format("sluice_stage_{:016x}",
                    std::hash<std::string>{}(config_.table + column_list_ + stage_list)));
    create_stage_sql_ = "CREATE TEMP TABLE IF NOT EXISTS " + stage +
                        " ON COMMIT DELETE ROWS AS SELECT " + stage_list + " FROM " +
                        QuoteIdentifier(config_.table) + " WITH NO DATA";
    copy_sql_ = "COPY " + stage + " " + column_list_ + " FROM STDIN (FORMAT binary)";
    upsert_sql_ = "INSERT INTO " + QuoteIdentifier(config_.table) + " " + column_list_ +
                  " SELECT " + insert_list + " FROM ";
    if (config_.mode == SinkMode::kInsert) {
      upsert_sql_ += stage;
    } else {
      // Keys compare as the column's type, also when they arrive as text.
      std::vector<std::string> key_exprs;
      for (const std::string& k : config_.key) {
        const size_t i =
            static_cast<size_t>(std::find(names.begin(), names.end(), k) - names.begin());
        key_exprs.push_back(insert_exprs[i]);
      }
      const std::string keys = fmt::format("{}", fmt::join(key_exprs, ", "));
      // ON CONFLICT may not update a row twice in one statement, so DISTINCT ON keeps one row
      // per key: the batch's last, as if its rows were upserted one by one. ctid order is the
      // batch's order: the staging table is empty when the COPY starts (ON COMMIT DELETE ROWS
      // truncates it at every commit, and a failed write discards its session, temp table and
      // all), so COPY appends the rows in order from block 0. NULL keys never get here
      // (CheckUpsertKeys).
      // With on_conflict: keep, the batch's first row per key, as if inserted one by one.
      upsert_sql_ += "(SELECT DISTINCT ON (" + keys + ") " + QuotedList(names) + " FROM " + stage +
                     " ORDER BY " + keys + ", ctid " + (config_.keep_existing ? "ASC" : "DESC") +
                     ") AS sluice_s ON CONFLICT (" + QuotedList(config_.key) + ") DO ";
      std::vector<std::string> updates;
      for (const std::string& n : names) {
        if (std::find(config_.key.begin(), config_.key.end(), n) == config_.key.end()) {
          updates.push_back(pg_internal::QuoteName(n) + " = EXCLUDED." + pg_internal::QuoteName(n));
        }
      }
      upsert_sql_ += updates.empty() || config_.keep_existing
                         ? "NOTHING"
                         : "UPDATE SET " + fmt::format("{}", fmt::join(updates, ", "));
    }
  }
  partition_column_ = -1;
  if (!config_.partition_by.empty()) {
    partition_column_ = schema->FieldIndex(config_.partition_by);
    if (partition_column_ < 0 || schema->field(partition_column_).type != TypeId::kTimestamp) {
      return Status::ConfigError(
          "{}: option 'partition_by': '{}' must be a timestamp column of the input", Context(),
          config_.partition_by);
    }
  }
  schema_ = schema;
  return Status::OK();
}

Status PostgresSink::CheckUpsertKeys(const Batch& batch) const {
  int64_t rows = 0;  // with a NULL in any key column
  std::vector<std::string> null_columns;
  std::vector<const Column*> keys;
  for (const std::string& k : config_.key) {
    const Column& col = batch.column(batch.schema()->FieldIndex(k));  // ResolveTargets checked
    if (col.null_count() == 0) continue;
    null_columns.push_back(k);
    keys.push_back(&col);
  }
  if (keys.empty()) return Status::OK();
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    if (std::any_of(keys.begin(), keys.end(), [r](const Column* c) { return c->IsNull(r); })) {
      ++rows;
    }
  }
  return Status::Invalid(
      "{}: upsert into table '{}': {} of the batch's {} rows have a NULL key (column{} '{}'); "
      "a row without its key cannot be matched ON CONFLICT, so nothing of the batch was "
      "written: fill the key or filter those rows out before this node",
      Context(), config_.table, rows, batch.num_rows(), null_columns.size() > 1 ? "s" : "",
      fmt::join(null_columns, "', '"));
}

Status PostgresSink::EnsurePartitions(const Batch& batch) {
  const Column& col = batch.column(partition_column_);
  const bool monthly = config_.interval == PartitionInterval::kMonth;
  auto period_start = [&](int64_t micros) {
    int64_t days = micros / kMicrosPerDay - (micros % kMicrosPerDay < 0 ? 1 : 0);
    if (monthly) {
      int64_t y;
      unsigned m;
      unsigned d;
      CivilFromDays(days, &y, &m, &d);
      days = DaysFromCivil(y, m, 1);
    }
    return days * kMicrosPerDay;
  };
  std::set<int64_t> needed;
  bool nulls = false;
  int64_t last = INT64_MIN;
  for (int64_t r = 0; r < col.length(); ++r) {
    if (col.IsNull(r)) {
      nulls = true;
      continue;
    }
    const int64_t start = period_start(col.GetInt64(r));
    if (start == last) continue;
    last = start;
    if (partitions_made_.count(start) == 0) needed.insert(start);
  }
  if (needed.empty() && (!nulls || default_partition_made_)) return Status::OK();
  SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
  auto fail = [&](const Status& st) {
    if (!lease->IsHealthy()) lease.Discard();
    return st.WithContext("{}: creating partitions of table '{}'", Context(), config_.table);
  };
  for (const int64_t start : needed) {
    int64_t y;
    unsigned m;
    unsigned d;
    CivilFromDays(start / kMicrosPerDay, &y, &m, &d);
    int64_t end;
    std::string suffix;
    if (monthly) {
      end = DaysFromCivil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * kMicrosPerDay;
      suffix = fmt::format("_p{:04}{:02}", y, m);
    } else {
      end = start + kMicrosPerDay;
      suffix = fmt::format("_p{:04}{:02}{:02}", y, m, d);
    }
    const std::string sql = "CREATE TABLE IF NOT EXISTS " + SiblingName(config_.table, suffix) +
                            " PARTITION OF " + QuoteIdentifier(config_.table) +
                            " FOR VALUES FROM (" +
                            pg_internal::QuoteLiteral(FormatTimestamp(start)) + ") TO (" +
                            pg_internal::QuoteLiteral(FormatTimestamp(end)) + ")";
    auto made = lease->Exec(sql);
    if (!made.ok()) return fail(made.status());
    partitions_made_.insert(start);
  }
  if (nulls && !default_partition_made_) {
    auto made = lease->Exec("CREATE TABLE IF NOT EXISTS " + SiblingName(config_.table, "_default") +
                            " PARTITION OF " + QuoteIdentifier(config_.table) + " DEFAULT");
    if (!made.ok()) return fail(made.status());
    default_partition_made_ = true;
  }
  return Status::OK();
}

Status PostgresSink::WriteOnce(const Batch& batch) {
  SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
  Status st = WriteInTransaction(lease.get(), batch);
  if (!st.ok()) {
    // The connection may be mid-COPY or mid-transaction, or gone: never reuse it.
    lease.Discard();
    return st.WithContext("{}: writing {} rows to table '{}'", Context(), batch.num_rows(),
                          config_.table);
  }
  return Status::OK();
}

Status PostgresSink::WriteInTransaction(PgConnection* conn, const Batch& batch) {
  SLUICE_RETURN_NOT_OK(conn->Begin());
  switch (config_.mode) {
    case SinkMode::kInsert:
      if (create_stage_sql_.empty()) {
        const auto start = std::chrono::steady_clock::now();
        SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch));
        (void)rows;
        AddPhase("copy", start);
      } else {
        auto start = std::chrono::steady_clock::now();
        SLUICE_RETURN_NOT_OK(conn->Exec(create_stage_sql_).status());
        SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch));
        AddPhase("copy", start);
        start = std::chrono::steady_clock::now();
        SLUICE_ASSIGN_OR_RETURN(pg::PgResult inserted, conn->Exec(upsert_sql_));
        if (inserted.AffectedRows() != rows) {
          return Status::DataLoss("INSERT stored {} rows of the {} staged", inserted.AffectedRows(),
                                  rows);
        }
        AddPhase("insert", start);
      }
      break;
    case SinkMode::kUpsert: {
      auto start = std::chrono::steady_clock::now();
      SLUICE_RETURN_NOT_OK(conn->Exec(create_stage_sql_).status());
      SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch));
      (void)rows;
      AddPhase("copy", start);
      start = std::chrono::steady_clock::now();
      SLUICE_RETURN_NOT_OK(conn->Exec(upsert_sql_).status());
      AddPhase("insert", start);
      break;
    }
    case SinkMode::kInsertBatch: {
      const auto start = std::chrono::steady_clock::now();
      SLUICE_RETURN_NOT_OK(InsertRows(conn, batch));
      AddPhase("insert", start);
      break;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  SLUICE_RETURN_NOT_OK(conn->Commit());
  AddPhase("commit", start);
  return Status::OK();
}

Result<int64_t> PostgresSink::CopyRows(PgConnection* conn, const std::string& copy_sql,
                                       const Batch& batch) {
  SLUICE_RETURN_NOT_OK(conn->BeginCopyIn(copy_sql));
  buffer_.clear();
  pg::CopyBinaryEncoder::AppendHeader(&buffer_);
  const int64_t n = batch.num_rows();
  for (int64_t begin = 0; begin < n; begin += config_.batch_rows) {
    Status st =
        encoder_.AppendRows(batch, begin, std::min(n, begin + config_.batch_rows), &buffer_);
    if (!st.ok()) {
      conn->AbortCopyIn("sluice: " + st.message());
      return st;
    }
    if (buffer_.size() >= kCopySendBytes) {
      SLUICE_RETURN_NOT_OK(conn->PutCopyData(buffer_));
      buffer_.clear();
    }
  }
  pg::CopyBinaryEncoder::AppendTrailer(&buffer_);
  SLUICE_RETURN_NOT_OK(conn->PutCopyData(buffer_));
  buffer_.clear();
  SLUICE_ASSIGN_OR_RETURN(int64_t rows, conn->EndCopyIn());
  if (rows != n) {
    return Status::DataLoss("COPY stored {} rows of the {} sent", rows, n);
  }
  return rows;
}

Status PostgresSink::InsertRows(PgConnection* conn, const Batch& batch) {
  const int num_columns = batch.num_columns();
  const int64_t per_statement = std::max<int64_t>(
      1, std::min({config_.batch_rows, kMaxRowsPerInsert, kMaxParams / num_columns}));
  const int64_t n = batch.num_rows();
  std::vector<const char*> values;
  std::vector<int> lengths;
  for (int64_t begin = 0; begin < n; begin += per_statement) {
    const int64_t rows = std::min(per_statement, n - begin);
    const std::string name = fmt::format(
        "sluice_ins_{:016x}_{}", std::hash<std::string>{}(config_.table + column_list_), rows);
    if (!conn->IsPrepared(name)) {
      std::string sql =
          "INSERT INTO " + QuoteIdentifier(config_.table) + " " + column_list_ + " VALUES ";
      std::vector<Oid> types;
      for (int64_t r = 0; r < rows; ++r) {
        sql += r == 0 ? "(" : ", (";
        for (int c = 0; c < num_columns; ++c) {
          sql += fmt::format("{}${}{}", c == 0 ? "" : ", ", r * num_columns + c + 1,
                             param_casts_[static_cast<size_t>(c)]);
          types.push_back(param_types_[static_cast<size_t>(c)]);
        }
        sql += ")";
      }
      SLUICE_RETURN_NOT_OK(conn->Prepare(name, sql, types));
    }
    // The binary COPY tuple of a row is its fields' lengths and send formats: exactly the
    // binary parameters, so the same encoder serves both.
    buffer_.clear();
    SLUICE_RETURN_NOT_OK(encoder_.AppendRows(batch, begin, begin + rows, &buffer_));
    values.clear();
    lengths.clear();
    const char* p = buffer_.data();
    for (int64_t r = 0; r < rows; ++r) {
      p += 2;  // field count
      for (int c = 0; c < num_columns; ++c) {
        uint32_t be;
        std::memcpy(&be, p, 4);
        const auto len = static_cast<int32_t>(__builtin_bswap32(be));
        p += 4;
        values.push_back(len < 0 ? nullptr : p);
        lengths.push_back(len < 0 ? 0 : len);
        if (len > 0) p += len;
      }
    }
    SLUICE_ASSIGN_OR_RETURN(pg::PgResult result, conn->ExecPreparedBinary(name, values, lengths));
    if (result.AffectedRows() != rows) {
      return Status::DataLoss("INSERT stored {} rows of the {} sent", result.AffectedRows(), rows);
    }
  }
  return Status::OK();
}

Status PostgresSink::Close() {
  pool_.reset();
  return Status::OK();
}

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
    } else {
      return o.ErrorAt("mode", "must be insert, upsert or insert_batch");
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
  c.indexes = o.GetStringList("indexes");
  if (!c.indexes.empty() && !c.create_table) {
    return o.ErrorAt("indexes", "indexes are created with the table; set create_table: true");
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
  if (o.Has("pool_size")) c.pool_size = static_cast<int>(o.GetInt("pool_size"));
  if (c.pool_size < 1) return o.ErrorAt("pool_size", "must be at least 1");
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

}  // namespace

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
       "insert (binary COPY), upsert (staging table + INSERT ON CONFLICT) or insert_batch "
       "(multi-row INSERTs).",
       false,
       {"insert", "upsert", "insert_batch"}},
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
       "When creating the table: columns to index (one index each).",
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
      {"pool_size",
       OptionType::kInt,
       "2",
       "Most connections in the pool this sink uses (shared by nodes with the same dsn).",
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
  SLUICE_ASSIGN_OR_RETURN(SinkConfig config, ParseSinkOptions(options));
  return std::unique_ptr<Sink>(new PostgresSink(options.id(), std::move(config)));
}

}  // namespace sluice
