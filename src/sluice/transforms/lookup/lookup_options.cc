// The `lookup` transform's options: parsing and checking them (LookupConfig), and the node's
// registration with its documentation.

#include "sluice/transforms/lookup/lookup.h"
#include "sluice/transforms/lookup/lookup_internal.h"

namespace sluice::lookup {

Result<std::unique_ptr<Transform>> MakeLookup(const NodeOptions& o) {
  LookupConfig c;
  c.key = o.GetStringList("key");
  if (c.key.empty()) return o.ErrorAt("key", "name at least one column of the input");
  const OptionJson& from = o.GetJson("from");
  c.ref.dsn = from.value("postgres", "");
  c.ref.sqlite = from.value("sqlite", "");
  c.ref.redis = from.value("redis", "");
  if (!c.ref.dsn.empty() + !c.ref.sqlite.empty() + !c.ref.redis.empty() != 1) {
    return o.ErrorAt("from",
                     "needs exactly one of `postgres: <dsn>`, `sqlite: <file>` and `redis: <url>` "
                     "(where the reference is)");
  }
  c.ref.table = from.value("table", "");
  c.ref.query = from.value("query", "");
  if (!c.ref.redis.empty()) {
    if (!c.ref.table.empty() || !c.ref.query.empty() || from.contains("columns")) {
      return o.ErrorAt("from",
                       "a Redis reference takes `key_prefix` and `schema`, not `table`, "
                       "`query` or `columns`");
    }
    c.ref.key_prefix = from.value("key_prefix", "");
    if (!from.contains("schema") || !from["schema"].is_object() || from["schema"].empty()) {
      return o.ErrorAt("from",
                       "a Redis reference needs `schema`: the hash fields to add and "
                       "their types, e.g. {region: string, capacity_kw: float64}");
    }
    for (const auto& [name, type] : from["schema"].items()) {
      auto t = type.is_string() ? ParseTypeName(type.get<std::string>())
                                : Result<TypeId>(Status::ConfigError("expected a type name"));
      if (!t.ok()) return o.ErrorAt("from.schema", name + ": " + t.status().message());
      c.ref.hash_fields.push_back({name, *t, true});
    }
  } else {
    if (from.contains("key_prefix") || from.contains("schema")) {
      return o.ErrorAt("from",
                       "`key_prefix` and `schema` are for a Redis reference; a database "
                       "reference names a `table` or `query` (its columns' types are "
                       "the database's)");
    }
    if (c.ref.table.empty() == c.ref.query.empty()) {
      return o.ErrorAt("from", "needs exactly one of `table` and `query`");
    }
  }
  auto list = [&](const OptionJson& j, const char* name) {
    std::vector<std::string> out;
    if (j.contains(name) && j[name].is_array()) {
      for (const auto& v : j[name]) out.push_back(v.get<std::string>());
    } else if (j.contains(name) && j[name].is_string()) {
      out.push_back(j[name].get<std::string>());
    }
    return out;
  };
  c.ref.key = list(from, "key");
  if (c.ref.key.empty()) c.ref.key = c.key;
  if (c.ref.key.size() != c.key.size()) {
    return o.ErrorAt("from.key", fmt::format("has {} columns and `key` {}: they pair up in order",
                                             c.ref.key.size(), c.key.size()));
  }
  c.ref.columns = list(from, "columns");
  if (from.contains("timeout")) c.ref.timeout_us = from["timeout"].get<int64_t>();
  if (from.contains("retries")) {
    const auto retries = from["retries"].get<int64_t>();
    if (retries < 0 || retries > 100) return o.ErrorAt("from.retries", "must be 0..100");
    c.db_retry.max_attempts = static_cast<int>(retries) + 1;
  }
  if (o.Has("cache")) {
    const OptionJson& cache = o.GetJson("cache");
    c.cache_name = cache.value("name", "");
    if (cache.contains("ttl")) c.cache.ttl_us = cache["ttl"].get<int64_t>();
    if (cache.contains("negative_ttl"))
      c.cache.negative_ttl_us = cache["negative_ttl"].get<int64_t>();
    if (cache.contains("max_bytes")) c.cache.max_bytes = cache["max_bytes"].get<int64_t>();
  }
  // The instances of one node (parallelism) share its cache unless it is named.
  if (c.cache_name.empty()) c.cache_name = "node:" + o.id();
  if (c.cache.ttl_us <= 0) return o.ErrorAt("cache.ttl", "must be positive");
  if (c.cache.negative_ttl_us < 0) return o.ErrorAt("cache.negative_ttl", "must not be negative");
  if (c.cache.max_bytes < (1 << 16)) return o.ErrorAt("cache.max_bytes", "must be at least 64KiB");
  if (o.Has("redis")) {
    const OptionJson& r = o.GetJson("redis");
    RedisLevelOptions ro;
    ro.url = r.value("url", "");
    if (ro.url.empty()) return o.ErrorAt("redis", "needs `url: redis://host:port`");
    ro.prefix =
        r.value("prefix", "sluice:lookup:" + (c.ref.table.empty() ? o.id() : c.ref.table) + ":");
    if (r.contains("ttl")) ro.ttl_us = r["ttl"].get<int64_t>();
    ro.negative_ttl_us = c.cache.negative_ttl_us;
    if (r.contains("negative_ttl")) ro.negative_ttl_us = r["negative_ttl"].get<int64_t>();
    if (r.contains("timeout")) ro.timeout_us = r["timeout"].get<int64_t>();
    if (ro.ttl_us < 1000) return o.ErrorAt("redis.ttl", "must be at least 1ms");
    if (ro.timeout_us <= 0) return o.ErrorAt("redis.timeout", "must be positive");
    c.redis = ro;
  }
  const std::string miss = o.GetString("on_miss");
  c.on_miss = miss == "skip"          ? OnMiss::kSkip
              : miss == "fail"        ? OnMiss::kFail
              : miss == "dead_letter" ? OnMiss::kDeadLetter
                                      : OnMiss::kNull;
  c.pass_null_keys = o.Has("null_key") && o.GetString("null_key") == "pass";
  c.prefix = o.GetString("prefix");
  return NewLookupTransform(o, std::move(c));
}

void RegisterLookupNode(NodeRegistry* registry) {
  registry->AddTransform(
      "lookup",
      "Add columns to each row from a reference keyed by some of its columns (a PostgreSQL or "
      "SQLite table or query, or Redis hashes), through an in-process cache, optionally Redis, "
      "and the reference (one query per batch of misses).",
      {
          {"key", OptionType::kStringList, "", "The input's key columns.", true, {}},
          OptionSpec::Record(
              "from", "The reference: a PostgreSQL or SQLite table or query.",
              {
                  {"postgres",
                   OptionType::kString,
                   "",
                   "A PostgreSQL database (libpq DSN or URL), or",
                   false,
                   {}},
                  {"sqlite",
                   OptionType::kString,
                   "",
                   "a SQLite file (opened read-only; string or int64 keys), or",
                   false,
                   {}},
                  {"redis",
                   OptionType::kString,
                   "",
                   "a Redis server with one hash per key (redis://host:port; with key_prefix "
                   "and schema).",
                   false,
                   {}},
                  {"key_prefix",
                   OptionType::kString,
                   "",
                   "For redis: the hash of key k is key_prefix + k (e.g. `meter:`).",
                   false,
                   {}},
                  {"schema",
                   OptionType::kMap,
                   "",
                   "For redis: the hash fields to add and their types, e.g. {region: string, "
                   "capacity_kw: float64}.",
                   false,
                   {}},
                  {"table",
                   OptionType::kString,
                   "",
                   "A table or view (or use `query`).",
                   false,
                   {}},
                  {"query",
                   OptionType::kString,
                   "",
                   "A query whose rows are the reference.",
                   false,
                   {}},
                  {"key",
                   OptionType::kStringList,
                   "",
                   "The reference's key columns, paired in order with `key` (default: the same "
                   "names).",
                   false,
                   {}},
                  {"columns",
                   OptionType::kStringList,
                   "",
                   "The columns to add (default: every column but the key).",
                   false,
                   {}},
                  {"timeout", OptionType::kDuration, "30s", "Per query.", false, {}},
                  {"retries",
                   OptionType::kInt,
                   "5",
                   "Retries of a query that failed because the server is unreachable or the "
                   "connection was lost (backoff from 0.2 s to 5 s); then the run fails.",
                   false,
                   {}},
              },
              /*required=*/true),
          OptionSpec::Record(
              "cache", "Level 1, in process (S3-FIFO eviction).",
              {
                  {"name",
                   OptionType::kString,
                   "",
                   "Lookups naming the same cache share it (same ttl, negative_ttl and "
                   "max_bytes). Default: a cache of this node's own, shared by its instances.",
                   false,
                   {}},
                  {"ttl", OptionType::kDuration, "5m", "How long a row is kept.", false, {}},
                  {"negative_ttl",
                   OptionType::kDuration,
                   "30s",
                   "How long a key the reference does not have is remembered.",
                   false,
                   {}},
                  {"max_bytes",
                   OptionType::kByteSize,
                   "64MiB",
                   "Keys, rows and bookkeeping held at most.",
                   false,
                   {}},
              }),
          OptionSpec::Record(
              "redis", "Level 2 (optional): a Redis shared by every process.",
              {
                  {"url",
                   OptionType::kString,
                   "",
                   "redis://[user:password@]host:port[/db]",
                   true,
                   {}},
                  {"prefix",
                   OptionType::kString,
                   "sluice:lookup:<table>:",
                   "Before every key; a fingerprint of the reference (database, table or query, "
                   "key, "
                   "columns) follows it.",
                   false,
                   {}},
                  {"ttl", OptionType::kDuration, "1h", "How long a row is kept.", false, {}},
                  {"negative_ttl",
                   OptionType::kDuration,
                   "",
                   "How long an absent key is kept (default: cache.negative_ttl).",
                   false,
                   {}},
                  {"timeout",
                   OptionType::kDuration,
                   "200ms",
                   "Per command; slower is a failure. Three failures in a row open a breaker: "
                   "lookups go to the database until a probe a second later finds Redis back.",
                   false,
                   {}},
              }),
          {"on_miss",
           OptionType::kEnum,
           "null",
           "A row whose key the reference does not have (or a null key): null (the added "
           "columns are null), skip (the row is dropped, counted), fail (the run stops, naming "
           "the row and its key), or dead_letter (the row goes to the `<id>.dead_letter` "
           "output with the key it lacks). Counted in not_found.",
           false,
           {"null", "skip", "fail", "dead_letter"}},
          {"null_key",
           OptionType::kEnum,
           "miss",
           "A row with a null key column: a miss (on_miss decides), or pass — it goes on with "
           "the added columns null, counted in null_keys (an optional reference, such as a "
           "relationship without a target).",
           false,
           {"miss", "pass"}},
          {"prefix", OptionType::kString, "", "Before the added columns' names.", false, {}},
      },
      &MakeLookup, /*stateless=*/true);
}

}  // namespace sluice::lookup
