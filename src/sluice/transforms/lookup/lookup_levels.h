#pragma once

// Levels 2 and 3 of the lookup transform: Redis (a shared cache of encoded rows, with a time to
// live, behind a circuit breaker) and the reference itself (a PostgreSQL table or query, read
// with one query per batch of missing keys).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/clock.h"

namespace sluice::pg {
class PgConnection;
}
namespace sluice::redis {
class RedisClient;
}

namespace sluice::lookup {

/// A row found for a key: both encoded as EncodeKey does (the key columns; the added columns).
struct Found {
  std::string key;
  std::string value;
};

/// Where the reference rows are and which of their columns to use.
struct ReferenceOptions {
  std::string dsn;                   ///< PostgreSQL, or
  std::string sqlite;                ///< a SQLite file, or
  std::string redis;                 ///< a Redis server holding one hash per key
  std::string key_prefix;            ///< redis: before the key's value in the hash's name
  std::vector<Field> hash_fields;    ///< redis: the fields to add, with their types
  std::string table;                 ///< a table or view name (schema-qualified allowed), or
  std::string query;                 ///< a query whose rows are the reference
  std::vector<std::string> key;      ///< reference key columns, matching the input's in order
  std::vector<std::string> columns;  ///< columns to add; empty: every column but the key
  int64_t timeout_us = 30'000'000;   ///< per query (statement_timeout)
};

/// The database level: the reference's rows by key, one query per batch of keys.
class Reference {
 public:
  virtual ~Reference() = default;
  /// The added columns (names and types, all nullable).
  virtual const SchemaPtr& value_schema() const = 0;
  /// Fetch the rows of the keys in `keys` (a batch of the key columns, distinct, none null);
  /// append one Found per reference row found (a key absent from the reference gets none).
  /// A reference with two rows for one key is an error naming the key columns.
  virtual Status Fetch(const Batch& keys, std::vector<Found>* found) = 0;
};

/// Open the reference `options` names (PostgreSQL or SQLite). `key_types` are the input's key
/// column types: the reference's key columns are read as those types, so that equal values
/// encode equally.
Result<std::unique_ptr<Reference>> OpenReference(const ReferenceOptions& options,
                                                 const std::vector<TypeId>& key_types);

/// SQLite (lookup_sqlite.cc): `WHERE key IN (SELECT value FROM json_each(?1))`, the keys a
/// JSON array; string and int64 keys.
Result<std::unique_ptr<Reference>> OpenSqliteReference(const ReferenceOptions& options,
                                                       const std::vector<TypeId>& key_types);

/// Redis hashes (lookup_redis_hash.cc): the row of key k is the hash `key_prefix + k`, its
/// fields `hash_fields` read by one pipelined HMGET per key (parsed from their text as their
/// types); a key whose hash has none of them is absent. One key column, string or int64.
Result<std::unique_ptr<Reference>> OpenRedisHashReference(const ReferenceOptions& options,
                                                          const std::vector<TypeId>& key_types);

/// Append a Found for each row of `rows` (the key columns first, `key_count` of them, then the
/// added ones); an error when two rows share a key.
Status EncodeFound(const Batch& rows, size_t key_count, const std::vector<std::string>& key_names,
                   std::vector<Found>* found);

/// PostgreSQL: `WHERE (key) IN (SELECT * FROM unnest($1::type[], ...))`, read in binary.
class PgReference final : public Reference {
 public:
  ~PgReference() override;
  /// Connect and describe the reference. `key_types` are the input's key column types: the
  /// reference's key columns are read as those types, so that equal values encode equally.
  static Result<std::unique_ptr<PgReference>> Open(const ReferenceOptions& options,
                                                   const std::vector<TypeId>& key_types);
  const SchemaPtr& value_schema() const override { return value_schema_; }
  Status Fetch(const Batch& keys, std::vector<Found>* found) override;
  int64_t queries() const { return queries_; }

 private:
  PgReference() = default;
  Status Connect();

  ReferenceOptions options_;
  std::unique_ptr<pg::PgConnection> conn_;
  std::string sql_;
  std::vector<std::string> array_types_;  // per key column: "text[]", "bigint[]", ...
  std::vector<uint8_t> codecs_;           // pg::PgCodec per selected column
  SchemaPtr row_schema_;                  // key columns, then the added ones
  SchemaPtr value_schema_;
  std::string scratch_;
  int64_t queries_ = 0;
};

struct RedisLevelOptions {
  std::string url;
  std::string prefix;  ///< before every key (a fingerprint of the columns is added)
  int64_t ttl_us = 3'600'000'000;
  int64_t negative_ttl_us = 30'000'000;
  int64_t timeout_us = 200'000;  ///< per command; slower counts as a failure
};

/// Level 2: `MGET prefix+key ...` for a batch, `SET prefix+key value PX ttl` (pipelined) to
/// fill. The key part is the key's text for one string or int64 column (`meter:m-000001`),
/// hex of its encoding otherwise. Values are "V" + the encoded row, or "N" for a key the reference
/// does not have. Failures open a breaker: the lookup then goes to the database directly (and
/// counts it) until a probe finds Redis back.
class RedisLevel {
 public:
  ~RedisLevel();
  /// `key_types`: the key columns' types, for readable Redis key names.
  static Result<std::unique_ptr<RedisLevel>> Open(const RedisLevelOptions& options,
                                                  std::string_view fingerprint,
                                                  std::vector<TypeId> key_types, Clock* clock);
  /// For each of `keys`: a row (value), absent (empty optional in `absent`), or unknown.
  /// Returns false (and leaves everything unknown) when Redis is unavailable or refused by
  /// the breaker.
  bool Get(const std::vector<std::string_view>& keys, std::vector<std::optional<std::string>>* rows,
           std::vector<uint8_t>* absent);
  /// Store rows and absences; failures only count (the rows are in level 1 anyway).
  void Put(const std::vector<Found>& found, const std::vector<std::string_view>& absent);
  int64_t failures() const { return failures_; }
  /// The last failure's message ("" before any).
  const std::string& last_error() const { return last_error_; }
  int64_t trips() const { return breaker_.trips(); }
  std::string_view state() const;

 private:
  RedisLevel(RedisLevelOptions options, Clock* clock);
  /// One connection attempt with the level's URL and timeouts.
  Result<std::unique_ptr<redis::RedisClient>> Connect() const;
  /// Connect when there is no connection; false (a failure counted) when that fails.
  bool Connected();
  /// The Redis key of an encoded lookup key: prefix, then the key as text.
  std::string RedisKey(std::string_view encoded) const;
  void Failed(const Status& why);

  RedisLevelOptions options_;
  std::string prefix_;
  Clock* clock_;
  CircuitBreaker breaker_;
  std::unique_ptr<redis::RedisClient> client_;
  std::vector<std::string> scratch_keys_;
  int64_t failures_ = 0;
  std::string last_error_;
  std::vector<TypeId> key_types_;
};

}  // namespace sluice::lookup
