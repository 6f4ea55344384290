#include "sluice/connectors/redis/stream_source.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sluice/connectors/redis/redis.h"
#include "sluice/connectors/redis/redis_client.h"
#include "sluice/connectors/redis/stream_decode.h"
#include "sluice/core/time.h"

namespace sluice::redis {

namespace {

enum class OnError : uint8_t { kFail, kSkip, kDeadLetter };

/// How often entries idle on any consumer longer than claim_idle are claimed (XAUTOCLAIM).
constexpr int64_t kClaimIntervalUs = 5'000'000;

struct SourceConfig {
  RedisOptions redis;
  std::string stream;
  std::string group;
  std::string consumer;
  bool create_group = true;
  std::string start_id;
  SchemaPtr schema;
  int64_t batch_rows = 10000;
  int64_t linger_us = 200'000;
  int64_t block_us = 100'000;
  int64_t claim_idle_us = 60'000'000;
  OnError on_error = OnError::kFail;
  int64_t max_deliveries = 0;  // 0: no limit
  int event_time = -1;         // the schema's column of event times; -1: no watermark
  int64_t lateness_us = 0;
  int64_t idle_timeout_us = 0;  // 0: an idle stream's watermark stays where it is
};

int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class StreamSource final : public Source {
 public:
  explicit StreamSource(SourceConfig c) : c_(std::move(c)), decoder_(c_.schema) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    if (ctx->dry_run()) return Status::OK();
    SLUICE_ASSIGN_OR_RETURN(client_, RedisClient::Make(c_.redis, ctx->clock()));
    if (c_.create_group) {
      auto r = client_->WithRetry([&] {
        return client_->Command({"XGROUP", "CREATE", c_.stream, c_.group, c_.start_id, "MKSTREAM"});
      });
      if (!r.ok() && r.status().message().find("BUSYGROUP") == std::string::npos) {
        return r.status().WithContext("stream '{}': creating group '{}'", c_.stream, c_.group);
      }
    }
    next_claim_us_ = SteadyMicros();  // claim once at the start, then every kClaimIntervalUs
    return Status::OK();
  }

  Result<BatchPtr> Next(uint64_t seq) override {
    if (ctx_->dry_run() || ctx_->cancelled()) return BatchPtr{};
    if (ctx_->stopping()) return BatchPtr{};
    if (SteadyMicros() >= next_gauges_us_) SLUICE_RETURN_NOT_OK(UpdateGroupGauges());
    ids_.clear();
    batch_ids_.clear();
    int64_t first_row_us = -1;
    bool waited_empty = false;
    const char* closed_by = "linger";  // what closed the batch: rows, linger or a stop
    while (!ctx_->cancelled()) {
      const int64_t left = c_.batch_rows - decoder_.rows();
      if (left <= 0) {
        closed_by = "rows";
        break;
      }
      size_t got = 0;
      if (reading_pending_) {
        SLUICE_ASSIGN_OR_RETURN(got, ReadPending(left));
      } else if (SteadyMicros() >= next_claim_us_) {
        SLUICE_ASSIGN_OR_RETURN(got, Claim(left));
      } else {
        int64_t wait = c_.block_us;
        if (first_row_us >= 0) {
          wait = std::min(wait, first_row_us + c_.linger_us - SteadyMicros());
        }
        if (wait < 1000) break;  // linger is up
        SLUICE_ASSIGN_OR_RETURN(got, ReadNew(left, wait));
        if (got == 0 && decoder_.rows() == 0 && ids_.empty()) waited_empty = true;
      }
      if (got > 0 && first_row_us < 0) first_row_us = SteadyMicros();
      if (ctx_->stopping()) closed_by = "stop";
      if (waited_empty || ctx_->stopping()) break;
      if (first_row_us >= 0 && SteadyMicros() - first_row_us >= c_.linger_us) break;
    }
    if (ctx_->cancelled()) return BatchPtr{};
    if (!ids_.empty()) {
      for (const auto& id : ids_) held_.insert(id);
      in_flight_[seq] = std::move(ids_);
      ids_.clear();
    }
    BatchPtr batch = decoder_.Finish();  // possibly empty: "nothing yet"
    if (batch->num_rows() > 0)
      ctx_->stats()->AddCounter(std::string("batches_closed_") + closed_by, 1);
    if (c_.event_time >= 0) TrackEventTime(*batch);
    return batch;
  }

