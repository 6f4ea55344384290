// The `postgres` sink: creating its table, the table's partitions and its indexes.

#include <algorithm>
#include <charconv>

#include "sluice/connectors/postgres/postgres_sink_internal.h"
#include "sluice/core/time.h"

namespace sluice::pg_sink {

using pg_internal::QuoteIdentifier;

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
  }
  if (!config_.index_after_load) SLUICE_RETURN_NOT_OK(CreateIndexes(conn));
  return Status::OK();
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

Status PostgresSink::CreateIndexes(PgConnection* conn) {
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& col : config_.indexes) {
    // A spatial column gets a GiST index (a B-tree on geometry only sorts by bounding box).
    auto type = conn->ExecParams(
        "SELECT t.typname FROM pg_catalog.pg_attribute a "
        "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
        "WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped",
        {QuoteIdentifier(config_.table), col});
    if (!type.ok()) {
      return type.status().WithContext("{}: indexing '{}' of table '{}'", Context(), col,
                                       config_.table);
    }
    if (type->num_rows() == 0) {
      return Status::ConfigError("{}: option 'indexes': table '{}' has no column '{}'", Context(),
                                 config_.table, col);
    }
    const std::string_view typname = type->Value(0, 0);
    const bool spatial = typname == "geometry" || typname == "geography";
    const std::string name = std::string(pg_internal::BaseName(config_.table)) + "_" + col + "_idx";
    auto indexed = conn->Exec("CREATE INDEX IF NOT EXISTS " +
                              QuoteIdentifier(name.substr(0, kMaxIdentifierBytes)) + " ON " +
                              QuoteIdentifier(config_.table) + (spatial ? " USING gist" : "") +
                              " (" + pg_internal::QuoteName(col) + ")");
    if (!indexed.ok()) {
      return indexed.status().WithContext("{}: indexing '{}' of table '{}'", Context(), col,
                                          config_.table);
    }
    if (ctx_->stats() != nullptr) ctx_->stats()->AddCounter("indexes_created", 1);
  }
  AddPhase("index", start);
  return Status::OK();
}

}  // namespace sluice::pg_sink
