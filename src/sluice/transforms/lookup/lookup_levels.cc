#include "sluice/transforms/lookup/lookup_levels.h"

#include <cmath>
#include <cstring>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/connectors/redis/redis_client.h"
#include "sluice/core/time.h"
#include "sluice/transforms/group_key.h"

namespace sluice::lookup {

namespace {

/// Append `v` as an element of a PostgreSQL array literal: double-quoted, with backslashes and
/// quotes escaped (a string) or as its text form.
void AppendArrayElement(const Column& c, int64_t r, std::string* out) {
  char buf[64];
  switch (c.type()) {
    case TypeId::kString: {
      out->push_back('"');
      for (const char ch : c.GetView(r)) {
        if (ch == '"' || ch == '\\') out->push_back('\\');
        out->push_back(ch);
      }
      out->push_back('"');
      return;
    }
    case TypeId::kInt64:
      out->append(fmt::format_int(c.GetInt64(r)).str());
      return;
    case TypeId::kFloat64: {
      const double d = c.GetFloat64(r);
      if (std::isnan(d)) {
        out->append("NaN");
      } else if (std::isinf(d)) {
        out->append(d > 0 ? "Infinity" : "-Infinity");
      } else {
        out->append(fmt::format("{}", d));
      }
      return;
    }
    case TypeId::kBool:
      out->push_back(c.GetBool(r) ? 't' : 'f');
      return;
    case TypeId::kTimestamp:
      out->push_back('"');
      out->append(buf, static_cast<size_t>(FormatTimestamp(c.GetInt64(r), buf)));
      out->push_back('"');
      return;
    default:
      out->append("NULL");  // refused at Open
  }
}

}  // namespace

PgReference::~PgReference() = default;

Status PgReference::Connect() {
  auto conn = pg::PgConnection::Connect(options_.dsn);
  if (!conn.ok()) return conn.status();
  conn_ = std::move(*conn);
  return conn_->SetStatementTimeout(options_.timeout_us / 1000);
}

Result<std::unique_ptr<PgReference>> PgReference::Open(const ReferenceOptions& options,
                                                       const std::vector<TypeId>& key_types) {
  std::unique_ptr<PgReference> ref(new PgReference());
  ref->options_ = options;
  SLUICE_RETURN_NOT_OK(ref->Connect());
  const std::string relation = !options.query.empty() ? "(" + options.query + ") AS reference"
                                                      : pg_internal::QuoteName(options.table);
  auto plan = pg::PlanRelation(ref->conn_.get(), relation);
  if (!plan.ok()) {
    // No such table or column, a syntax error in the query: the configuration's fault.
    if (pg::SqlState(plan.status()).starts_with("42")) {
      return Status::ConfigError("{}", plan.status().message());
    }
    return plan.status();
  }
  std::vector<std::string> keep = options.key;
  std::vector<std::string> values = options.columns;
  if (values.empty()) {
    for (const auto& c : plan->columns) {
      if (std::find(options.key.begin(), options.key.end(), c.name) == options.key.end()) {
        values.push_back(c.name);
      }
    }
  }
  keep.insert(keep.end(), values.begin(), values.end());
  if (Status st = plan->Keep(keep); !st.ok()) {
    std::string names;
    for (const auto& c : plan->columns) names += (names.empty() ? "" : ", ") + c.name;
    return Status::ConfigError("{}; the reference has: {}", st.message(), names);
  }
  for (size_t k = 0; k < options.key.size(); ++k) {
    const TypeId t = key_types[k];
    if (t != TypeId::kString && t != TypeId::kInt64 && t != TypeId::kFloat64 &&
        t != TypeId::kBool && t != TypeId::kTimestamp) {
      return Status::ConfigError(
          "key column {} is {}; a lookup key is a string, int64, float64, "
          "bool or timestamp",
          k + 1, TypeName(t));
    }
    const int natural = plan->Find(options.key[k]);
    if (t == TypeId::kString && natural >= 0 &&
        plan->columns[static_cast<size_t>(natural)].type != TypeId::kString) {
      return Status::ConfigError(
          "reference key '{}' is {} in PostgreSQL, but the input's key column {} is a string: "
          "cast one of them (a `map` before the lookup, or a `query` with ::text)",
          options.key[k], plan->columns[static_cast<size_t>(natural)].pg_type, k + 1);
    }
    if (Status st = plan->Retype(options.key[k], t); !st.ok()) {
      return Status::ConfigError(
          "reference key '{}' cannot be compared with the input's {} "
          "key: {}",
          options.key[k], TypeName(t), st.message());
    }
    ref->array_types_.push_back(plan->columns[k].pg_type + "[]");
  }
  std::string on, unnest;
  for (size_t k = 0; k < options.key.size(); ++k) {
    on += (k ? ", " : "") + pg_internal::QuoteIdentifier(options.key[k]);
    unnest += fmt::format("{}${}::{}", k ? ", " : "", k + 1, ref->array_types_[k]);
  }
  ref->sql_ = fmt::format("SELECT {} FROM {} WHERE ({}) IN (SELECT * FROM unnest({}))",
                          plan->select_list, relation, on, unnest);
  for (const auto codec : plan->codecs) ref->codecs_.push_back(static_cast<uint8_t>(codec));
  ref->row_schema_ = plan->schema;
  std::vector<Field> fields(
      plan->schema->fields().begin() + static_cast<std::ptrdiff_t>(options.key.size()),
      plan->schema->fields().end());
  ref->value_schema_ = MakeSchema(std::move(fields));
  return ref;
}

Status PgReference::Fetch(const Batch& keys, std::vector<Found>* found) {
  pg::PgParams params;
  for (int k = 0; k < keys.num_columns(); ++k) {
    std::string array = "{";
    for (int64_t r = 0; r < keys.num_rows(); ++r) {
      if (r > 0) array.push_back(',');
      AppendArrayElement(keys.column(k), r, &array);
    }
    array.push_back('}');
    params.emplace_back(std::move(array));
  }
  if (conn_ == nullptr) SLUICE_RETURN_NOT_OK(Connect());
  auto result = conn_->ExecParams(sql_, params, pg::PgFormat::kBinary);
  ++queries_;
  if (!result.ok()) {
    if (result.status().IsRetryable()) conn_.reset();  // connect again on the next call
    return result.status();
  }
  std::vector<ColumnBuilder> builders;
  for (const auto& f : row_schema_->fields()) builders.emplace_back(f.type, result->num_rows());
  std::vector<pg::PgCodec> codecs;
  for (const auto c : codecs_) codecs.push_back(static_cast<pg::PgCodec>(c));
  SLUICE_RETURN_NOT_OK(pg::AppendResultRows(*result, codecs, &builders, &scratch_));
  std::vector<Column> cols;
  for (auto& b : builders) cols.push_back(b.Finish());
  const int64_t n = result->num_rows();
  BatchPtr rows = Batch::MakeUnchecked(row_schema_, std::move(cols), n, {});
  return EncodeFound(*rows, options_.key.size(), options_.key, found);
}

Status EncodeFound(const Batch& rows, size_t key_count, const std::vector<std::string>& key_names,
                   std::vector<Found>* found) {
  std::vector<int> key_cols, value_cols;
  for (int c = 0; c < rows.num_columns(); ++c) {
    (c < static_cast<int>(key_count) ? key_cols : value_cols).push_back(c);
  }
  const size_t first = found->size();
  for (int64_t r = 0; r < rows.num_rows(); ++r) {
    Found f;
    transforms_internal::EncodeKey(rows, key_cols, r, &f.key);
    transforms_internal::EncodeKey(rows, value_cols, r, &f.value);
    found->push_back(std::move(f));
  }
  // One row per key: a reference with duplicates cannot say which row a reading gets.
  std::vector<std::string_view> seen;
  for (size_t i = first; i < found->size(); ++i) seen.push_back((*found)[i].key);
  std::sort(seen.begin(), seen.end());
  if (auto dup = std::adjacent_find(seen.begin(), seen.end()); dup != seen.end()) {
    return Status::Invalid(
        "the reference has more than one row for a key (key columns {}); make the key unique, "
        "or look up by a query that picks one row",
        fmt::join(key_names, ", "));
  }
  return Status::OK();
}

Result<std::unique_ptr<Reference>> OpenReference(const ReferenceOptions& options,
                                                 const std::vector<TypeId>& key_types) {
  if (!options.sqlite.empty()) return OpenSqliteReference(options, key_types);
  if (!options.redis.empty()) return OpenRedisHashReference(options, key_types);
  auto pg = PgReference::Open(options, key_types);
  if (!pg.ok()) return pg.status();
  return std::unique_ptr<Reference>(std::move(*pg));
}

// ---- RedisLevel ----

RedisLevel::RedisLevel(RedisLevelOptions options, Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      breaker_({.failure_threshold = 3, .recovery_timeout_us = 1'000'000}, clock) {}

RedisLevel::~RedisLevel() = default;

Result<std::unique_ptr<RedisLevel>> RedisLevel::Open(const RedisLevelOptions& options,
                                                     std::string_view fingerprint,
                                                     std::vector<TypeId> key_types, Clock* clock) {
  std::unique_ptr<RedisLevel> level(new RedisLevel(options, clock));
  level->key_types_ = std::move(key_types);
  level->prefix_ = options.prefix + std::string(fingerprint) + ":";
  // A URL that does not parse is a config error now; an unreachable server is only a level
  // that misses until it is back.
  auto client = level->Connect();
  if (client.ok()) {
    level->client_ = std::move(*client);
  } else if (client.status().code() == StatusCode::kConfigError ||
             client.status().code() == StatusCode::kPermissionDenied) {
    return client.status();
  } else {
    level->Failed(client.status());
  }
  return level;
}

std::string RedisLevel::RedisKey(std::string_view encoded) const {
  // Readable names for the usual one-column keys (`redis-cli --scan`, DEL of one meter's
  // entry): the string itself, or the integer in decimal; other keys as hex of their encoding.
  std::string out = prefix_;
  if (key_types_.size() == 1 && !encoded.empty() && encoded[0] == '\1') {
    if (key_types_[0] == TypeId::kString && encoded.size() >= 5) {
      out.append(encoded.substr(5));
      return out;
    }
    if (key_types_[0] == TypeId::kInt64 && encoded.size() == 9) {
      int64_t v;
      std::memcpy(&v, encoded.data() + 1, sizeof(v));
      out.append(fmt::format_int(v).str());
      return out;
    }
  }
  static const char* kHex = "0123456789abcdef";
  out.append("x");
  for (const char ch : encoded) {
    out.push_back(kHex[static_cast<uint8_t>(ch) >> 4]);
    out.push_back(kHex[static_cast<uint8_t>(ch) & 15]);
  }
  return out;
}

std::string_view RedisLevel::state() const { return CircuitStateName(breaker_.state()); }

void RedisLevel::Failed(const Status& why) {
  ++failures_;
  last_error_ = why.message();
  breaker_.RecordFailure();
}

Result<std::unique_ptr<redis::RedisClient>> RedisLevel::Connect() const {
  redis::RedisOptions ro;
  ro.url = options_.url;
  ro.connect_timeout_us = options_.timeout_us;
  ro.command_timeout_us = options_.timeout_us;
  return redis::RedisClient::Make(ro, clock_);
}

bool RedisLevel::Connected() {
  if (client_ != nullptr) return true;
  auto client = Connect();
  if (!client.ok()) {
    Failed(client.status());
    return false;
  }
  client_ = std::move(*client);
  return true;
}

bool RedisLevel::Get(const std::vector<std::string_view>& keys,
                     std::vector<std::optional<std::string>>* rows, std::vector<uint8_t>* absent) {
  rows->assign(keys.size(), std::nullopt);
  absent->assign(keys.size(), 0);
  if (keys.empty()) return true;
  if (!breaker_.Allow()) return false;
  if (!Connected()) return false;
  scratch_keys_.clear();
  std::vector<std::string_view> argv{"MGET"};
  for (const auto k : keys) scratch_keys_.push_back(RedisKey(k));
  for (const auto& k : scratch_keys_) argv.push_back(k);
  auto reply = client_->Command(argv);
  if (!reply.ok()) {
    if (reply.status().IsRetryable()) client_.reset();
    Failed(reply.status());
    return false;
  }
  breaker_.RecordSuccess();
  for (size_t i = 0; i < keys.size() && i < reply->size(); ++i) {
    const redis::RedisValue v = (*reply)[i];
    if (v.is_nil() || v.str().empty()) continue;
    if (v.str()[0] == 'N') {
      (*absent)[i] = 1;
    } else if (v.str()[0] == 'V') {
      (*rows)[i] = std::string(v.str().substr(1));
    }
  }
  return true;
}

void RedisLevel::Put(const std::vector<Found>& found, const std::vector<std::string_view>& absent) {
  if (found.empty() && absent.empty()) return;
  if (!breaker_.Allow()) return;
  if (!Connected()) return;
  const std::string ttl = std::to_string(std::max<int64_t>(1, options_.ttl_us / 1000));
  const std::string negative_ttl =
      std::to_string(std::max<int64_t>(1, options_.negative_ttl_us / 1000));
  std::string key, value;
  size_t n = 0;
  Status st;
  for (const auto& f : found) {
    key = RedisKey(f.key);
    value = "V" + f.value;
    st = client_->Append({"SET", key, value, "PX", ttl});
    if (!st.ok()) break;
    ++n;
  }
  for (size_t i = 0; st.ok() && i < absent.size(); ++i) {
    key = RedisKey(absent[i]);
    st = client_->Append({"SET", key, "N", "PX", negative_ttl});
    if (st.ok()) ++n;
  }
  if (st.ok()) {
    auto replies = client_->Replies(n);
    if (replies.ok()) {
      breaker_.RecordSuccess();
      return;
    }
    st = replies.status();
  }
  client_.reset();  // appended commands may be left unanswered: start afresh
  Failed(st);
}

}  // namespace sluice::lookup