  /// The largest event time seen less `lateness`; after `idle_timeout` without entries, the
  /// wall clock less `lateness` (an idle stream must not hold windows open forever).
  int64_t Watermark() const override {
    if (c_.event_time < 0) return INT64_MIN;
    int64_t wm = max_event_us_ == INT64_MIN ? INT64_MIN : max_event_us_ - c_.lateness_us;
    if (c_.idle_timeout_us > 0 && last_entry_us_ >= 0 &&
        SteadyMicros() - last_entry_us_ >= c_.idle_timeout_us) {
      wm = std::max(wm, NowMicros() - c_.lateness_us);
    }
    return wm;
  }

  Status Commit(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return Status::OK();
    std::vector<std::string_view> argv = {"XACK", c_.stream, c_.group};
    for (const auto& id : it->second) argv.push_back(id);
    auto r = client_->WithRetry([&] { return client_->Command(argv); });
    if (!r.ok()) {
      return r.status().WithContext("stream '{}': XACK of {} entries of batch {}", c_.stream,
                                    it->second.size(), seq);
    }
    Forget(it);
    return Status::OK();
  }

  void Abandon(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it != in_flight_.end()) Forget(it);  // they stay pending: a rerun reads them first
  }

  SchemaPtr schema() const override { return c_.schema; }
  int64_t EstimatedRows() const override { return -1; }
  bool ConsumesInput() const override { return false; }  // XACK leaves entries in the stream
  bool Unbounded() const override { return true; }

 private:
  using InFlight = std::map<uint64_t, std::vector<std::string>>;
  using Deliveries = std::unordered_map<std::string, int64_t>;

