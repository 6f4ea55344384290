#include "sluice/connectors/redis/stream_source.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "sluice/connectors/redis/redis.h"
#include "sluice/connectors/redis/redis_client.h"
#include "sluice/connectors/redis/stream_decode.h"
#include "sluice/connectors/redis/stream_source_internal.h"
#include "sluice/core/time.h"

namespace sluice::redis {

namespace {

/// How often entries idle on any consumer longer than claim_idle are claimed (XAUTOCLAIM).
constexpr int64_t kClaimIntervalUs = 5'000'000;
/// Reads of new entries kept in flight on the connection while streaming: Redis prepares the
/// next reply while this thread decodes the last one.
constexpr int kReadDepth = 2;
/// XACKs sent and not yet answered, at most (their replies are read a few commits later).
constexpr size_t kAcksInFlight = 4;

/// Entry ids packed in one buffer: one allocation per batch rather than one per entry.
class IdList {
 public:
  void Add(std::string_view id) {
    bytes_.append(id);
    ends_.push_back(bytes_.size());
  }
  size_t size() const { return ends_.size(); }
  bool empty() const { return ends_.empty(); }
  std::string_view operator[](size_t i) const {
    const size_t begin = i == 0 ? 0 : ends_[i - 1];
    return {bytes_.data() + begin, ends_[i] - begin};
  }
  void clear() {
    bytes_.clear();
    ends_.clear();
  }

 private:
  std::string bytes_;
  std::vector<size_t> ends_;
};

/// Stream entries in a reply ([[id, fields], ...]) as Take reads them.
struct ValueEntries {
  RedisValue entries;
  size_t size() const { return entries.size(); }
  bool valid(size_t i) const { return entries[i].is_array() && entries[i].size() >= 2; }
  std::string_view id(size_t i) const { return entries[i][0].str(); }
  bool nil(size_t i) const { return entries[i][1].is_nil(); }
  RedisValue fields(size_t i) const { return entries[i][1]; }
};

/// The same over a FlatReply of XREADGROUP: nil, or [[stream, [[id, [field, value, ...] or
/// nil], ...]]] — the entries indexed once per reply.
class FlatEntries {
 public:
  Status Index(const FlatReply& reply) {
    reply_ = &reply;
    entries_.clear();
    const auto& t = reply.tokens();
    if (t.size() == 1 && t[0].type == REDIS_REPLY_NIL) return Status::OK();  // BLOCK ran out
    const auto is = [&](size_t i, int type) { return i < t.size() && t[i].type == type; };
    if (!is(0, REDIS_REPLY_ARRAY) || !is(1, REDIS_REPLY_ARRAY) || !is(2, REDIS_REPLY_STRING) ||
        !is(3, REDIS_REPLY_ARRAY)) {
      return Shape();
    }
    size_t i = 4;
    for (int64_t e = 0; e < t[3].value; ++e) {
      if (!is(i, REDIS_REPLY_ARRAY) || t[i].value != 2 || !is(i + 1, REDIS_REPLY_STRING)) {
        return Shape();
      }
      if (is(i + 2, REDIS_REPLY_NIL)) {
        entries_.push_back({i + 1, 0, 0, true});
        i += 3;
        continue;
      }
      if (!is(i + 2, REDIS_REPLY_ARRAY)) return Shape();
      const auto n = static_cast<size_t>(t[i + 2].value);
      if (i + 3 + n > t.size()) return Shape();
      entries_.push_back({i + 1, i + 3, n, false});
      i += 3 + n;
    }
    return Status::OK();
  }
  size_t size() const { return entries_.size(); }
  bool valid(size_t) const { return true; }
  std::string_view id(size_t i) const { return reply_->text(entries_[i].id); }
  bool nil(size_t i) const { return entries_[i].nil; }
  FlatFields fields(size_t i) const {
    return FlatFields(reply_, entries_[i].first_field, entries_[i].fields);
  }

