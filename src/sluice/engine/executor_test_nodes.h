#pragma once

// Test nodes of the engine's tests (executor_test.cc, segment_test.cc, executor_scan_test.cc): a
// journaling source and a counting one, a recording sink, and transforms that note what they saw
// in a shared Journal; and JournalTest, a fixture that runs pipelines of them.

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <gtest/gtest.h>

#include "sluice/engine/executor.h"

namespace sluice::executor_test {

/// One step a test node took, in the order the nodes took them (under Journal::mu).
struct Event {
  enum class Kind { kHold, kFlush, kCommit };
  Kind kind;
  int64_t first_id;  // kHold: first id of the batch a sink holds; kCommit: of the committed batch
};

/// Shared record of what the test nodes saw, keyed by node id.
struct Journal {
  std::mutex mu;
  std::map<std::string, std::vector<int64_t>> rows;     // sink id -> ids written (durable)
  std::map<std::string, std::set<uint64_t>> committed;  // source id -> seqs committed
  std::map<std::string, std::set<uint64_t>> abandoned;
  std::vector<Event> events;                          // holds, flushes and commits, in order
  std::map<int64_t, std::set<int>> owners;            // key -> instances that saw it
  std::map<int64_t, std::vector<int64_t>> key_order;  // key -> its ids, in the order seen
};
inline Journal* g_journal = nullptr;

inline SchemaPtr IdSchema() { return MakeSchema({{"id", TypeId::kInt64}}); }

/// A batch of the ids start .. end - 1.
inline BatchPtr IdBatch(int64_t start, int64_t end) {
  ColumnBuilder b(TypeId::kInt64);
  for (int64_t i = start; i < end; ++i) b.AppendInt64(i);
  return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, end - start);
}

/// A source of `rows` ids that notes in g_journal the batches committed and abandoned.
class JournalingSource : public Source {
 public:
  JournalingSource(std::string id, int64_t rows) : id_(std::move(id)), rows_(rows) {}
  Status Commit(uint64_t seq) override {
    std::lock_guard l(g_journal->mu);
    g_journal->committed[id_].insert(seq);
    return Status::OK();
  }
  void Abandon(uint64_t seq) override {
    std::lock_guard l(g_journal->mu);
    g_journal->abandoned[id_].insert(seq);
  }
  SchemaPtr schema() const override { return IdSchema(); }
  int64_t EstimatedRows() const override { return rows_; }

 protected:
  const std::string id_;
  const int64_t rows_;
};

/// Emits `rows` ids in batches of `batch` rows.
class CountingSource : public JournalingSource {
 public:
  CountingSource(std::string id, int64_t rows, int64_t batch, int max_in_flight = 0,
                 bool quiet = false, bool watermarks = false)
      : JournalingSource(std::move(id), rows),
        batch_(batch),
        max_in_flight_(max_in_flight),
        quiet_(quiet),
        watermarks_(watermarks) {}
  int MaxInFlight() const override { return max_in_flight_; }
  // Ids are event times: every id below the next one was emitted.
  int64_t Watermark() const override { return watermarks_ ? next_ : INT64_MIN; }
  Result<BatchPtr> Next(uint64_t seq) override {
    if (next_ >= rows_ && quiet_) {
      // A stream with nothing new: "nothing yet" (an empty batch) after a short wait.
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return Batch::MakeUnchecked(IdSchema(), {ColumnBuilder(TypeId::kInt64).Finish()}, 0);
    }
    if (next_ >= rows_) return BatchPtr{};
    const int64_t start = next_;
    next_ = std::min(rows_, next_ + batch_);
    first_id_[seq] = start;
    return IdBatch(start, next_);
  }
  Status Commit(uint64_t seq) override {
    if (!first_id_.count(seq)) return Status::OK();  // an empty batch, settled at once
    std::lock_guard l(g_journal->mu);
    g_journal->committed[id_].insert(seq);
    g_journal->events.push_back({Event::Kind::kCommit, first_id_.at(seq)});
    return Status::OK();
  }

 private:
  int64_t batch_, next_ = 0;
  int max_in_flight_;
  bool quiet_;  // after its rows: empty batches forever instead of the end
  bool watermarks_;
  std::map<uint64_t, int64_t> first_id_;  // seq -> first id of its batch (source thread only)
};

