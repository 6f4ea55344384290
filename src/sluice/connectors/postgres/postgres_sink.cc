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

#include "sluice/connectors/postgres/postgres_sink_internal.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice::pg_sink {

using pg_internal::QuoteIdentifier;

std::string QuotedList(const std::vector<std::string>& names, std::string_view prefix) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::string(prefix) + pg_internal::QuoteName(names[i]);
  }
  return out;
}

std::string SiblingName(const std::string& table, std::string_view suffix) {
  const std::string_view base = pg_internal::BaseName(table);
  const std::string schema = table.substr(0, table.size() - base.size());
  const size_t keep =
      std::min(base.size(), kMaxIdentifierBytes - std::min(kMaxIdentifierBytes, suffix.size()));
  return (schema.empty() ? "" : QuoteIdentifier(schema.substr(0, schema.size() - 1)) + ".") +
         QuoteIdentifier(std::string(base.substr(0, keep)) + std::string(suffix));
}

template <typename F>
Status PostgresSink::WithRetry(F&& op) {
  RetryStats retries;  // this call's: writing threads retry at once
  Status st = Retry(
      policy_, clock_.get(),
      [&]() -> Status {
        if (ctx_->cancelled()) return Status::Cancelled("{}: the run was cancelled", Context());
        return op();
      },
      &retries, /*cancelled=*/nullptr);
  if (ctx_->stats() != nullptr && retries.retries > 0) {
    ctx_->stats()->AddCounter("retries", retries.retries);
  }
  return st;
}

Status PostgresSink::Open(NodeContext* ctx) {
  ctx_ = ctx;
  clock_ = std::make_unique<pg_internal::CancellableClock>(ctx);
  if (ctx_->dry_run()) return Status::OK();
  pg::PgPoolOptions options;
  options.max_size = std::max(config_.pool_size, config_.max_parallel_writes + 1);
  options.connect_timeout_us = config_.connect_timeout_us;
  auto pool = pg::PgPool::ForDsn(config_.dsn, options);
  if (!pool.ok()) return pool.status().WithContext("{}", Context());
  pool_ = *pool;
  // Connect now, so that a bad DSN or an unreachable server fails the run before any data
  // moves (the connection then waits in the pool for the first batch).
  SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
  if (config_.max_parallel_writes > 1) {
    worker_scratch_.resize(static_cast<size_t>(config_.max_parallel_writes));
    parallel_ = std::make_unique<ParallelWrites>(
        config_.max_parallel_writes, [this](const Batch& batch, int worker) {
          Scratch* scratch = &worker_scratch_[static_cast<size_t>(worker)];
          return WithRetry([&] { return WriteOnce(batch, scratch); });
        });
  }
  return Status::OK();
}

pg::CopyBinaryEncoder& PostgresSink::EncoderFor(Scratch* scratch) const {
  if (!scratch->encoder.has_value() || scratch->encoder_generation != encoder_generation_) {
    scratch->encoder = encoder_;
    scratch->encoder_generation = encoder_generation_;
  }
  return *scratch->encoder;
}

Status PostgresSink::Flush() { return parallel_ != nullptr ? parallel_->Drain() : Status::OK(); }

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

Result<BatchPtr> PostgresSink::KeyColumns(const BatchPtr& batch) {
  if (batch->schema() != delete_input_schema_) {
    std::vector<Field> fields;
    delete_key_columns_.clear();
    for (const std::string& k : config_.key) {
      const int c = batch->schema()->FieldIndex(k);
      if (c < 0) {
        return Status::ConfigError("{}: option 'key': '{}' is not a column of the input", Context(),
                                   k);
      }
      delete_key_columns_.push_back(c);
      fields.push_back(batch->schema()->field(c));
    }
    delete_key_schema_ = MakeSchema(std::move(fields));
    delete_input_schema_ = batch->schema();
  }
  std::vector<Column> columns;
  for (int c : delete_key_columns_) columns.push_back(batch->column(c));
  return Batch::MakeUnchecked(delete_key_schema_, std::move(columns), batch->num_rows());
}

