// The `postgres` source: stream a table or query with `COPY (SELECT ...) TO STDOUT (FORMAT
// binary)`, decoding into batches of batch_rows; optionally split into key ranges read
// concurrently on several connections that share one snapshot.

#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/connectors/postgres/postgres.h"
#include "sluice/connectors/postgres/postgres_internal.h"

namespace sluice {

using pg::PgCodec;
using pg::PgConnection;
using pg_internal::QuoteIdentifier;

namespace {

constexpr int64_t kDefaultBatchRows = 10'000;
constexpr int kMaxParallel = 64;
// Batches each reader may have decoded ahead of Next(): bounds memory to
// parallel x (this + 1) batches.
constexpr size_t kBatchesAheadPerReader = 2;

struct SourceConfig {
  std::string dsn;
  std::string table;
  std::string query;
  std::string where;
  std::vector<std::string> columns;
  std::vector<std::pair<std::string, TypeId>> types;  // from `schema`
  int64_t batch_rows = kDefaultBatchRows;
  int parallel = 1;
  std::string key;
  int64_t statement_timeout_us = 0;
  int64_t connect_timeout_us = pg::kDefaultConnectTimeoutUs;
};

/// One `COPY ... TO STDOUT (FORMAT binary)` on one connection, cut into batches.
class CopyStream {
 public:
  CopyStream(PgConnection* conn, std::string copy_sql, SchemaPtr schema,
             std::vector<PgCodec> codecs)
      : conn_(conn),
        copy_sql_(std::move(copy_sql)),
        schema_(schema),
        decoder_(std::move(schema), std::move(codecs)) {}

  /// Return the next batch of at most `max_rows` rows, or nullptr at the end of the stream.
  /// `cancelled` is polled between rows.
  template <typename Cancelled>
  Result<BatchPtr> Next(int64_t max_rows, const Cancelled& cancelled) {
    if (done_) return BatchPtr();
    if (!started_) {
      SLUICE_RETURN_NOT_OK(conn_->BeginCopyOut(copy_sql_));
      started_ = true;
    }
    std::vector<ColumnBuilder> builders;
    builders.reserve(static_cast<size_t>(schema_->num_fields()));
    for (const Field& f : schema_->fields()) builders.emplace_back(f.type, max_rows);
    int64_t rows = 0;
    while (rows < max_rows) {
      if (cancelled()) return Status::Cancelled("the run was cancelled");
      std::string_view chunk;
      SLUICE_ASSIGN_OR_RETURN(bool more, conn_->ReadCopyData(&chunk));
      if (!more) {
        done_ = true;
        if (!decoder_.finished()) {
          return Status::Invalid("PostgreSQL at {}: binary COPY ended without its trailer",
                                 conn_->description());
        }
        break;
      }
      SLUICE_RETURN_NOT_OK(decoder_.Consume(chunk, &builders, &rows));
    }
    if (rows == 0) return BatchPtr();
    std::vector<Column> columns;
    columns.reserve(builders.size());
    for (auto& b : builders) columns.push_back(b.Finish());
    return Batch::MakeUnchecked(schema_, std::move(columns), rows);
  }

 private:
  PgConnection* conn_;
  const std::string copy_sql_;
  SchemaPtr schema_;
  pg::CopyBinaryDecoder decoder_;
  bool started_ = false;
  bool done_ = false;
};

/// Read a PostgreSQL table or query. The schema is known once Open() returns: the relation is
/// planned (pg::PlanRelation: described, not run) and each column's type mapped to a sluice
/// type that keeps every value (numeric and json as exact strings, ...); columns of types
/// without a binary codec (interval, arrays, inet, ...) are read as their text form.
///
/// With `parallel: N`, the range min(key)..max(key) of an integer key column (smallint,
/// integer, bigint, or a domain over one) is split into N ranges, each streamed by its own
/// connection and thread; the rows whose key is NULL are read by the last reader after its
/// range, so every row is read exactly once. A key of any other type is refused when the
/// source opens: ranges of integers would skip the values between them. Every connection reads
/// the same exported snapshot (REPEATABLE READ), so together they see one consistent state of
/// the table. Batches arrive in no particular order then.
///
/// Open, Next and Close are called from the source's thread.
class PostgresSource final : public Source {
 public:
  PostgresSource(std::string id, SourceConfig config)
      : id_(std::move(id)), config_(std::move(config)) {}
  ~PostgresSource() override { StopReaders(); }