/// Adds `add` to every id; burns a little CPU so parallel instances interleave.
class AddTransform : public Transform {
 public:
  explicit AddTransform(int64_t add) : add_(add) {}
  Status Process(const BatchPtr& in, int, Emitter* out) override {
    ColumnBuilder b(TypeId::kInt64);
    for (int64_t i = 0; i < in->num_rows(); ++i) b.AppendInt64(in->column(0).GetInt64(i) + add_);
    return out->Emit(Batch::MakeUnchecked(IdSchema(), {b.Finish()}, in->num_rows()));
  }
  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& in) override { return in[0]; }

 private:
  int64_t add_;
};

/// Records rows; fails on batch number `fail_at` (0-based) when >= 0; may hold acks until Flush.
class RecordingSink : public Sink {
 public:
  RecordingSink(std::string id, int64_t fail_at, bool hold)
      : id_(std::move(id)), fail_at_(fail_at), hold_(hold) {}
  Status Write(const BatchPtr& batch, AckSet acks) override {
    if (batches_++ == fail_at_) return Status::IOError("disk full (injected)");
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < batch->num_rows(); ++i) ids.push_back(batch->column(0).GetInt64(i));
    if (hold_) {
      if (!ids.empty()) {
        std::lock_guard l(g_journal->mu);
        g_journal->events.push_back({Event::Kind::kHold, ids.front()});
      }
      held_rows_.insert(held_rows_.end(), ids.begin(), ids.end());
      held_.push_back(std::move(acks));
      return Status::OK();
    }
    std::lock_guard l(g_journal->mu);
    auto& v = g_journal->rows[id_];
    v.insert(v.end(), ids.begin(), ids.end());
    return Status::OK();
  }
  Status Flush() override {
    {
      std::lock_guard l(g_journal->mu);
      auto& v = g_journal->rows[id_];
      v.insert(v.end(), held_rows_.begin(), held_rows_.end());
      g_journal->events.push_back({Event::Kind::kFlush, -1});
    }
    held_rows_.clear();
    held_.clear();  // releases the acks: only now may the source commit these batches
    return Status::OK();
  }

 private:
  std::string id_;
  int64_t fail_at_;
  bool hold_;
  int64_t batches_ = 0;
  std::vector<int64_t> held_rows_;
  std::vector<AckSet> held_;
};

/// A stateful transform: notes which instance saw each key (id % 7) and in which order, and
/// passes rows on.
class OwnerTransform : public Transform {
 public:
  Status Open(NodeContext* ctx) override {
    instance_ = ctx->instance();
    return Status::OK();
  }
  Status Process(const BatchPtr& in, int, Emitter* out) override {
    {
      std::lock_guard l(g_journal->mu);
      for (int64_t i = 0; i < in->num_rows(); ++i) {
        const int64_t id = in->column(0).GetInt64(i);
        g_journal->owners[id % 7].insert(instance_);
        g_journal->key_order[id % 7].push_back(id);
      }
    }
    return out->Emit(in);
  }
  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& in) override { return in[0]; }

 private:
  int instance_ = 0;
};

/// Checks event time against watermarks: records each watermark it is given (journal
/// "<id>.wm") and every row older than the watermark it had already been given ("<id>.late").
class WatermarkCheck : public Transform {
 public:
  explicit WatermarkCheck(std::string id) : id_(std::move(id)) {}
  Status Process(const BatchPtr& in, int, Emitter* out) override {
    {
      std::lock_guard l(g_journal->mu);
      for (int64_t i = 0; i < in->num_rows(); ++i) {
        if (in->column(0).GetInt64(i) < wm_) g_journal->rows[id_ + ".late"].push_back(i);
      }
    }
    return out->Emit(in);  // not under the lock: it may wait for the sink, which takes it
  }
  Status OnWatermark(int64_t watermark, Emitter*) override {
    wm_ = watermark;
    std::lock_guard l(g_journal->mu);
    g_journal->rows[id_ + ".wm"].push_back(watermark);
    return Status::OK();
  }
  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& in) override { return in[0]; }

 private:
  std::string id_;
  int64_t wm_ = INT64_MIN;
};