Status PostgresSink::Write(const BatchPtr& input, AckSet acks) {
  if (ctx_->dry_run() || input->num_rows() == 0) return Status::OK();
  BatchPtr batch = input;
  if (config_.mode == SinkMode::kDelete) {
    SLUICE_ASSIGN_OR_RETURN(batch, KeyColumns(input));
  }
  if (!table_ready_ || (schema_ != batch->schema() && !(*schema_ == *batch->schema()))) {
    // The writing threads read what PrepareTarget remakes: let them finish first.
    if (parallel_ != nullptr) SLUICE_RETURN_NOT_OK(parallel_->Drain());
    table_ready_ = false;
    SLUICE_RETURN_NOT_OK(WithRetry([&] { return PrepareTarget(*batch); }));
    table_ready_ = true;
  }
  if (config_.mode == SinkMode::kUpsert || config_.mode == SinkMode::kDelete) {
    SLUICE_RETURN_NOT_OK(CheckUpsertKeys(*batch));
  }
  if (partition_column_ >= 0) {
    SLUICE_RETURN_NOT_OK(WithRetry([&] { return EnsurePartitions(*batch); }));
  }
  // The first batch is written here, so that a clash with existing keys is known before
  // batches of the same load run at once (and each stages its rows).
  if (parallel_ != nullptr && wrote_one_) return parallel_->Submit(batch, std::move(acks));
  SLUICE_RETURN_NOT_OK(WithRetry([&] { return WriteOnce(*batch, &scratch_); }));
  acks.Release();  // committed: the rows are durable
  wrote_one_ = true;
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
  std::vector<std::string> stage_refs;    // delete: a staging column as the table's type
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
      stage_refs.push_back("s." + name);
    } else if (f.type == TypeId::kString || f.type == TypeId::kJson) {
      // A text form: sent as text, read by the column type's input function.
      text_input = true;
      targets.push_back(PgCodec::kText);
      param_types_.push_back(pg::oids::kText);
      param_casts_.push_back("::" + declared);
      stage_exprs.push_back(name + "::text AS " + name);
      insert_exprs.push_back(name + "::" + declared);
      stage_refs.push_back("s." + name + "::" + declared);
    } else {
      return Status::ConfigError(
          "{}: cannot write {} column '{}' to column of type {} in table '{}'", Context(),
          TypeName(f.type), f.name, declared, config_.table);
    }
    names.push_back(f.name);
  }
  SLUICE_ASSIGN_OR_RETURN(encoder_, pg::CopyBinaryEncoder::Make(schema, std::move(targets)));
  ++encoder_generation_;

  column_list_ = "(" + QuotedList(names) + ")";
  copy_sql_ =
      "COPY " + QuoteIdentifier(config_.table) + " " + column_list_ + " FROM STDIN (FORMAT binary)";
  create_stage_sql_.clear();
  upsert_sql_.clear();
  if (config_.mode == SinkMode::kUpsert || config_.mode == SinkMode::kDelete ||
      (config_.mode == SinkMode::kInsert && text_input)) {
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
    if (config_.mode == SinkMode::kDelete) {
      // The rows whose key is in the batch, however many times; keys compare as the table's
      // types, also when they arrive as text.
      std::vector<std::string> matches;
      for (size_t i = 0; i < names.size(); ++i) {
        matches.push_back("t." + pg_internal::QuoteName(names[i]) + " = " + stage_refs[i]);
      }
      upsert_sql_ = "DELETE FROM " + QuoteIdentifier(config_.table) + " AS t USING " + stage +
                    " AS s WHERE " + fmt::format("{}", fmt::join(matches, " AND "));
    } else if (config_.mode == SinkMode::kInsert) {
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
      // A batch whose keys are all new (the usual case: a first load, a scale-up) goes
      // straight into the table: what the upsert would do, without staging, sorting and
      // inserting again. Only when a unique index on exactly the key makes a clash an error
      // (without one, a rerun would add its rows twice) and no column needs a cast.
      direct_copy_sql_.clear();
      if (!text_input) {
        SLUICE_ASSIGN_OR_RETURN(const bool direct, DirectCopyAllowed(conn));
        if (direct) {
          direct_copy_sql_ = "COPY " + QuoteIdentifier(config_.table) + " " + column_list_ +
                             " FROM STDIN (FORMAT binary)";
        }
      }
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

Result<bool> PostgresSink::DirectCopyAllowed(PgConnection* conn) const {
  // A COPY into the table does what the staged upsert does only when:
  // - a valid, immediate, non-partial unique index has exactly the key as its key columns
  //   (INCLUDE columns aside) — the index ON CONFLICT (key) infers, which makes a COPY of a
  //   clashing key fail instead of adding it twice;
  // - no row-level security (COPY FROM refuses it), no rules (COPY ignores them) and no
  //   enabled BEFORE INSERT row trigger (one returning NULL stores fewer rows than sent).
  std::vector<std::string> key = config_.key;
  std::sort(key.begin(), key.end());  // byte order: the SQL sorts with COLLATE "C"
  const std::string sql =
      "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid AND "
      "i.indisunique AND i.indimmediate AND i.indisvalid AND i.indpred IS NULL AND "
      "i.indexprs IS NULL AND (SELECT array_agg(a.attname::text ORDER BY a.attname::text "
      "COLLATE \"C\") FROM pg_catalog.pg_attribute a WHERE a.attrelid = i.indrelid AND "
      "a.attnum = ANY ((i.indkey::int2[])[0:i.indnkeyatts - 1])) = $2::text[]) "
      "AND NOT c.relrowsecurity AND NOT c.relhasrules AND NOT EXISTS (SELECT 1 FROM "
      "pg_catalog.pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND "
      "t.tgenabled <> 'D' AND (t.tgtype & 7) = 7) "
      "FROM pg_catalog.pg_class c WHERE c.oid = $1::regclass";
  std::string array = "{";
  for (size_t i = 0; i < key.size(); ++i) {
    array += (i == 0 ? "\"" : ",\"");
    for (const char c : key[i]) {
      if (c == '"' || c == '\\') array += '\\';
      array += c;
    }
    array += '"';
  }
  array += "}";
  SLUICE_ASSIGN_OR_RETURN(pg::PgResult found,
                          conn->ExecParams(sql, {QuoteIdentifier(config_.table), array}));
  return found.num_rows() == 1 && found.Value(0, 0) == "t";
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

Status PostgresSink::WriteOnce(const Batch& batch, Scratch* scratch) {
  SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
  const auto start = std::chrono::steady_clock::now();
  Status st = WriteInTransaction(lease.get(), batch, scratch);
  if (ctx_->stats() != nullptr) {
    ctx_->stats()->request_latency.Record(pg_internal::ElapsedNanos(start));  // a transaction
  }
  if (!st.ok()) {
    // The connection may be mid-COPY or mid-transaction, or gone: never reuse it.
    lease.Discard();
    return st.WithContext("{}: writing {} rows to table '{}'", Context(), batch.num_rows(),
                          config_.table);
  }
  return Status::OK();
}

Status PostgresSink::WriteInTransaction(PgConnection* conn, const Batch& batch, Scratch* scratch) {
  SLUICE_RETURN_NOT_OK(conn->Begin());
  int64_t deleted = 0;
  switch (config_.mode) {
    case SinkMode::kInsert:
      if (create_stage_sql_.empty()) {
        const auto start = std::chrono::steady_clock::now();
        SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch, scratch));
        (void)rows;
        AddPhase("copy", start);
      } else {
        auto start = std::chrono::steady_clock::now();
        SLUICE_RETURN_NOT_OK(conn->Exec(create_stage_sql_).status());
        SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch, scratch));
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
      if (!direct_copy_sql_.empty() && !direct_refused_) {
        SLUICE_RETURN_NOT_OK(conn->Exec("SAVEPOINT sluice_direct").status());
        Result<int64_t> copied = CopyRows(conn, direct_copy_sql_, batch, scratch);
        if (copied.ok()) {
          AddPhase("copy", start);
          break;
        }
        if (pg::SqlState(copied.status()) != "23505") return copied.status();
        // A key of the batch is in the table already, or twice in the batch: upsert it, and
        // the batches after it (a rerun's clash again and again).
        SLUICE_RETURN_NOT_OK(conn->Exec("ROLLBACK TO SAVEPOINT sluice_direct").status());
        direct_refused_ = true;
        Log(LogLevel::kInfo,
            "{}: a key of a batch is in table '{}' already: upserting through a "
            "staging table from here on",
            Context(), config_.table);
      }
      SLUICE_RETURN_NOT_OK(conn->Exec(create_stage_sql_).status());
      SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch, scratch));
      (void)rows;
      AddPhase("copy", start);
      start = std::chrono::steady_clock::now();
      SLUICE_RETURN_NOT_OK(conn->Exec(upsert_sql_).status());
      AddPhase("insert", start);
      break;
    }
    case SinkMode::kDelete: {
      auto start = std::chrono::steady_clock::now();
      SLUICE_RETURN_NOT_OK(conn->Exec(create_stage_sql_).status());
      SLUICE_ASSIGN_OR_RETURN(int64_t rows, CopyRows(conn, copy_sql_, batch, scratch));
      (void)rows;
      AddPhase("copy", start);
      start = std::chrono::steady_clock::now();
      SLUICE_ASSIGN_OR_RETURN(pg::PgResult removed, conn->Exec(upsert_sql_));
      deleted = removed.AffectedRows();
      AddPhase("delete", start);
      break;
    }
    case SinkMode::kInsertBatch: {
      const auto start = std::chrono::steady_clock::now();
      SLUICE_RETURN_NOT_OK(InsertRows(conn, batch, scratch));
      AddPhase("insert", start);
      break;
    }
  }
  const auto start = std::chrono::steady_clock::now();
  SLUICE_RETURN_NOT_OK(conn->Commit());
  AddPhase("commit", start);
  if (config_.mode == SinkMode::kDelete && ctx_->stats() != nullptr) {
    // Counted once committed: a retried batch is not counted twice. Fewer than the batch's rows
    // when some were already gone (a rerun) or a key came twice.
    ctx_->stats()->AddCounter("rows_deleted", deleted);
  }
  return Status::OK();
}