  // How many times each pending entry of `entries` (an array of [id, fields], in id order)
  // has been delivered, by XPENDING over their id range; empty without max_deliveries.
  Result<Deliveries> DeliveriesOf(RedisValue entries, const std::string& consumer) {
    Deliveries out;
    if (c_.max_deliveries <= 0 || entries.size() == 0) return out;
    const std::string first(entries[0][0].str());
    const std::string last(entries[entries.size() - 1][0].str());
    const std::string n = std::to_string(entries.size());
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, client_->WithRetry([&] {
      return client_->Command({"XPENDING", c_.stream, c_.group, first, last, n, consumer});
    }));
    for (size_t i = 0; i < reply.size(); ++i) {
      RedisValue e = reply[i];
      if (e.is_array() && e.size() >= 4) out[std::string(e[0].str())] = e[3].integer();
    }
    return out;
  }

  void TrackEventTime(const Batch& batch) {
    if (batch.num_rows() == 0) {
      if (last_entry_us_ < 0) last_entry_us_ = SteadyMicros();  // idle since the start
      return;
    }
    last_entry_us_ = SteadyMicros();
    const Column& ts = batch.column(c_.event_time);
    for (int64_t r = 0; r < batch.num_rows(); ++r) {
      if (!ts.IsNull(r)) max_event_us_ = std::max(max_event_us_, ts.GetInt64(r));
    }
  }

  void Forget(InFlight::iterator it) {
    for (const auto& id : it->second) held_.erase(id);
    in_flight_.erase(it);
  }

  // Decode entries (array of [id, fields]) into the batch; ids of entries dropped because
  // they are already held are skipped. `deliveries` (id -> times delivered, this time
  // included) is known for redelivered entries when max_deliveries is set. Return how many
  // entries were taken.
  Result<size_t> Take(RedisValue entries, bool claimed, const Deliveries& deliveries = {}) {
    size_t taken = 0;
    int64_t trimmed = 0, skipped = 0, over = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      RedisValue entry = entries[i];
      if (!entry.is_array() || entry.size() < 2) continue;
      std::string id(entry[0].str());
      if (claimed && (held_.count(id) > 0 || batch_ids_.count(id) > 0)) continue;
      ++taken;
      Status st;
      if (entry[1].is_nil()) {
        // Deleted or trimmed while pending: nothing to deliver, only to acknowledge.
        ++trimmed;
      } else if (auto d = deliveries.find(id);
                 d != deliveries.end() && d->second > c_.max_deliveries) {
        // A poison entry: every reader that took it died or gave it up.
        ++over;
        st = Status::Invalid(
            "delivered {} times, more than max_deliveries ({}); every reader before failed or "
            "stopped with it",
            d->second, c_.max_deliveries);
      } else {
        st = decoder_.Append(entry[1]);
      }
      if (!st.ok()) {
        switch (c_.on_error) {
          case OnError::kFail:
            return st.WithContext("stream '{}' entry {}", c_.stream, id);
          case OnError::kSkip:
            ++skipped;
            break;
          case OnError::kDeadLetter:
            ctx_->DeadLetter(id, st.message(), FieldsAsJson(entry[1]));
            break;
        }
      }
      batch_ids_.insert(id);
      ids_.push_back(std::move(id));
    }
    NodeStats* stats = ctx_->stats();
    if (taken > 0) stats->AddCounter("entries_read", static_cast<int64_t>(taken));
    if (taken > 0 && claimed) stats->AddCounter("claimed_entries", static_cast<int64_t>(taken));
    if (trimmed > 0) stats->AddCounter("trimmed_pending", trimmed);
    if (skipped > 0) stats->AddCounter("skipped_records", skipped);
    if (over > 0) stats->AddCounter("over_max_deliveries", over);
    return taken;
  }

  // XREADGROUP's reply: nil, or [[stream, entries]]. Return the entries (possibly none).
  static std::optional<RedisValue> EntriesOf(const RedisReply& reply) {
    if (!reply.is_array() || reply.size() == 0) return std::nullopt;
    RedisValue s = reply[0];
    if (!s.is_array() || s.size() < 2) return std::nullopt;
    return s[1];
  }

  // Phase 1: this consumer's own pending entries, paging by the last id returned.
  Result<size_t> ReadPending(int64_t count) {
    const std::string n = std::to_string(count);
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, client_->WithRetry([&] {
      return client_->Command({"XREADGROUP", "GROUP", c_.group, c_.consumer, "COUNT", n, "STREAMS",
                               c_.stream, pending_cursor_});
    }));
    auto entries = EntriesOf(reply);
    if (!entries || entries->size() == 0) {
      reading_pending_ = false;
      return 0;
    }
    pending_cursor_ = std::string((*entries)[entries->size() - 1][0].str());
    SLUICE_ASSIGN_OR_RETURN(Deliveries deliveries, DeliveriesOf(*entries, c_.consumer));
    return Take(*entries, false, deliveries);
  }

  Result<size_t> ReadNew(int64_t count, int64_t wait_us) {
    const std::string n = std::to_string(count);
    const std::string block = std::to_string(std::max<int64_t>(1, wait_us / 1000));
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, client_->WithRetry([&] {
      return client_->Command({"XREADGROUP", "GROUP", c_.group, c_.consumer, "BLOCK", block,
                               "COUNT", n, "STREAMS", c_.stream, ">"});
    }));
    auto entries = EntriesOf(reply);
    if (!entries) return 0;
    return Take(*entries, false);
  }

  // Entries idle longer than claim_idle on any consumer (a dead worker's, or our own held
  // ones, which are dropped: they are in flight here already).
  Result<size_t> Claim(int64_t count) {
    const std::string n = std::to_string(count);
    const std::string idle = std::to_string(c_.claim_idle_us / 1000);
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, client_->WithRetry([&] {
      return client_->Command(
          {"XAUTOCLAIM", c_.stream, c_.group, c_.consumer, idle, claim_cursor_, "COUNT", n});
    }));
    size_t got = 0;
    if (reply.is_array() && reply.size() >= 2) {
      claim_cursor_ = std::string(reply[0].str());
      SLUICE_ASSIGN_OR_RETURN(Deliveries deliveries, DeliveriesOf(reply[1], c_.consumer));
      SLUICE_ASSIGN_OR_RETURN(got, Take(reply[1], true, deliveries));
      if (reply.size() >= 3 && reply[2].size() > 0) {
        // Ids deleted from the stream while pending: acknowledge them now.
        std::vector<std::string_view> argv = {"XACK", c_.stream, c_.group};
        for (size_t i = 0; i < reply[2].size(); ++i) argv.push_back(reply[2][i].str());
        SLUICE_RETURN_NOT_OK(client_->WithRetry([&] { return client_->Command(argv); }).status());
        ctx_->stats()->AddCounter("trimmed_pending", static_cast<int64_t>(reply[2].size()));
      }
    } else {
      claim_cursor_ = "0-0";
    }
    // A full round done: wait for the next interval; else continue the round next time.
    if (claim_cursor_ == "0-0") next_claim_us_ = SteadyMicros() + kClaimIntervalUs;
    return got;
  }

  // The group's `lag` (entries not yet delivered to any consumer) and `pending` (delivered, not
  // acknowledged) from XINFO GROUPS, as gauges of the node; every kClaimIntervalUs.
  Status UpdateGroupGauges() {
    next_gauges_us_ = SteadyMicros() + kClaimIntervalUs;
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, client_->WithRetry([&] {
      return client_->Command({"XINFO", "GROUPS", c_.stream});
    }));
    for (size_t g = 0; g < reply.size(); ++g) {
      RedisValue group = reply[g];
      std::map<std::string_view, RedisValue> info;
      for (size_t i = 0; i + 1 < group.size(); i += 2) info.emplace(group[i].str(), group[i + 1]);
      auto name = info.find("name");
      if (name == info.end() || name->second.str() != c_.group) continue;
      NodeStats* stats = ctx_->stats();
      if (auto p = info.find("pending"); p != info.end()) {
        stats->SetGauge("pending", static_cast<double>(p->second.integer()));
      }
      // nil when Redis cannot tell (entries deleted in the middle of the stream).
      if (auto l = info.find("lag"); l != info.end() && !l->second.is_nil()) {
        stats->SetGauge("lag", static_cast<double>(l->second.integer()));
      }
    }
    return Status::OK();
  }

  const SourceConfig c_;
  NodeContext* ctx_ = nullptr;
  int64_t next_gauges_us_ = 0;
  std::unique_ptr<RedisClient> client_;
  EntryDecoder decoder_;
  int64_t max_event_us_ = INT64_MIN;  // the largest event time read so far
  int64_t last_entry_us_ = -1;        // steady µs of the last batch with entries
  bool reading_pending_ = true;
  std::string pending_cursor_ = "0";
  std::string claim_cursor_ = "0-0";
  int64_t next_claim_us_ = 0;
  std::vector<std::string> ids_;               // the batch being built
  std::unordered_set<std::string> batch_ids_;  // the same, for lookups; cleared per batch
  InFlight in_flight_;                         // handed out, not yet committed or abandoned
  std::unordered_set<std::string> held_;       // every id of in_flight_
};