/// Emits one row holding the clock's time at every tick of its timer (100 ms).
class TickTransform : public Transform {
 public:
  Status Open(NodeContext* ctx) override {
    ctx->SetTimer(100'000);
    std::lock_guard l(g_journal->mu);
    g_journal->rows["opened"].push_back(1);
    return Status::OK();
  }
  Status Process(const BatchPtr&, int, Emitter*) override { return Status::OK(); }
  Status OnTimer(int64_t now_us, Emitter* out) override {
    ColumnBuilder b(TypeId::kInt64);
    b.AppendInt64(now_us);
    return out->Emit(Batch::MakeUnchecked(IdSchema(), {b.Finish()}, 1));
  }
};

/// Records its timer's ticks (every 250 ms) in the journal under "<id>.ticks".
class TickSink : public Sink {
 public:
  explicit TickSink(std::string id) : id_(std::move(id)) {}
  Status Open(NodeContext* ctx) override {
    ctx->SetTimer(250'000);
    std::lock_guard l(g_journal->mu);
    g_journal->rows["opened"].push_back(2);
    return Status::OK();
  }
  Status Write(const BatchPtr& batch, AckSet) override {
    std::lock_guard l(g_journal->mu);
    auto& v = g_journal->rows[id_];
    for (int64_t i = 0; i < batch->num_rows(); ++i) v.push_back(batch->column(0).GetInt64(i));
    return Status::OK();
  }
  Status OnTimer(int64_t now_us) override {
    std::lock_guard l(g_journal->mu);
    g_journal->rows[id_ + ".ticks"].push_back(now_us);
    return Status::OK();
  }

 private:
  std::string id_;
};

/// A batch-local transform (fused into segments): adds `add` to every id, after a random pause of
/// up to `jitter_us` per batch (so that workers finish out of order); sends the rows whose id is
/// a multiple of `reject_mod` (when > 0) to its dead-letter output; fails the batch holding id
/// `fail_at` (when >= 0); sleeps `stall_ms` on the batch holding id `stall_at` (when >= 0), less
/// once the run stops or is cancelled.
class LocalAddTransform : public Transform {
 public:
  LocalAddTransform(int64_t add, int64_t jitter_us, int64_t reject_mod, int64_t fail_at,
                    int64_t stall_at = -1, int64_t stall_ms = 0, std::string await = "")
      : add_(add),
        jitter_us_(jitter_us),
        reject_mod_(reject_mod),
        fail_at_(fail_at),
        stall_at_(stall_at),
        stall_ms_(stall_ms),
        await_(std::move(await)) {}
  bool BatchLocal() const override { return true; }
  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    rng_state_ = 0x9e3779b97f4a7c15ULL * static_cast<uint64_t>(ctx->instance() + 1);
    return Status::OK();
  }
  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& in) override { return in[0]; }
  Status Process(const BatchPtr& in, int, Emitter* out) override {
    if (!await_.empty() && in->num_rows() > 0) {
      // Wait (5 s at most) for sink `await_` to have written this batch's first id.
      const int64_t first = in->column(0).GetInt64(0);
      for (int i = 0; i < 5000; ++i) {
        {
          std::lock_guard l(g_journal->mu);
          const auto& v = g_journal->rows[await_];
          if (std::find(v.begin(), v.end(), first) != v.end()) break;
        }
        if (i == 4999) return Status::Internal("'{}' never got id {}", await_, first);
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    }
    if (jitter_us_ > 0) {
      rng_state_ = rng_state_ * 6364136223846793005ULL + 1442695040888963407ULL;
      const auto pause =
          static_cast<int64_t>((rng_state_ >> 33) % static_cast<uint64_t>(jitter_us_));
      std::this_thread::sleep_for(std::chrono::microseconds(pause));
    }
    ColumnBuilder b(TypeId::kInt64);
    for (int64_t i = 0; i < in->num_rows(); ++i) {
      const int64_t id = in->column(0).GetInt64(i);
      if (id == fail_at_) return Status::IOError("id {} is cursed (injected)", id);
      if (id == stall_at_) ctx_->WaitUnlessStopping(stall_ms_ * 1000);
      if (reject_mod_ > 0 && id % reject_mod_ == 0) {
        ctx_->DeadLetter("row", "a multiple of " + std::to_string(reject_mod_), std::to_string(id));
        continue;
      }
      b.AppendInt64(id + add_);
    }
    const int64_t rows = b.length();
    return out->Emit(Batch::MakeUnchecked(IdSchema(), {b.Finish()}, rows));
  }

 private:
  int64_t add_, jitter_us_, reject_mod_, fail_at_, stall_at_, stall_ms_;
  std::string await_;
  NodeContext* ctx_ = nullptr;
  uint64_t rng_state_ = 0;
};

inline NodeRegistry TestRegistry() {
  NodeRegistry r;
  r.AddSource("count", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new CountingSource(
        o.id(), o.GetInt("rows"), o.GetInt("batch"), static_cast<int>(o.GetInt("max_in_flight")),
        o.Has("quiet") && o.GetBool("quiet"), o.Has("watermarks") && o.GetBool("watermarks")));
  });
  r.AddTransform(
      "add", "test", {},
      [](const NodeOptions& o) -> Result<std::unique_ptr<Transform>> {
        return std::unique_ptr<Transform>(new AddTransform(o.GetInt("add")));
      },
      /*stateless=*/true);
  r.AddTransform(
      "merge", "test", {},
      [](const NodeOptions& o) -> Result<std::unique_ptr<Transform>> {
        return std::unique_ptr<Transform>(new AddTransform(0));
      },
      /*stateless=*/true, 1, -1);
  r.AddTransform(
      "local_add", "test", {},
      [](const NodeOptions& o) -> Result<std::unique_ptr<Transform>> {
        const auto get = [&](const char* k, int64_t d) { return o.Has(k) ? o.GetInt(k) : d; };
        return std::unique_ptr<Transform>(new LocalAddTransform(
            get("add", 0), get("jitter_us", 0), get("reject_mod", 0), get("fail_at", -1),
            get("stall_at", -1), get("stall_ms", 0), o.Has("await") ? o.GetString("await") : ""));
      },
      /*stateless=*/true, 1, -1);
  r.AddTransform(
      "tick", "test", {},
      [](const NodeOptions&) -> Result<std::unique_ptr<Transform>> {
        return std::unique_ptr<Transform>(new TickTransform());
      },
      /*stateless=*/false);
  r.AddTransform(
      "own", "test", {},
      [](const NodeOptions&) -> Result<std::unique_ptr<Transform>> {
        return std::unique_ptr<Transform>(new OwnerTransform());
      },
      /*stateless=*/false);
  r.AddTransform(
      "wmcheck", "test", {},
      [](const NodeOptions& o) -> Result<std::unique_ptr<Transform>> {
        return std::unique_ptr<Transform>(new WatermarkCheck(o.id()));
      },
      /*stateless=*/false, 1, -1);
  r.AddSink("tick_sink", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new TickSink(o.id()));
  });
  r.AddSink("record", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(
        new RecordingSink(o.id(), o.Has("fail_at") ? o.GetInt("fail_at") : -1, o.GetBool("hold")));
  });
  return r;
}