Result<int64_t> PostgresSink::CopyRows(PgConnection* conn, const std::string& copy_sql,
                                       const Batch& batch, Scratch* scratch) {
  SLUICE_RETURN_NOT_OK(conn->BeginCopyIn(copy_sql));
  std::string& buffer = scratch->buffer;
  pg::CopyBinaryEncoder& encoder = EncoderFor(scratch);
  buffer.clear();
  pg::CopyBinaryEncoder::AppendHeader(&buffer);
  const int64_t n = batch.num_rows();
  for (int64_t begin = 0; begin < n; begin += config_.batch_rows) {
    Status st = encoder.AppendRows(batch, begin, std::min(n, begin + config_.batch_rows), &buffer);
    if (!st.ok()) {
      conn->AbortCopyIn("sluice: " + st.message());
      return st;
    }
    if (buffer.size() >= kCopySendBytes) {
      SLUICE_RETURN_NOT_OK(conn->PutCopyData(buffer));
      buffer.clear();
    }
  }
  pg::CopyBinaryEncoder::AppendTrailer(&buffer);
  SLUICE_RETURN_NOT_OK(conn->PutCopyData(buffer));
  buffer.clear();
  SLUICE_ASSIGN_OR_RETURN(int64_t rows, conn->EndCopyIn());
  if (rows != n) {
    return Status::DataLoss("COPY stored {} rows of the {} sent", rows, n);
  }
  return rows;
}

Status PostgresSink::InsertRows(PgConnection* conn, const Batch& batch, Scratch* scratch) {
  std::string& buffer = scratch->buffer;
  pg::CopyBinaryEncoder& encoder = EncoderFor(scratch);
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
    buffer.clear();
    SLUICE_RETURN_NOT_OK(encoder.AppendRows(batch, begin, begin + rows, &buffer));
    values.clear();
    lengths.clear();
    const char* p = buffer.data();
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
  Status st = Flush();
  parallel_.reset();
  // A run that failed or was cancelled loaded only part of its rows: its indexes wait for the
  // rerun (which creates them) rather than costing time now.
  if (st.ok() && config_.index_after_load && !config_.indexes.empty() && pool_ != nullptr &&
      !ctx_->dry_run() && !ctx_->cancelled()) {
    st = WithRetry([&]() -> Status {
      SLUICE_ASSIGN_OR_RETURN(pg::PgLease lease, Lease());
      Status s = CreateIndexes(lease.get());
      if (!s.ok() && !lease->IsHealthy()) lease.Discard();
      return s;
    });
  }
  pool_.reset();
  return st;
}

}  // namespace sluice::pg_sink
