// The `postgres` sink: creating its table, the table's partitions and its indexes.

#include <algorithm>
#include <charconv>

#include "sluice/connectors/postgres/postgres_sink_internal.h"
#include "sluice/core/log.h"
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
  for (const std::string& index : config_.indexes) {
    if (index == kAutoIndexes) continue;  // the tag columns the table has, whichever they are
    for (const std::string_view col : SplitIndexColumns(index)) {
      if (schema.FieldIndex(col) < 0) {
        return Status::ConfigError("{}: option 'indexes': '{}' is not a column of the input",
                                   Context(), col);
      }
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
  // The start of the period after the one starting at `start`.
  auto next_period = [&](int64_t start) {
    if (!monthly) return start + kMicrosPerDay;
    int64_t y;
    unsigned m;
    unsigned d;
    CivilFromDays(start / kMicrosPerDay, &y, &m, &d);
    return DaysFromCivil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * kMicrosPerDay;
  };
  std::set<int64_t> needed;
  bool nulls = false;
  int64_t last = INT64_MIN, newest = INT64_MIN;
  for (int64_t r = 0; r < col.length(); ++r) {
    if (col.IsNull(r)) {
      nulls = true;
      continue;
    }
    newest = std::max(newest, col.GetInt64(r));
    const int64_t start = period_start(col.GetInt64(r));
    if (start == last) continue;
    last = start;
    if (partitions_made_.count(start) == 0) needed.insert(start);
  }
  if (newest != INT64_MIN && !needed.empty()) {
    int64_t ahead = period_start(newest);
    for (int i = 0; i < config_.partitions_ahead; ++i) {
      ahead = next_period(ahead);
      if (partitions_made_.count(ahead) == 0) needed.insert(ahead);
    }
  }
  // Retention is checked when the batch starts a period this run has not written yet (and on
  // the first batch): partitions expire a period at a time.
  // The newest row counts no later than this host's clock: one row from a host whose clock is
  // years ahead must not expire every partition of the others.
  int64_t cutoff = INT64_MIN;  // partitions ending by this hold only expired rows
  if (config_.retention_us > 0 && newest != INT64_MIN && !needed.empty() &&
      __builtin_sub_overflow(std::min(newest, NowMicros()), config_.retention_us, &cutoff)) {
    cutoff = INT64_MIN;
  }
  const bool expire = cutoff > expired_through_;
  // Batches being written may hold rows of a partition about to go: written first, then
  // dropped with it, as one at a time would (not failed for want of their partition).
  if (expire && parallel_ != nullptr) SLUICE_RETURN_NOT_OK(parallel_->Drain());
  if (needed.empty() && (!nulls || default_partition_made_) && !expire) return Status::OK();
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
  if (expire) {
    Status st = DropExpiredPartitions(lease.get(), cutoff);
    if (!st.ok()) return fail(st);
    expired_through_ = cutoff;
  }
  return Status::OK();
}

Status PostgresSink::DropExpiredPartitions(PgConnection* conn, int64_t cutoff) {
  SLUICE_ASSIGN_OR_RETURN(pg::PgResult children,
                          conn->ExecParams("SELECT c.relname, c.oid::regclass::text FROM "
                                           "pg_catalog.pg_inherits i "
                                           "JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid "
                                           "WHERE i.inhparent = $1::regclass ORDER BY c.relname",
                                           {QuoteIdentifier(config_.table)}));
  const bool monthly = config_.interval == PartitionInterval::kMonth;
  int64_t dropped = 0;
  for (int r = 0; r < children.num_rows(); ++r) {
    const std::string name(children.Value(r, 0));
    // Only names this sink gives: "_p" and 8 (day) or 6 (month) digits, after the table's.
    const size_t at = name.rfind("_p");
    if (at == std::string::npos) continue;
    const std::string digits = name.substr(at + 2);
    if (digits.size() != (monthly ? 6u : 8u) ||
        !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      continue;
    }
    const int64_t y = std::stoll(digits.substr(0, 4));
    const auto m = static_cast<unsigned>(std::stoul(digits.substr(4, 2)));
    const auto d = monthly ? 1u : static_cast<unsigned>(std::stoul(digits.substr(6, 2)));
    if (m < 1 || m > 12 || d < 1 || d > 31) continue;
    const std::string sibling = SiblingName(config_.table, name.substr(at));
    if (pg_internal::BaseName(sibling) != QuoteIdentifier(name)) continue;  // another table's
    const int64_t start = DaysFromCivil(y, m, d) * kMicrosPerDay;
    {
      int64_t cy;
      unsigned cm, cd;
      CivilFromDays(start / kMicrosPerDay, &cy, &cm, &cd);
      if (cy != y || cm != m || cd != d) continue;  // _p20260231 is no date this sink names
    }
    const int64_t end =
        monthly ? DaysFromCivil(m == 12 ? y + 1 : y, m == 12 ? 1 : m + 1, 1) * kMicrosPerDay
                : start + kMicrosPerDay;
    if (end > cutoff) continue;
    // By the child's own name (schema included), never by a name resolved elsewhere.
    auto gone = conn->Exec("DROP TABLE IF EXISTS " + std::string(children.Value(r, 1)));
    if (!gone.ok()) return gone.status().WithContext("{}: dropping partition {}", Context(), name);
    partitions_made_.erase(start);
    ++dropped;
  }
  if (dropped > 0) {
    Log(LogLevel::kInfo, "{}: dropped {} partition{} of table '{}' ending before {} (retention)",
        Context(), dropped, dropped == 1 ? "" : "s", config_.table, FormatTimestamp(cutoff));
    if (ctx_->stats() != nullptr) ctx_->stats()->AddCounter("partitions_dropped", dropped);
  }
  return Status::OK();
}

Status PostgresSink::CreateIndexes(PgConnection* conn) {
  const auto start = std::chrono::steady_clock::now();
  auto fail = [&](const Status& st, std::string_view what) {
    return st.WithContext("{}: indexing '{}' of table '{}'", Context(), what, config_.table);
  };
  // `auto` picks the tag columns the table has: read its columns once.
  std::set<std::string, std::less<>> columns;
  if (HasAutoIndexes(config_.indexes)) {
    auto names = conn->ExecParams(
        "SELECT attname FROM pg_catalog.pg_attribute "
        "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped",
        {QuoteIdentifier(config_.table)});
    if (!names.ok()) return fail(names.status(), kAutoIndexes);
    for (int r = 0; r < names->num_rows(); ++r) columns.emplace(names->Value(r, 0));
    if (scale_tags::AutoIndexes([&](std::string_view c) { return columns.count(c) > 0; }).empty()) {
      Log(LogLevel::kWarn,
          "{}: indexes: auto found none of replicate's tag columns ({}, {}, {}, {}) in table "
          "'{}': nothing to index for it",
          Context(), scale_tags::kSynthetic, scale_tags::kOperation, scale_tags::kTemplate,
          scale_tags::kTenant, config_.table);
    }
  }
  const auto indexes =
      ExpandIndexEntries(config_.indexes, [&](std::string_view c) { return columns.count(c) > 0; });
  for (const std::vector<std::string>& cols : indexes) {
    const std::string index = fmt::format("{}", fmt::join(cols, ", "));
    bool spatial = false;
    for (const std::string& col : cols) {
      // A spatial column gets a GiST index (a B-tree on geometry only sorts by bounding box).
      auto type = conn->ExecParams(
          "SELECT t.typname FROM pg_catalog.pg_attribute a "
          "JOIN pg_catalog.pg_type t ON t.oid = a.atttypid "
          "WHERE a.attrelid = $1::regclass AND a.attname = $2 AND NOT a.attisdropped",
          {QuoteIdentifier(config_.table), col});
      if (!type.ok()) return fail(type.status(), col);
      if (type->num_rows() == 0) {
        return Status::ConfigError("{}: option 'indexes': table '{}' has no column '{}'", Context(),
                                   config_.table, col);
      }
      const std::string_view typname = type->Value(0, 0);
      spatial |= typname == "geometry" || typname == "geography";
    }
    if (spatial && cols.size() > 1) {
      return Status::ConfigError(
          "{}: option 'indexes': '{}' mixes a geometry column with others; index it alone",
          Context(), index);
    }
    const std::string name = (std::string(pg_internal::BaseName(config_.table)) + "_" +
                              fmt::format("{}", fmt::join(cols, "_")) + "_idx")
                                 .substr(0, kMaxIdentifierBytes);
    // Counted only when made now: a rerun finds them and makes none. The index lives in the
    // table's schema.
    const std::string schema =
        config_.table.substr(0, config_.table.size() - pg_internal::BaseName(config_.table).size());
    auto exists = conn->ExecParams(
        "SELECT to_regclass($1) IS NOT NULL",
        {(schema.empty() ? "" : QuoteIdentifier(schema.substr(0, schema.size() - 1)) + ".") +
         QuoteIdentifier(name)});
    if (!exists.ok()) return fail(exists.status(), index);
    if (exists->Value(0, 0) == "t") continue;
    auto indexed = conn->Exec("CREATE INDEX IF NOT EXISTS " + QuoteIdentifier(name) + " ON " +
                              QuoteIdentifier(config_.table) + (spatial ? " USING gist" : "") +
                              " (" + QuotedList(cols) + ")");
    if (!indexed.ok()) return fail(indexed.status(), index);
    if (ctx_->stats() != nullptr) ctx_->stats()->AddCounter("indexes_created", 1);
  }
  AddPhase("index", start);
  return Status::OK();
}

}  // namespace sluice::pg_sink