 private:
  struct Entry {
    size_t id;           // token of the id
    size_t first_field;  // token of the first field name
    size_t fields;       // names and values
    bool nil;
  };
  static Status Shape() { return Status::Internal("XREADGROUP: a reply of an unexpected shape"); }
  const FlatReply* reply_ = nullptr;
  std::vector<Entry> entries_;
};

int64_t SteadyMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class StreamSource final : public Source {
 public:
  explicit StreamSource(SourceConfig c) : c_(std::move(c)), decoder_(c_.schema, c_.json_field) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    if (ctx->dry_run()) return Status::OK();
    SLUICE_ASSIGN_OR_RETURN(client_,
                            RedisClient::Make(c_.redis, ctx->clock(), ctx->cancelled_flag()));
    // XACKs go on a connection of their own: their replies are read a few commits later.
    SLUICE_ASSIGN_OR_RETURN(ack_client_,
                            RedisClient::Make(c_.redis, ctx->clock(), ctx->cancelled_flag()));
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
    if (ctx_->stopping() && counts_.empty()) return BatchPtr{};
    if (SteadyMicros() >= next_gauges_us_) SLUICE_RETURN_NOT_OK(UpdateGroupGauges());
    ids_.clear();
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
      } else if (SteadyMicros() >= next_claim_us_ && counts_.empty()) {
        SLUICE_ASSIGN_OR_RETURN(got, Claim(left));
      } else {
        if (first_row_us >= 0 && first_row_us + c_.linger_us - SteadyMicros() < 1000) {
          break;  // linger is up (a read in flight waits at most `block`)
        }
        SLUICE_ASSIGN_OR_RETURN(got, ReadNew(left));
        if (reading_pending_) continue;  // a read was lost: read own pending entries again now
        if (got == 0 && decoder_.rows() == 0 && ids_.empty()) waited_empty = true;
      }
      if (got > 0 && first_row_us < 0) first_row_us = SteadyMicros();
      if (ctx_->stopping()) closed_by = "stop";
      if (waited_empty || ctx_->stopping()) break;
      if (first_row_us >= 0 && SteadyMicros() - first_row_us >= c_.linger_us) break;
    }
    if (ctx_->cancelled()) return BatchPtr{};
    if (std::string_view(closed_by) == "rows" && MaySendReads()) {
      SLUICE_RETURN_NOT_OK(SendReads(c_.batch_rows));  // the next batch's, read ahead
    } else {
      // What the reads still in flight deliver is pending on this consumer: it goes out with
      // this batch (it fits: no more was requested than the room left).
      while (!counts_.empty()) SLUICE_RETURN_NOT_OK(ReadNew(0).status());
    }
    if (!ids_.empty()) {
      in_flight_[seq] = std::move(ids_);
      ids_.clear();
    }
    const int64_t reconnects = client_->reconnects() + ack_client_->reconnects();
    if (reconnects > reconnects_counted_) {
      ctx_->stats()->AddCounter("reconnects", reconnects - reconnects_counted_);
      reconnects_counted_ = reconnects;
    }
    BatchPtr batch = decoder_.Finish();  // possibly empty: "nothing yet"
    if (batch->num_rows() > 0)
      ctx_->stats()->AddCounter(std::string("batches_closed_") + closed_by, 1);
    if (c_.event_time >= 0) TrackEventTime(*batch);
    return batch;
  }

  /// The largest event time seen less `lateness`; after `idle_timeout` without entries, the
  /// wall clock less `lateness` (an idle stream must not hold windows open forever).
  bool HasWatermark() const override { return c_.event_time >= 0; }
  int64_t Watermark() const override {
    if (c_.event_time < 0) return INT64_MIN;
    int64_t wm = max_event_us_ == INT64_MIN ? INT64_MIN : max_event_us_ - c_.lateness_us;
    if (c_.idle_timeout_us > 0 && last_entry_us_ >= 0 &&
        SteadyMicros() - last_entry_us_ >= c_.idle_timeout_us) {
      wm = std::max(wm, NowMicros() - c_.lateness_us);
    }
    return wm;
  }

  // The batch's XACK is sent at once and its reply read a few commits later (or at Close): the
  // source thread goes on reading meanwhile. XACK is idempotent, so when the connection is lost
  // with XACKs unanswered they are sent again.
  Status Commit(uint64_t seq) override {
    auto it = in_flight_.find(seq);
    if (it == in_flight_.end()) return Status::OK();
    acking_.emplace_back(seq, std::move(it->second));
    in_flight_.erase(it);
    Status st = ack_client_->Append(XackArgv(acking_.back().second));
    if (st.ok()) st = ack_client_->Send();
    if (!st.ok()) return AckAgain(st);
    while (acking_.size() > kAcksInFlight) SLUICE_RETURN_NOT_OK(ConfirmOldestAck());
    return Status::OK();
  }

  Status Close() override {
    while (!acking_.empty()) SLUICE_RETURN_NOT_OK(ConfirmOldestAck());
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
  bool Buffered() const override { return !counts_.empty(); }

 private:
  using InFlight = std::map<uint64_t, IdList>;
  using Deliveries = std::unordered_map<std::string, int64_t>;

  // How many times each pending entry of `entries` (an array of [id, fields], in id order)
  // has been delivered, by XPENDING over their id range; empty without max_deliveries.
  // Not after a lost connection: re-reading own pending entries counts as a delivery in Redis,
  // though the lost read's entries never reached anyone.
  Result<Deliveries> DeliveriesOf(RedisValue entries, const std::string& consumer) {
    Deliveries out;
    if (c_.max_deliveries <= 0 || entries.size() == 0 || rereading_pending_) return out;
    const std::string first(entries[0][0].str());
    const std::string last(entries[entries.size() - 1][0].str());
    // The range may also hold entries pending here that were not in this reply (held ones).
    size_t held = ids_.size();
    for (const auto& [seq, ids] : in_flight_) held += ids.size();
    for (const auto& [seq, ids] : acking_) held += ids.size();
    const std::string n = std::to_string(entries.size() + held);
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

  void Forget(InFlight::iterator it) { in_flight_.erase(it); }

  std::vector<std::string_view> XackArgv(const IdList& ids) const {
    std::vector<std::string_view> argv = {"XACK", c_.stream, c_.group};
    argv.reserve(3 + ids.size());
    for (size_t i = 0; i < ids.size(); ++i) argv.push_back(ids[i]);
    return argv;
  }

  // Read the reply to the oldest XACK sent.
  Status ConfirmOldestAck() {
    Result<RedisReply> reply = ack_client_->Reply();
    if (!reply.ok()) return AckAgain(reply.status());
    const auto& [seq, ids] = acking_.front();
    Status st = ack_client_->ReplyError(*reply, "XACK");
    if (!st.ok()) {
      return st.WithContext("stream '{}': XACK of {} entries of batch {}", c_.stream, ids.size(),
                            seq);
    }
    acking_.pop_front();
    return Status::OK();
  }

  // The ack connection failed with XACKs unanswered (they may or may not have run): send each
  // again and wait for it, reconnecting with backoff.
  Status AckAgain(const Status& failure) {
    if (!failure.IsRetryable()) return failure.WithContext("stream '{}': XACK", c_.stream);
    for (const auto& [seq, ids] : acking_) {
      const auto argv = XackArgv(ids);
      auto r = ack_client_->WithRetry([&] { return ack_client_->Command(argv); });
      if (!r.ok()) {
        return r.status().WithContext("stream '{}': XACK of {} entries of batch {}", c_.stream,
                                      ids.size(), seq);
      }
    }
    acking_.clear();
    return Status::OK();
  }

  // Every id handed out and not yet settled, and those of the batch being built: a claim, or
  // a re-read of this consumer's pending entries, must not deliver them a second time.
  std::unordered_set<std::string> HeldIds() const {
    std::unordered_set<std::string> held;
    for (const auto& [seq, ids] : in_flight_) {
      for (size_t i = 0; i < ids.size(); ++i) held.emplace(ids[i]);
    }
    for (const auto& [seq, ids] : acking_) {
      for (size_t i = 0; i < ids.size(); ++i) held.emplace(ids[i]);
    }
    for (size_t i = 0; i < ids_.size(); ++i) held.emplace(ids_[i]);
    return held;
  }

  // Decode `entries` (ValueEntries or FlatEntries) into the batch. A claim (or a re-read of
  // own pending entries after a lost connection) skips ids already held here. `deliveries`
  // (id -> times delivered, this time included) is known for redelivered entries when
  // max_deliveries is set. Return how many entries were taken.
  template <class Entries>
  Result<size_t> Take(const Entries& entries, bool claimed, const Deliveries& deliveries = {}) {
    size_t taken = 0;
    int64_t trimmed = 0, skipped = 0, over = 0;
    const bool skip_held = claimed || rereading_pending_;
    std::unordered_set<std::string> held;
    if (skip_held && entries.size() > 0) held = HeldIds();
    for (size_t i = 0; i < entries.size(); ++i) {
      if (!entries.valid(i)) continue;
      const std::string_view id = entries.id(i);
      // Held here already, or twice in one reply.
      if (skip_held && !held.emplace(id).second) continue;
      ++taken;
      Status st;
      if (entries.nil(i)) {
        // Deleted or trimmed while pending: nothing to deliver, only to acknowledge.
        ++trimmed;
      } else if (auto d = deliveries.empty() ? deliveries.end() : deliveries.find(std::string(id));
                 d != deliveries.end() && d->second > c_.max_deliveries) {
        // A poison entry: every reader that took it died or gave it up.
        ++over;
        st = Status::Invalid(
            "delivered {} times, more than max_deliveries ({}); every reader before failed or "
            "stopped with it",
            d->second, c_.max_deliveries);
      } else {
        st = decoder_.Append(entries.fields(i));
      }
      if (!st.ok()) {
        switch (c_.on_error) {
          case OnError::kFail:
            return st.WithContext("stream '{}' entry {}", c_.stream, id);
          case OnError::kSkip:
            ++skipped;
            break;
          case OnError::kDeadLetter:
            ctx_->DeadLetter(id, st.message(), FieldsAsJson(entries.fields(i)));
            break;
        }
      }
      ids_.Add(id);
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
      rereading_pending_ = false;
      return 0;
    }
    pending_cursor_ = std::string((*entries)[entries->size() - 1][0].str());
    SLUICE_ASSIGN_OR_RETURN(Deliveries deliveries, DeliveriesOf(*entries, c_.consumer));
    return Take(ValueEntries{*entries}, false, deliveries);
  }

  // Phase 2: new entries (">"). Up to kReadDepth reads are in flight on client_, each for a
  // share of the room in the batch, so that Redis prepares the next reply while this thread
  // decodes one; what is requested never exceeds the room (`left`). A full batch leaves the
  // next batch's reads in flight (Buffered); otherwise Next receives every read it sent
  // before it returns, so that a claim finds none in flight.
  Status SendReads(int64_t left) {
    const int64_t share = std::max<int64_t>(1, (c_.batch_rows + 3) / 4);
    while (static_cast<int>(counts_.size()) < kReadDepth && requested_ < left) {
      const int64_t count = std::min(share, left - requested_);
      const std::string n = std::to_string(count);
      SLUICE_RETURN_NOT_OK(
          Lost(client_->Append({"XREADGROUP", "GROUP", c_.group, c_.consumer, "BLOCK", block_ms_,
                                "COUNT", n, "STREAMS", c_.stream, ">"})));
      if (reading_pending_) return Status::OK();  // the connection was lost
      counts_.push_back(count);
      requested_ += count;
    }
    return Lost(client_->Send());
  }

  bool MaySendReads() const {
    return !reading_pending_ && !ctx_->stopping() && SteadyMicros() < next_claim_us_;
  }

  Result<size_t> ReadNew(int64_t left) {
    if (MaySendReads()) SLUICE_RETURN_NOT_OK(SendReads(left));
    if (counts_.empty()) return 0;
    SLUICE_RETURN_NOT_OK(Lost(client_->ReplyFlat(&flat_)));
    if (reading_pending_) return 0;
    requested_ -= counts_.front();
    counts_.pop_front();
    SLUICE_RETURN_NOT_OK(client_->ReplyError(flat_, "XREADGROUP"));
    SLUICE_RETURN_NOT_OK(flat_entries_.Index(flat_));
    return Take(flat_entries_, false);
  }

  // After a connection-level failure of a pipelined read (the client dropped the connection and
  // every read on it): OK, and this consumer's pending entries are read again from the start —
  // what the lost reads delivered is pending here — skipping those already held, once
  // ReadPending has reconnected (with backoff). Any other error is returned.
  Status Lost(const Status& st) {
    if (st.ok()) return st;
    if (!st.IsRetryable()) return st.WithContext("stream '{}': XREADGROUP", c_.stream);
    counts_.clear();
    requested_ = 0;
    reading_pending_ = true;
    rereading_pending_ = true;
    pending_cursor_.clear();  // "0": from the start (GCC 12 warns wrongly on = "0" here)
    pending_cursor_.push_back('0');
    ctx_->stats()->AddCounter("reads_lost", 1);
    return Status::OK();
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
      SLUICE_ASSIGN_OR_RETURN(got, Take(ValueEntries{reply[1]}, true, deliveries));
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
    // On the ack connection (reads may be in flight on the other), once its XACKs are answered.
    while (!acking_.empty()) SLUICE_RETURN_NOT_OK(ConfirmOldestAck());
    SLUICE_ASSIGN_OR_RETURN(RedisReply reply, ack_client_->WithRetry([&] {
      return ack_client_->Command({"XINFO", "GROUPS", c_.stream});
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
  const std::string block_ms_ = std::to_string(std::max<int64_t>(1, c_.block_us / 1000));
  const std::string batch_rows_ = std::to_string(c_.batch_rows);
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
  IdList ids_;                                      // the batch being built
  InFlight in_flight_;                              // handed out, not yet committed or abandoned
  std::unique_ptr<RedisClient> ack_client_;         // XACK, XINFO (acks confirmed first)
  std::deque<std::pair<uint64_t, IdList>> acking_;  // XACK sent, reply not yet read
  std::deque<int64_t> counts_;                      // COUNT of each XREADGROUP > awaiting its reply
  int64_t requested_ = 0;
  FlatReply flat_;                  // the last reply to a read of new entries, as tokens
  FlatEntries flat_entries_;        // its entries
  int64_t reconnects_counted_ = 0;  // of both clients, in the node's counters so far // their sum
  bool rereading_pending_ = false;  // own pending again, after a lost connection
};
}  // namespace

std::unique_ptr<Source> NewStreamSource(SourceConfig config) {
  return std::unique_ptr<Source>(new StreamSource(std::move(config)));
}

}  // namespace sluice::redis