  Status Open(NodeContext* ctx) override;
  Result<BatchPtr> Next(uint64_t seq) override;
  Status Close() override;
  SchemaPtr schema() const override { return schema_; }
  int64_t EstimatedRows() const override { return estimated_rows_; }

 private:
  std::string Context() const { return fmt::format("node '{}'", id_); }
  Result<std::unique_ptr<PgConnection>> Connect();
  /// Return the relation PlanRelation describes: the table, or the query as a subquery.
  std::string Relation() const;
  /// Return " FROM <relation> [WHERE where AND range]".
  std::string FromWhereSql(const std::string& range) const;
  /// Return the COPY statement reading the planned columns, restricted to `range` (a condition
  /// on the key) if given.
  std::string CopySql(const std::string& range) const;
  Status PlanColumns();
  /// Check that `key` is an integer column of the relation planned in `plan` (all columns).
  Status CheckKey(const pg::RelationPlan& plan) const;
  Status EstimateRows();
  Status StartParallel();
  /// Stream every batch of `streams`, one after the other, into queue_.
  void ReadRanges(int reader, std::vector<std::unique_ptr<CopyStream>>* streams);
  void StopReaders();

  const std::string id_;
  const SourceConfig config_;
  NodeContext* ctx_ = nullptr;
  std::unique_ptr<PgConnection> conn_;
  SchemaPtr schema_;
  pg::RelationPlan plan_;
  int64_t estimated_rows_ = -1;
  std::unique_ptr<CopyStream> stream_;  // parallel == 1

