// The `lookup` transform: adds columns to each row from a reference keyed by some of its
// columns, through three levels — an in-process cache (lookup_cache.h), Redis, and the
// database, asked once per batch for every key the levels above did not have.

#include "sluice/transforms/lookup/lookup_internal.h"

#include <chrono>
#include <unordered_map>

#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/io/format.h"
#include "sluice/resilience/retry_policy.h"
#include "sluice/transforms/group_key.h"
#include "sluice/transforms/lookup/lookup_cache.h"
#include "sluice/transforms/lookup/lookup_levels.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::lookup {

namespace {

using transforms_internal::DecodeKey;
using transforms_internal::EncodeKey;
using transforms_internal::KeyEncodingValid;
using transforms_internal::NoColumn;

int64_t NanosSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
      .count();
}

class LookupTransform final : public Transform {
 public:
  LookupTransform(NodeOptions options, LookupConfig config)
      : options_(std::move(options)), c_(std::move(config)) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_RETURN_NOT_OK(BindTo(batch->schema()));
    const int64_t n = batch->num_rows();
    // Each row's key, and the distinct keys of the batch (looked up once each).
    keys_.clear();
    key_end_.assign(static_cast<size_t>(n), 0);
    slot_of_row_.assign(static_cast<size_t>(n), -1);
    for (int64_t r = 0; r < n; ++r) {
      bool null_key = false;
      for (const int k : key_cols_) null_key |= !batch->column(k).IsValid(r);
      if (!null_key) EncodeKey(*batch, key_cols_, r, &keys_);
      key_end_[static_cast<size_t>(r)] = keys_.size();
      if (null_key) key_end_[static_cast<size_t>(r)] = SIZE_MAX;  // never matches
    }
    // Group the rows by key in an open-addressing table (hash, distinct slot), sized for the
    // batch and cleared slot by slot: the hashes go on to the cache.
    distinct_.clear();
    distinct_rows_.clear();
    hashes_.clear();
    size_t cap = 1024;
    while (cap < static_cast<size_t>(n) * 2) cap *= 2;
    if (table_.size() < cap) table_.assign(cap, -1);
    const size_t mask = cap - 1;
    size_t start = 0;
    for (int64_t r = 0; r < n; ++r) {
      const size_t end = key_end_[static_cast<size_t>(r)];
      if (end == SIZE_MAX) continue;
      const std::string_view key(keys_.data() + start, end - start);
      start = end;
      const uint64_t h = transforms_internal::KeyHash(key);
      size_t i = h & mask;
      while (table_[i] >= 0 && (hashes_[static_cast<size_t>(table_[i])] != h ||
                                distinct_[static_cast<size_t>(table_[i])] != key)) {
        i = (i + 1) & mask;
      }
      if (table_[i] < 0) {
        table_[i] = static_cast<int32_t>(distinct_.size());
        distinct_.push_back(key);
        distinct_rows_.push_back(static_cast<int32_t>(r));
        hashes_.push_back(h);
        used_.push_back(i);
      }
      slot_of_row_[static_cast<size_t>(r)] = table_[i];
    }
    for (const size_t i : used_) table_[i] = -1;
    used_.clear();
    SLUICE_RETURN_NOT_OK(Resolve(*batch));
    return Emit(batch, out);
  }

  Status Close() override {
    if (ctx_ != nullptr && held_bytes_ != 0) ctx_->HoldMemory(-held_bytes_);
    held_bytes_ = 0;
    cache_.reset();
    return Status::OK();
  }

  std::string LossyBecause() const override {
    return c_.on_miss == OnMiss::kSkip ? "on_miss: skip drops the rows whose key the reference "
                                         "does not have"
                                       : "";
  }

 private:
  /// Find every distinct key of the batch: level 1, then (for the keys this instance claims)
  /// Redis and the database; keys another instance is fetching are awaited, then read from
  /// level 1.
  Status Resolve(const Batch& batch) {
    cache_->GetMany(distinct_, hashes_, &probes_, &values_);
    level_.assign(distinct_.size(), 1);
    std::vector<std::string_view> missing;
    std::vector<size_t> missing_slot;
    for (size_t i = 0; i < distinct_.size(); ++i) {
      if (probes_[i] != Probe::kMiss) continue;
      missing.push_back(distinct_[i]);
      missing_slot.push_back(i);
    }
    if (missing.empty()) return Status::OK();
    std::vector<uint8_t> mine;
    cache_->Claim(missing, &mine);
    std::vector<std::string_view> fetch, wait;
    std::vector<size_t> fetch_slot, wait_slot;
    for (size_t i = 0; i < missing.size(); ++i) {
      (mine[i] ? fetch : wait).push_back(missing[i]);
      (mine[i] ? fetch_slot : wait_slot).push_back(missing_slot[i]);
    }
    Status st = Fetch(batch, fetch, fetch_slot);
    if (!fetch.empty()) cache_->Done(fetch);
    SLUICE_RETURN_NOT_OK(st);
    if (wait.empty()) return Status::OK();
    cache_->AwaitFetches(wait);
    ctx_->stats()->AddCounter("coalesced_keys", static_cast<int64_t>(wait.size()));
    std::vector<Probe> probes;
    std::vector<std::string> values;
    std::vector<uint64_t> hashes;
    for (const size_t slot : wait_slot) hashes.push_back(hashes_[slot]);
    cache_->GetMany(wait, hashes, &probes, &values);
    std::vector<std::string_view> again;
    std::vector<size_t> again_slot;
    for (size_t i = 0; i < wait.size(); ++i) {
      const size_t slot = wait_slot[i];
      probes_[slot] = probes[i];
      values_[slot] = std::move(values[i]);
      if (probes[i] == Probe::kMiss) {  // the other fetch failed, or it was evicted since
        again.push_back(wait[i]);
        again_slot.push_back(slot);
      }
    }
    return Fetch(batch, again, again_slot);
  }

  /// Fetch `keys` (distinct slots `slots`) from Redis, then the database; fill the levels.
  Status Fetch(const Batch& batch, const std::vector<std::string_view>& keys,
               const std::vector<size_t>& slots) {
    if (keys.empty()) return Status::OK();
    std::vector<std::string_view> db_keys;
    std::vector<size_t> db_slots;
    if (redis_ != nullptr) {
      const auto t0 = std::chrono::steady_clock::now();
      const bool answered = redis_->Get(keys, &redis_rows_, &redis_absent_);
      ctx_->stats()->request_latency.Record(NanosSince(t0));
      for (size_t i = 0; i < keys.size(); ++i) {
        const size_t slot = slots[i];
        if (redis_rows_[i].has_value() && !KeyEncodingValid(*redis_rows_[i], value_types_)) {
          // Not a row this lookup wrote (another writer, a corrupted value): ask the database.
          ctx_->stats()->AddCounter("redis_bad_values", 1);
          redis_rows_[i].reset();
          redis_absent_[i] = 0;
        }
        if (redis_rows_[i].has_value()) {
          probes_[slot] = Probe::kFound;
          values_[slot] = std::move(*redis_rows_[i]);
          level_[slot] = 2;
          cache_->Put(keys[i], values_[slot]);
        } else if (redis_absent_[i]) {
          probes_[slot] = Probe::kAbsent;
          level_[slot] = 2;
          cache_->Put(keys[i], std::nullopt);
        } else {
          db_keys.push_back(keys[i]);
          db_slots.push_back(slot);
        }
      }
      if (!answered)
        ctx_->stats()->AddCounter("redis_skipped_keys", static_cast<int64_t>(keys.size()));
    } else {
      db_keys = keys;
      db_slots = slots;
    }
    if (db_keys.empty()) return Status::OK();
    // One query for all of them: a batch of their key values, taken from the rows that have them.
    std::vector<int32_t> rows;
    for (const size_t slot : db_slots) rows.push_back(distinct_rows_[slot]);
    std::vector<Column> key_columns;
    const BatchPtr taken = batch.Take(rows);
    for (const int k : key_cols_) key_columns.push_back(taken->column(k));
    const BatchPtr key_batch = Batch::MakeUnchecked(key_schema_, std::move(key_columns),
                                                    static_cast<int64_t>(rows.size()), {});
    found_.clear();
    const auto t0 = std::chrono::steady_clock::now();
    // A lost connection or an unavailable server is retried (the reference connects again);
    // a permanent error (no such column, a duplicate key) is not.
    const int64_t retries_before = retry_stats_.retries;
    Status st = Retry(
        c_.db_retry, ctx_->clock(),
        [&] {
          found_.clear();
          return ref_->Fetch(*key_batch, &found_);
        },
        &retry_stats_, ctx_->cancelled_flag());
    if (retry_stats_.retries > retries_before) {
      ctx_->stats()->AddCounter("db_retries", retry_stats_.retries - retries_before);
    }
    const int64_t took = NanosSince(t0);
    ctx_->stats()->request_latency.Record(took);
    ctx_->stats()->AddPhase("database", took);
    ctx_->stats()->AddCounter("db_queries", 1);
    ctx_->stats()->AddCounter("db_keys", static_cast<int64_t>(rows.size()));
    if (!st.ok()) return st.WithContext("node '{}': lookup of {} keys", options_.id(), rows.size());
    std::unordered_map<std::string_view, size_t> slot_of;
    for (size_t i = 0; i < db_keys.size(); ++i) slot_of.emplace(db_keys[i], db_slots[i]);
    std::vector<uint8_t> got(db_keys.size(), 0);
    for (const Found& f : found_) {
      auto it = slot_of.find(f.key);
      if (it == slot_of.end()) {
        // The reference matched a key asked for but returned it differently (char(n) padding,
        // a case-insensitive collation): its row cannot be told apart, so say so.
        return Status::Invalid(
            "node '{}': the reference returned a key that is none of those asked for, though it "
            "matched one: its key column compares values the input does not (char(n) padding, a "
            "case-insensitive collation); read the key as the input has it in a `query` (e.g. "
            "`rtrim(id) AS id`, `lower(id) AS id`)",
            options_.id());
      }
      probes_[it->second] = Probe::kFound;
      values_[it->second] = f.value;
      level_[it->second] = 3;
      cache_->Put(f.key, f.value);
    }
    absent_.clear();
    for (size_t i = 0; i < db_keys.size(); ++i) {
      const size_t slot = db_slots[i];
      if (probes_[slot] == Probe::kFound) continue;
      probes_[slot] = Probe::kAbsent;
      level_[slot] = 3;
      cache_->Put(db_keys[i], std::nullopt);
      absent_.push_back(db_keys[i]);
    }
    if (redis_ != nullptr) {
      const auto t1 = std::chrono::steady_clock::now();
      redis_->Put(found_, absent_);
      ctx_->stats()->request_latency.Record(NanosSince(t1));
    }
    return Status::OK();
  }

  Status Emit(const BatchPtr& batch, Emitter* out) {
    const int64_t n = batch->num_rows();
    // Each distinct key's row decoded once, plus a last row of nulls; the output's added
    // columns gather from them (a hot key repeated in the batch is decoded once, not per row).
    const auto null_row = static_cast<int32_t>(distinct_.size());
    std::vector<ColumnBuilder> builders;
    for (const auto& f : value_schema_->fields()) builders.emplace_back(f.type, null_row + 1);
    for (size_t slot = 0; slot < distinct_.size(); ++slot) {
      if (probes_[slot] == Probe::kFound) {
        DecodeKey(values_[slot], &builders);
      } else {
        for (auto& b : builders) b.AppendNull();
      }
    }
    for (auto& b : builders) b.AppendNull();
    std::vector<int32_t> keep, gather;
    keep.reserve(static_cast<size_t>(n));
    gather.reserve(static_cast<size_t>(n));
    // Rows answered by level 1, 2, 3 (a row or "no such key"); [0]: rows without a reference
    // row (absent or a null key), whichever level said so.
    int64_t by_level[4] = {0, 0, 0, 0};
    int64_t null_keys = 0;  // passed on (null_key: pass)
    std::vector<int32_t> dead;
    for (int64_t r = 0; r < n; ++r) {
      const int32_t slot = slot_of_row_[static_cast<size_t>(r)];
      const bool found = slot >= 0 && probes_[static_cast<size_t>(slot)] == Probe::kFound;
      if (slot >= 0) ++by_level[level_[static_cast<size_t>(slot)]];
      if (found || (slot < 0 && c_.pass_null_keys)) {
        gather.push_back(found ? slot : null_row);
        keep.push_back(static_cast<int32_t>(r));
        if (!found) ++null_keys;
        continue;
      }
      ++by_level[0];
      switch (c_.on_miss) {
        case OnMiss::kFail:
          return Status::Invalid(
              "node '{}': row {}: {} (on_miss: fail; `null`, `skip` or "
              "`dead_letter` let the run go on)",
              options_.id(), rows_seen_ + r, MissReason(*batch, r, slot));
        case OnMiss::kNull:
          gather.push_back(null_row);
          keep.push_back(static_cast<int32_t>(r));
          break;
        case OnMiss::kDeadLetter:
          dead.push_back(static_cast<int32_t>(r));
          break;
        case OnMiss::kSkip:
          break;
      }
    }
    if (!dead.empty()) SLUICE_RETURN_NOT_OK(DeadLetterRows(*batch, dead));
    rows_seen_ += n;
    std::vector<Column> distinct_cols;
    for (auto& b : builders) distinct_cols.push_back(b.Finish());
    const BatchPtr values =
        Batch::MakeUnchecked(value_schema_, std::move(distinct_cols), null_row + 1, {})
            ->Take(gather);
    NodeStats* stats = ctx_->stats();
    stats->AddCounter("l1_hits", by_level[1]);
    stats->AddCounter("l2_hits", by_level[2]);
    stats->AddCounter("db_hits", by_level[3]);
    stats->AddCounter("not_found", by_level[0]);
    // The node's counters add up its instances (parallelism): the rate comes from them, not
    // from this instance's share. Read and set as one step: otherwise an instance could set a
    // rate read before another's counts after that one set the newer rate, and the last rate
    // (the report's) would not be the counters' (integration.lookup saw 0.871795 against 0.875).
    // The cache, shared by the instances, likewise: the last size set is the newest read.
    stats->UpdateDerived([&] {
      const auto counters = stats->Counters();
      auto count = [&](const char* name) {
        const auto it = counters.find(name);
        return it == counters.end() ? int64_t{0} : it->second;
      };
      const int64_t l1 = count("l1_hits");
      const int64_t answered = l1 + count("l2_hits") + count("db_hits");
      if (answered > 0) {
        stats->SetGauge("l1_hit_rate", static_cast<double>(l1) / static_cast<double>(answered));
      }
      const CacheStats cs = cache_->stats();
      stats->SetGauge("cache_entries", static_cast<double>(cs.entries));
      stats->SetGauge("cache_bytes", static_cast<double>(cs.bytes));
    });
    if (c_.on_miss == OnMiss::kSkip && by_level[0] > 0) {
      stats->AddCounter("rows_skipped", by_level[0]);
      stats->discarded_rows.fetch_add(by_level[0], std::memory_order_relaxed);
    }
    if (null_keys > 0) stats->AddCounter("null_keys", null_keys);
    // The cache's growth counts against settings.memory_limit (its own cap is cache.max_bytes).
    if (const int64_t delta = cache_->TakeBytesDelta(); delta != 0) {
      ctx_->HoldMemory(delta);
      held_bytes_ += delta;
    }
    // Running totals are counters (deltas since this instance's last batch).
    stats->AddCounter("cache_evictions", cache_->TakeEvictionsDelta());
    if (redis_ != nullptr) {
      const int64_t failures = redis_->failures(), trips = redis_->trips();
      stats->AddCounter("redis_failures", failures - redis_failures_seen_);
      stats->AddCounter("redis_breaker_trips", trips - redis_trips_seen_);
      if (failures > redis_failures_seen_ && redis_failures_seen_ == 0) {
        Log(LogLevel::kWarn,
            "node '{}': Redis (level 2) is not answering: {}; lookups go to the database, and "
            "Redis is tried again every second (counters redis_failures, redis_skipped_keys)",
            options_.id(), redis_->last_error());
      }
      redis_failures_seen_ = failures;
      redis_trips_seen_ = trips;
    }
    BatchPtr rows = static_cast<int64_t>(keep.size()) == n ? batch : batch->Take(keep);
    std::vector<Column> cols = rows->columns();
    for (const Column& c : values->columns()) cols.push_back(c);
    return out->Emit(
        Batch::MakeUnchecked(output_schema_, std::move(cols), rows->num_rows(), batch->tags()));
  }

  Status BindTo(const SchemaPtr& schema) {
    if (input_schema_ != nullptr) {
      if (schema == input_schema_ || *schema == *input_schema_) return Status::OK();
      return Status::Invalid("node '{}': the input's columns changed during the run",
                             options_.id());
    }
    key_cols_.clear();
    std::vector<TypeId> key_types;
    std::vector<Field> key_fields;
    for (const auto& k : c_.key) {
      const int i = schema->FieldIndex(k);
      if (i < 0) return options_.ErrorAt("key", NoColumn(k, *schema));
      key_cols_.push_back(i);
      key_types.push_back(schema->field(i).type);
      key_fields.push_back(schema->field(i));
    }
    key_schema_ = MakeSchema(std::move(key_fields));
    auto ref = Retry(
        c_.db_retry, ctx_->clock(), [&] { return OpenReference(c_.ref, key_types); }, &retry_stats_,
        ctx_->cancelled_flag());
    if (!ref.ok()) {
      return ref.status().code() == StatusCode::kConfigError
                 ? options_.ErrorAt("from", ref.status().message())
                 : ref.status().WithContext("node '{}': reference", options_.id());
    }
    ref_ = std::move(*ref);
    std::vector<Field> fields = schema->fields();
    std::vector<Field> values;
    // What a cached row depends on: where the reference is (database, table or query, key)
    // and the columns it gives — another database's `meters`, or another column list, is
    // another set of Redis keys.
    std::string fingerprint = c_.ref.dsn + c_.ref.sqlite + c_.ref.redis + "\n" + c_.ref.table +
                              "\n" + c_.ref.query + "\n" + c_.ref.key_prefix + "\n";
    for (const auto& k : c_.ref.key) fingerprint += k + ",";
    fingerprint += "\n";
    for (auto f : ref_->value_schema()->fields()) {
      fingerprint += f.name + ":" + std::string(TypeName(f.type)) + ",";
      f.name = c_.prefix + f.name;
      f.nullable = true;
      if (schema->FieldIndex(f.name) >= 0) {
        return options_.ErrorAt("from", fmt::format("the input already has a column '{}', which "
                                                    "the lookup adds; set `prefix` or rename it",
                                                    f.name));
      }
      fields.push_back(f);
      values.push_back(f);
      value_types_.push_back(f.type);
    }
    value_schema_ = MakeSchema(std::move(values));
    output_schema_ = MakeSchema(std::move(fields));
    // Level 1, shared with the lookups of the same name and the same reference only.
    std::string error;
    cache_ =
        CacheRegistry::Global()->Get(c_.cache_name, c_.cache, fingerprint, ctx_->clock(), &error);
    if (cache_ == nullptr) return options_.ErrorAt("cache", error);
    if (c_.redis.has_value()) {
      char hex[17];
      fmt::format_to_n(hex, sizeof(hex), "{:016x}", transforms_internal::KeyHash(fingerprint));
      auto level = RedisLevel::Open(*c_.redis, std::string_view(hex, 16), key_types, ctx_->clock());
      if (!level.ok()) return options_.ErrorAt("redis", level.status().message());
      redis_ = std::move(*level);
    }
    input_schema_ = schema;
    return Status::OK();
  }

  /// Why row `r` (distinct key `slot`, -1 for a null key) has no reference row, for messages.
  std::string MissReason(const Batch& batch, int64_t r, int32_t slot) const {
    return slot < 0 ? "its key is null" : "no reference row for " + KeyText(batch, r);
  }

  /// Send rows `rows` of `batch` to the dead_letter output: each as JSON, with why it has no
  /// reference row. Positions count rows over this instance's input, as cast's do.
  Status DeadLetterRows(const Batch& batch, const std::vector<int32_t>& rows) {
    SLUICE_ASSIGN_OR_RETURN(auto encoder, io::MakeEncoder(io::Format::kJsonl, batch.schema()));
    std::string text;
    std::vector<size_t> ends;
    encoder->Encode(*batch.Take(rows), &text, &ends);
    size_t begin = 0;
    for (size_t k = 0; k < rows.size(); ++k) {
      const std::string_view line(text.data() + begin, ends[k] - begin - 1);  // without '\n'
      const int64_t r = rows[k];
      ctx_->DeadLetter(fmt::format("row {}", rows_seen_ + r),
                       MissReason(batch, r, slot_of_row_[static_cast<size_t>(r)]), line);
      begin = ends[k];
    }
    return Status::OK();
  }

  /// "meter_id = 'm-000042'" (and ", ..." for more key columns), for messages.
  std::string KeyText(const Batch& batch, int64_t r) const {
    // fmt::format_to, not "+": GCC 12's -Wrestrict misfires on string concatenation at -O3.
    std::string out;
    auto it = std::back_inserter(out);
    for (size_t k = 0; k < key_cols_.size(); ++k) {
      const Column& c = batch.column(key_cols_[k]);
      fmt::format_to(it, "{}{} = ", k ? ", " : "", c_.key[k]);
      if (c.type() == TypeId::kString) {
        fmt::format_to(it, "'{}'", c.GetView(r).substr(0, 80));
      } else if (c.type() == TypeId::kFloat64) {
        fmt::format_to(it, "{}", c.GetFloat64(r));
      } else if (c.type() == TypeId::kBool) {
        fmt::format_to(it, "{}", c.GetBool(r));
      } else if (c.type() == TypeId::kTimestamp) {
        fmt::format_to(it, "{}", FormatTimestamp(c.GetInt64(r)));
      } else {
        fmt::format_to(it, "{}", c.GetInt64(r));
      }
    }
    return out;
  }

  NodeOptions options_;
  LookupConfig c_;
  NodeContext* ctx_ = nullptr;
  std::shared_ptr<LookupCache> cache_;
  std::unique_ptr<Reference> ref_;
  std::unique_ptr<RedisLevel> redis_;
  RetryStats retry_stats_;
  int64_t held_bytes_ = 0;  // what this instance counts against the memory budget
  int64_t rows_seen_ = 0;   // input rows of this instance before the current batch
  SchemaPtr input_schema_, key_schema_, value_schema_, output_schema_;
  std::vector<int> key_cols_;
  std::vector<TypeId> value_types_;  // of the added columns
  // Per batch:
  std::string keys_;                  // every row's encoded key, back to back
  std::vector<size_t> key_end_;       // where row r's key ends in keys_; SIZE_MAX: a null key
  std::vector<int32_t> slot_of_row_;  // the row's distinct key; -1: a null key
  std::vector<int32_t> table_;        // grouping: open addressing, distinct slot or -1
  std::vector<size_t> used_;          // table_ entries set in this batch
  std::vector<uint64_t> hashes_;      // of each distinct key
  std::vector<std::string_view> distinct_;
  std::vector<int32_t> distinct_rows_;  // a row holding each distinct key
  std::vector<Probe> probes_;
  std::vector<std::string> values_;
  std::vector<uint8_t> level_;  // where each distinct key was found: 1, 2 or 3
  std::vector<std::optional<std::string>> redis_rows_;
  std::vector<uint8_t> redis_absent_;
  std::vector<Found> found_;
  std::vector<std::string_view> absent_;
  int64_t redis_failures_seen_ = 0, redis_trips_seen_ = 0;
};

}  // namespace

std::unique_ptr<Transform> NewLookupTransform(NodeOptions options, LookupConfig config) {
  return std::make_unique<LookupTransform>(std::move(options), std::move(config));
}

}  // namespace sluice::lookup