/// A fixture for pipelines of test nodes: the journal they write to, the registry they come
/// from, and the last run, kept for its stats.
class JournalTest : public ::testing::Test {
 protected:
  explicit JournalTest(NodeRegistry registry) : registry_(std::move(registry)) {}
  void SetUp() override { g_journal = &journal_; }
  void TearDown() override { g_journal = nullptr; }

  Result<std::unique_ptr<Pipeline>> Build(std::vector<NodeSpec> nodes, int workers,
                                          EngineKind engine = EngineKind::kParallel,
                                          int max_parallel_nodes = 0) {
    PipelineSpec spec;
    spec.name = "test";
    spec.file = "test.yaml";
    spec.settings.engine = engine;
    spec.settings.workers = workers;
    spec.settings.max_parallel_nodes = max_parallel_nodes;
    spec.nodes = std::move(nodes);
    return Pipeline::Build(std::move(spec), registry_);
  }

  /// Run `nodes` with `workers` per segment; keep the run for its stats.
  Status Run(std::vector<NodeSpec> nodes, int workers, EngineKind engine = EngineKind::kParallel,
             int max_parallel_nodes = 0) {
    auto p = Build(std::move(nodes), workers, engine, max_parallel_nodes);
    if (!p.ok()) return p.status();
    pipeline_ = std::move(*p);
    run_ = std::make_unique<PipelineRun>(pipeline_.get(), RunOptions{});
    return run_->Execute();
  }

  /// Return the last run's stats of node `id`.
  NodeStats& Stats(const std::string& id) {
    const auto& nodes = pipeline_->nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].spec.id == id) return run_->stats(i);
    }
    ADD_FAILURE() << "no node " << id;
    return run_->stats(0);
  }

  /// Return {0, ..., n - 1}: the seqs of a source's first n batches.
  static std::set<uint64_t> Seqs(uint64_t n) {
    std::set<uint64_t> s;
    for (uint64_t i = 0; i < n; ++i) s.insert(i);
    return s;
  }

  Journal journal_;
  NodeRegistry registry_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<PipelineRun> run_;
};

}  // namespace sluice::executor_test