std::string DefaultConsumer() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "host");
  return fmt::format("{}-{}", host, getpid());
}

}  // namespace

OptionSchema StreamSourceOptionSpecs() {
  OptionSchema o = ConnectionOptionSpecs();
  const OptionSchema own = {
      {"stream", OptionType::kString, "", "The stream key to read.", true, {}},
      {"group", OptionType::kString, "", "The consumer group.", true, {}},
      {"consumer",
       OptionType::kString,
       "",
       "This reader's name in the group; default <hostname>-<pid>. A rerun with the same name "
       "reads its own pending entries first.",
       false,
       {}},
      {"create_group",
       OptionType::kBool,
       "true",
       "Create the group (and the stream) when missing: XGROUP CREATE ... start_id MKSTREAM.",
       false,
       {}},
      {"start_id",
       OptionType::kString,
       "$",
       "Where a group created here starts: $ (new entries only) or 0 (the whole stream).",
       false,
       {}},
      {"schema",
       OptionType::kMap,
       "",
       "Field name -> column type; a missing field is NULL, fields not listed are ignored.",
       true,
       {}},
      {"batch_rows", OptionType::kInt, "10000", "Most entries per batch.", false, {}},
      {"linger",
       OptionType::kDuration,
       "200ms",
       "Close a batch this long after its first entry even when not full.",
       false,
       {}},
      {"block",
       OptionType::kDuration,
       "100ms",
       "Longest wait for new entries in one XREADGROUP; nothing in that time ends the call "
       "with \"nothing yet\".",
       false,
       {}},
      {"claim_idle",
       OptionType::kDuration,
       "60s",
       "Claim entries pending on any consumer for longer than this (XAUTOCLAIM, every 5 s).",
       false,
       {}},
      {"on_error",
       OptionType::kEnum,
       "fail",
       "An entry whose field does not parse as its column's type (or delivered more than "
       "max_deliveries times): fail the run (naming the entry id), skip it (counted in "
       "skipped_records), or send it to the `<id>.dead_letter` output (entry id, error, "
       "fields as JSON). Skipped and routed entries are acknowledged with their batch.",
       false,
       {"fail", "skip", "dead_letter"}},
      {"max_deliveries",
       OptionType::kInt,
       "0",
       "An entry read again (own pending, or claimed) after this many deliveries is not "
       "delivered again but handled by on_error: a poison entry that kills every reader stops "
       "circulating. 0: no limit.",
       false,
       {}},
      {"event_time",
       OptionType::kString,
       "",
       "A timestamp column of `schema` holding each entry's event time: the source's watermark "
       "is the largest seen less `lateness` (windows downstream close by it). Empty: none.",
       false,
       {}},
      {"lateness",
       OptionType::kDuration,
       "0s",
       "How far behind the newest event time an entry may still come (out of order).",
       false,
       {}},
      {"idle_timeout",
       OptionType::kDuration,
       "0s",
       "After this long without entries the watermark follows the wall clock (less lateness); "
       "0: it waits for entries.",
       false,
       {}},
  };
  o.insert(o.end(), own.begin(), own.end());
  return o;
}