  // parallel > 1: readers push batches to queue_; Next() pops them.
  std::vector<std::unique_ptr<PgConnection>> reader_conns_;
  // One list per reader, read in order on the reader's connection.
  std::vector<std::vector<std::unique_ptr<CopyStream>>> reader_streams_;
  std::vector<std::thread> readers_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<BatchPtr> queue_;  // guarded by mu_
  size_t num_readers_ = 0;
  int running_ = 0;  // guarded by mu_
  // Set under mu_ (so that waiters wake), read without it between rows.
  std::atomic<bool> stop_{false};
  Status reader_error_;  // guarded by mu_; the first failure of any reader
};

Result<std::unique_ptr<PgConnection>> PostgresSource::Connect() {
  auto conn = PgConnection::Connect(config_.dsn, config_.connect_timeout_us);
  if (!conn.ok()) return conn.status().WithContext("{}", Context());
  SLUICE_RETURN_NOT_OK(pg::ApplyExactTextSettings(conn->get()).WithContext("{}", Context()));
  if (config_.statement_timeout_us > 0) {
    SLUICE_RETURN_NOT_OK((*conn)
                             ->SetStatementTimeout(config_.statement_timeout_us / 1000)
                             .WithContext("{}", Context()));
  }
  return conn;
}

std::string PostgresSource::Relation() const {
  if (!config_.query.empty()) return "(" + config_.query + ") AS sluice_q";
  return QuoteIdentifier(config_.table);
}

std::string PostgresSource::FromWhereSql(const std::string& range) const {
  std::string sql = " FROM " + Relation();
  std::vector<std::string> conditions;
  if (!config_.where.empty()) conditions.push_back("(" + config_.where + ")");
  if (!range.empty()) conditions.push_back(range);
  for (size_t i = 0; i < conditions.size(); ++i) {
    sql += (i == 0 ? " WHERE " : " AND ") + conditions[i];
  }
  return sql;
}

std::string PostgresSource::CopySql(const std::string& range) const {
  const bool any_text = std::any_of(plan_.columns.begin(), plan_.columns.end(),
                                    [](const pg::PgColumnPlan& c) { return c.as_text; });
  // A query that needs no cast and no range runs as written, keeping its ORDER BY.
  if (!config_.query.empty() && !any_text && range.empty()) {
    return "COPY (" + config_.query + ") TO STDOUT (FORMAT binary)";
  }
  return "COPY (SELECT " + plan_.select_list + FromWhereSql(range) + ") TO STDOUT (FORMAT binary)";
}

Status PostgresSource::PlanColumns() {
  auto planned = pg::PlanRelation(conn_.get(), Relation());
  if (!planned.ok()) {
    return planned.status().WithContext(
        "{}: reading {}", Context(),
        config_.table.empty() ? "the query" : "table '" + config_.table + "'");
  }
  plan_ = std::move(planned).ValueOrDie();
  if (plan_.columns.empty()) {
    return Status::ConfigError("{}: the query returns no columns", Context());
  }
  // Before 'columns' narrows the plan: the key need not be one of the columns read.
  if (config_.parallel > 1) SLUICE_RETURN_NOT_OK(CheckKey(plan_));
  if (!config_.columns.empty()) {
    Status st = plan_.Keep(config_.columns);
    if (!st.ok()) {
      return Status::ConfigError("{}: option 'columns': {} in table '{}'", Context(), st.message(),
                                 config_.table);
    }
  }
  for (const auto& [name, type] : config_.types) {
    Status st = plan_.Retype(name, type);
    if (st.code() == StatusCode::kNotFound) {
      return Status::ConfigError(
          "{}: option 'schema' names column '{}', which the query does not return", Context(),
          name);
    }
    if (!st.ok()) {
      return Status::ConfigError("{}: option 'schema': {}; cast it in 'query'", Context(),
                                 st.message());
    }
  }
  schema_ = plan_.schema;
  return Status::OK();
}

Status PostgresSource::CheckKey(const pg::RelationPlan& plan) const {
  const int i = plan.Find(config_.key);
  if (i < 0) {
    return Status::ConfigError(
        "{}: option 'key': '{}' is not a column of {}", Context(), config_.key,
        config_.table.empty() ? "the query" : "table '" + config_.table + "'");
  }
  const pg::PgColumnPlan& column = plan.columns[static_cast<size_t>(i)];
  if (column.type_oid != pg::oids::kInt2 && column.type_oid != pg::oids::kInt4 &&
      column.type_oid != pg::oids::kInt8) {
    return Status::ConfigError(
        "{}: option 'key': column '{}' is {}, but 'parallel' splits the rows by ranges of an "
        "integer key (smallint, integer or bigint); name an integer column or set parallel: 1",
        Context(), config_.key, column.pg_type);
  }
  return Status::OK();
}

Status PostgresSource::EstimateRows() {
  if (config_.table.empty() || !config_.where.empty()) return Status::OK();
  // The planner's estimate: free, and good enough for an ETA.
  auto r = conn_->ExecParams(
      "SELECT reltuples::int8 FROM pg_catalog.pg_class WHERE oid = "
      "to_regclass($1)",
      {QuoteIdentifier(config_.table)});
  if (r.ok() && r->num_rows() == 1 && !r->IsNull(0, 0)) {
    const std::string_view text = r->Value(0, 0);
    int64_t n = -1;
    std::from_chars(text.data(), text.data() + text.size(), n);
    if (n >= 0) estimated_rows_ = n;
  }
  return Status::OK();
}

Status PostgresSource::Open(NodeContext* ctx) {
  ctx_ = ctx;
  SLUICE_ASSIGN_OR_RETURN(conn_, Connect());
  if (config_.parallel > 1) {
    // One snapshot for every reader: opened here, exported, and adopted by the others.
    SLUICE_RETURN_NOT_OK(conn_->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                             .status()
                             .WithContext("{}", Context()));
  }
  SLUICE_RETURN_NOT_OK(PlanColumns());
  SLUICE_RETURN_NOT_OK(EstimateRows());
  if (config_.parallel > 1) return StartParallel();
  stream_ = std::make_unique<CopyStream>(conn_.get(), CopySql(""), schema_, plan_.codecs);
  return Status::OK();
}

Status PostgresSource::StartParallel() {
  SLUICE_ASSIGN_OR_RETURN(pg::PgResult snapshot, conn_->Exec("SELECT pg_export_snapshot()"));
  const std::string snapshot_id(snapshot.Value(0, 0));
  const std::string key = config_.query.empty() ? pg_internal::QuoteName(config_.key)
                                                : "sluice_q." + pg_internal::QuoteName(config_.key);
  // The key is an integer column (CheckKey): min and max are exact as int8.
  const std::string bounds_sql =
      "SELECT min(" + key + ")::int8, max(" + key + ")::int8" + FromWhereSql("");
  auto bounds = conn_->Exec(bounds_sql);
  if (!bounds.ok()) {
    return bounds.status().WithContext("{}: option 'key': finding the range of '{}'", Context(),
                                       config_.key);
  }
  const std::string null_range = key + " IS NULL";
  if (bounds->IsNull(0, 0)) {
    // No row has a key: the rows there are (if any) are read as one stream.
    stream_ = std::make_unique<CopyStream>(conn_.get(), CopySql(null_range), schema_, plan_.codecs);
    return Status::OK();
  }
  int64_t lo = 0;
  int64_t hi = 0;
  std::from_chars(bounds->Value(0, 0).data(),
                  bounds->Value(0, 0).data() + bounds->Value(0, 0).size(), lo);
  std::from_chars(bounds->Value(0, 1).data(),
                  bounds->Value(0, 1).data() + bounds->Value(0, 1).size(), hi);
  // Split [lo, hi] into `parallel` ranges of near-equal width (in unsigned arithmetic: the
  // width of the full int64 range overflows a signed one). Range i is
  // [lo + span*i/n, lo + span*(i+1)/n - 1]: each begins one past the end of the one before, the
  // last ends at hi, and none is empty since n <= span.
  const auto span = static_cast<unsigned __int128>(static_cast<__int128>(hi) - lo) + 1;
  const int n = static_cast<int>(std::min<unsigned __int128>(span, config_.parallel));
  std::vector<std::vector<std::string>> ranges(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const auto begin =
        static_cast<int64_t>(static_cast<__int128>(lo) + static_cast<__int128>(span * i / n));
    const auto end = static_cast<int64_t>(static_cast<__int128>(lo) +
                                          static_cast<__int128>(span * (i + 1) / n) - 1);
    // Quoted literals: a bare -9223372036854775808 is the negation of a numeric.
    ranges[static_cast<size_t>(i)].push_back(
        fmt::format("{} BETWEEN '{}'::int8 AND '{}'::int8", key, begin, end));
  }
  // BETWEEN is never true for a NULL key: the last reader reads those rows after its range.
  ranges.back().push_back(null_range);
  reader_conns_.push_back(nullptr);  // reader 0 uses conn_
  for (int i = 1; i < n; ++i) {
    SLUICE_ASSIGN_OR_RETURN(auto conn, Connect());
    SLUICE_RETURN_NOT_OK(conn->Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                             .status()
                             .WithContext("{}", Context()));
    SLUICE_RETURN_NOT_OK(
        conn->Exec("SET TRANSACTION SNAPSHOT " + pg_internal::QuoteLiteral(snapshot_id))
            .status()
            .WithContext("{}: sharing the snapshot of the first reader", Context()));
    reader_conns_.push_back(std::move(conn));
  }
  reader_streams_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    PgConnection* conn = i == 0 ? conn_.get() : reader_conns_[static_cast<size_t>(i)].get();
    for (const std::string& range : ranges[static_cast<size_t>(i)]) {
      reader_streams_[static_cast<size_t>(i)].push_back(
          std::make_unique<CopyStream>(conn, CopySql(range), schema_, plan_.codecs));
    }
  }
  running_ = n;
  num_readers_ = static_cast<size_t>(n);
  for (int i = 0; i < n; ++i) {
    readers_.emplace_back(&PostgresSource::ReadRanges, this, i,
                          &reader_streams_[static_cast<size_t>(i)]);
  }
  return Status::OK();
}

void PostgresSource::ReadRanges(int reader, std::vector<std::unique_ptr<CopyStream>>* streams) {
  auto stopped = [this] { return stop_.load(std::memory_order_relaxed) || ctx_->cancelled(); };
  Status st;
  for (size_t s = 0; s < streams->size() && st.ok() && !stop_; ++s) {
    CopyStream* stream = (*streams)[s].get();
    for (;;) {
      const auto start = std::chrono::steady_clock::now();
      auto batch = stream->Next(config_.batch_rows, stopped);
      if (ctx_->stats() != nullptr) {
        ctx_->stats()->AddPhase("read", pg_internal::ElapsedNanos(start));
      }
      if (!batch.ok()) {
        st = batch.status().WithContext("{}: reader {}", Context(), reader);
        break;
      }
      if (*batch == nullptr) break;
      std::unique_lock<std::mutex> lock(mu_);
      changed_.wait(lock,
                    [&] { return stop_ || queue_.size() < kBatchesAheadPerReader * num_readers_; });
      if (stop_) break;
      queue_.push_back(std::move(batch).ValueOrDie());
      changed_.notify_all();
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (!st.ok() && reader_error_.ok() && !stop_) reader_error_ = st;
  --running_;
  changed_.notify_all();
}

Result<BatchPtr> PostgresSource::Next(uint64_t /*seq*/) {
  if (stream_ != nullptr) {
    const auto start = std::chrono::steady_clock::now();
    auto batch = stream_->Next(config_.batch_rows, [this] { return ctx_->cancelled(); });
    if (ctx_->stats() != nullptr) ctx_->stats()->AddPhase("read", pg_internal::ElapsedNanos(start));
    if (!batch.ok()) return batch.status().WithContext("{}", Context());
    return batch;
  }
  std::unique_lock<std::mutex> lock(mu_);
  changed_.wait(lock, [&] { return !queue_.empty() || running_ == 0 || !reader_error_.ok(); });
  if (!reader_error_.ok()) return reader_error_;
  if (queue_.empty()) return BatchPtr();
  BatchPtr batch = std::move(queue_.front());
  queue_.pop_front();
  changed_.notify_all();
  return batch;
}

void PostgresSource::StopReaders() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
  // A reader may be waiting on the server: cancelling its query ends the wait.
  if (conn_ != nullptr && !readers_.empty()) conn_->Cancel();
  for (auto& conn : reader_conns_) {
    if (conn != nullptr) conn->Cancel();
  }
  for (auto& t : readers_) t.join();
  readers_.clear();
}

Status PostgresSource::Close() {
  StopReaders();
  stream_.reset();
  reader_streams_.clear();
  reader_conns_.clear();
  conn_.reset();
  return Status::OK();
}

Result<SourceConfig> ParseSourceOptions(const NodeOptions& o) {
  SourceConfig c;
  c.dsn = o.GetString("dsn");
  if (c.dsn.empty()) return o.ErrorAt("dsn", "a PostgreSQL connection string is required");
  SLUICE_ASSIGN_OR_RETURN(TableOrQuery read, GetTableOrQuery(o));
  c.query = std::move(read.query);
  c.table = std::move(read.table);
  c.where = std::move(read.where);
  c.columns = std::move(read.columns);
  if (o.Has("batch_rows")) c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  if (o.Has("parallel")) c.parallel = static_cast<int>(o.GetInt("parallel"));
  if (c.parallel < 1 || c.parallel > kMaxParallel) {
    return o.ErrorAt("parallel", fmt::format("must be between 1 and {}", kMaxParallel));
  }
  c.key = o.GetString("key");
  if (c.parallel > 1 && c.key.empty()) {
    return o.ErrorAt("key", "parallel reads split the rows by ranges of an integer 'key' column");
  }
  if (o.Has("statement_timeout")) c.statement_timeout_us = o.GetDurationMicros("statement_timeout");
  if (o.Has("connect_timeout")) c.connect_timeout_us = o.GetDurationMicros("connect_timeout");
  if (c.connect_timeout_us <= 0) return o.ErrorAt("connect_timeout", "must be positive");
  SLUICE_ASSIGN_OR_RETURN(SchemaPtr declared, o.GetSchema("schema"));
  if (declared != nullptr) {
    for (const auto& f : declared->fields()) c.types.emplace_back(f.name, f.type);
  }
  return c;
}

}  // namespace

const OptionSchema& PostgresSourceOptions() {
  static const OptionSchema kOptions = {
      {"dsn",
       OptionType::kString,
       "",
       "libpq connection string or postgresql:// URI (${ENV} expands).",
       true,
       {}},
      {"table", OptionType::kString, "", "Table to read (may be schema.table).", false, {}},
      {"query", OptionType::kString, "", "SELECT to read (instead of 'table').", false, {}},
      {"columns",
       OptionType::kStringList,
       "",
       "Columns of 'table' to read (default: all).",
       false,
       {}},
      {"where", OptionType::kString, "", "SQL condition selecting the table's rows.", false, {}},
      {"batch_rows", OptionType::kInt, "10000", "Rows per batch.", false, {}},
      {"parallel",
       OptionType::kInt,
       "1",
       "Read N key ranges concurrently on N connections sharing one snapshot (needs 'key'); "
       "rows with a NULL key are read too.",
       false,
       {}},
      {"key",
       OptionType::kString,
       "",
       "Integer column (smallint, integer, bigint) whose min..max range 'parallel' splits; "
       "a key of another type is refused.",
       false,
       {}},
      {"schema",
       OptionType::kMap,
       "",
       "Column name -> sluice type overriding the default mapping (e.g. a numeric as string).",
       false,
       {}},
      {"statement_timeout",
       OptionType::kDuration,
       "",
       "Cancel the read if it runs longer than this (default: the server's).",
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

Result<std::unique_ptr<Source>> MakePostgresSource(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(SourceConfig config, ParseSourceOptions(options));
  return std::unique_ptr<Source>(new PostgresSource(options.id(), std::move(config)));
}

}  // namespace sluice