Result<std::unique_ptr<Source>> MakeStreamSource(const NodeOptions& o) {
  SourceConfig c;
  SLUICE_ASSIGN_OR_RETURN(c.redis, ConnectionOptionsFrom(o));
  c.stream = o.GetString("stream");
  if (c.stream.empty()) return o.ErrorAt("stream", "must not be empty");
  c.group = o.GetString("group");
  if (c.group.empty()) return o.ErrorAt("group", "must not be empty");
  c.consumer = o.GetString("consumer");
  if (c.consumer.empty()) c.consumer = DefaultConsumer();
  c.create_group = o.GetBool("create_group");
  c.start_id = o.Has("start_id") ? o.GetString("start_id") : std::string("$");
  if (c.start_id.empty()) return o.ErrorAt("start_id", "must be $, 0 or an entry id");
  SLUICE_ASSIGN_OR_RETURN(c.schema, o.GetSchema("schema"));
  if (c.schema == nullptr || c.schema->fields().empty()) {
    return o.ErrorAt("schema", "declare the columns to read: field name -> type");
  }
  c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  c.linger_us = o.GetDurationMicros("linger");
  c.block_us = o.GetDurationMicros("block");
  if (c.block_us < 1000) return o.ErrorAt("block", "must be at least 1ms");
  c.claim_idle_us = o.GetDurationMicros("claim_idle");
  if (c.claim_idle_us < 1000) return o.ErrorAt("claim_idle", "must be at least 1ms");
  if (c.redis.command_timeout_us > 0 && c.redis.command_timeout_us <= c.block_us) {
    return o.ErrorAt("timeout", "must be longer than `block`");
  }
  const std::string on_error = o.GetString("on_error");
  c.on_error = on_error == "skip"          ? OnError::kSkip
               : on_error == "dead_letter" ? OnError::kDeadLetter
                                           : OnError::kFail;
  c.max_deliveries = o.GetInt("max_deliveries");
  if (c.max_deliveries < 0) return o.ErrorAt("max_deliveries", "must be 0 (no limit) or more");
  if (const std::string et = o.GetString("event_time"); !et.empty()) {
    c.event_time = c.schema->FieldIndex(et);
    if (c.event_time < 0 || c.schema->field(c.event_time).type != TypeId::kTimestamp) {
      return o.ErrorAt("event_time", fmt::format("'{}' is not a timestamp column of `schema`", et));
    }
  }
  c.lateness_us = o.GetDurationMicros("lateness");
  c.idle_timeout_us = o.GetDurationMicros("idle_timeout");
  if (c.lateness_us < 0 || c.idle_timeout_us < 0) {
    return o.ErrorAt(c.lateness_us < 0 ? "lateness" : "idle_timeout", "must not be negative");
  }
  return std::unique_ptr<Source>(new StreamSource(std::move(c)));
}

}  // namespace sluice::redis
