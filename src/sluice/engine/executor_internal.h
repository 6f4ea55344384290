#pragma once

// What the executor's files share (executor.cc: construction, the parallel and sequential
// executors; executor_sources.cc: source loops and acks; executor_time.cc: timers and
// watermarks). Private to engine/.

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <vector>

#include "sluice/engine/executor.h"

namespace sluice {
namespace executor_internal {

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

/// Measures busy time of a node call into its stats; a call that handles one batch also goes
/// into the node's batch-latency histogram.
class BusyTimer {
 public:
  enum Kind { kOther, kBatch };
  explicit BusyTimer(NodeStats* stats, Kind kind = kOther)
      : stats_(stats), kind_(kind), start_(NowNs()) {}
  ~BusyTimer() {
    if (waited_) return;
    const int64_t elapsed = NowNs() - start_;
    stats_->busy_ns.fetch_add(elapsed, std::memory_order_relaxed);
    if (kind_ == kBatch && stats_->histograms) stats_->batch_latency.Record(elapsed);
  }
  /// The call only waited (a stream's Next that found nothing yet): not busy time.
  void Waited() { waited_ = true; }

 private:
  bool waited_ = false;
  NodeStats* stats_;
  Kind kind_;
  int64_t start_;
};

/// Raise `(*wm)[input]` to `watermark` and return the smallest over every input.
inline int64_t RaiseInput(std::vector<int64_t>* wm, int input, int64_t watermark) {
  int64_t& w = (*wm)[static_cast<size_t>(input)];
  w = std::max(w, watermark);
  return *std::min_element(wm->begin(), wm->end());
}

/// Return the message that carries a node's dead letters `dead` on its dead_letter output, with
/// the acks and lease of what the node was handling, and count them in its stats.
inline Message DeadLetterMessage(NodeStats* stats, BatchPtr dead, AckSet acks,
                                 std::shared_ptr<MemoryLease> lease) {
  stats->AddCounter("dead_letter_records", dead->num_rows());
  Message m;
  m.batch = std::move(dead);
  m.port = kDeadLetterOutput;
  m.acks = std::move(acks);
  m.lease = std::move(lease);
  return m;
}

/// Return the index of the last of `n`'s outputs for which `goes` holds — the one a message is
/// moved to rather than copied — or n.outputs.size() when none does.
template <typename Goes>
size_t LastOutput(const PipelineNode& n, Goes goes) {
  for (size_t k = n.outputs.size(); k-- > 0;) {
    if (goes(k)) return k;
  }
  return n.outputs.size();
}

}  // namespace executor_internal

/// Restores input order after a transform ran on several instances at once.
struct PipelineRun::Reorderer {
  std::mutex mu;
  uint64_t next = 0;                                 // guarded by mu
  std::map<uint64_t, std::vector<Message>> pending;  // guarded by mu
  // Watermarks, guarded by mu. Instances sharing one channel see each marker once, in pop
  // order after everything popped before it: the node keeps each input's watermark here.
  std::vector<int64_t> input_wm;
  std::vector<int64_t> instance_wm;  // keyed nodes: what each instance passed on
  int64_t forwarded = kNoWatermark;  // the node's output watermark so far
};

/// A message leaving a segment: from `node` to its output `output` (an index into
/// PipelineNode::outputs), or, for the head's watermark markers, -1.
struct PipelineRun::SegmentExit {
  size_t node;
  int output;
  Message message;
};

/// A thread delivering batches depth first (DeliverInline): the sequential executor, which
/// delivers into every node, or a segment's worker, which delivers into the segment's members
/// (their instance `instance`) and collects what leaves the segment.
struct PipelineRun::InlineScope {
  int segment = -1;  // -1: the sequential executor
  int instance = 0;
  // Time spent in deliveries so far, so that a transform's busy time leaves out the
  // downstream work its emits ran inline.
  int64_t delivered_ns = 0;
  // A segment's worker: what members emitted to nodes outside (or the head's watermark
  // markers), in the order the sequential executor would deliver it, for DrainSegment.
  std::vector<SegmentExit> exits;
  // A segment's worker: the number of the head's input it is taking through (-1: none, as in
  // Finish). Once everything before it has left the segment (its turn), what it emits leaves
  // at once (PassExitsInTurn) instead of waiting in `exits` for the whole batch.
  int64_t seq = -1;
};

/// A segment's shared state: its exits in the order of the head's input, and its watermarks.
struct PipelineRun::SegmentState {
  std::mutex mu;
  std::condition_variable behind;  // workers too far ahead of the drain wait here
  // The head's next input to drain: changed under mu; read without it by the worker whose
  // turn it may be (PassExitsInTurn).
  std::atomic<uint64_t> next{0};
  std::map<uint64_t, std::vector<SegmentExit>> pending;  // guarded by mu
  std::vector<int64_t> head_wm;  // guarded by mu: the head's inputs' watermarks
  std::atomic<int> live{0};      // workers still running
};

/// A source every worker of the segment it feeds reads itself (Segment::source_reads).
struct PipelineRun::ScanState {
  int segment = -1;
  std::mutex mu;
  std::condition_variable left;   // a reader left the loop
  uint64_t next_seq = 0;          // guarded by mu: the next batch to read
  bool ended = false;             // guarded by mu: the source ended, or the run is stopping
  int readers = 0;                // guarded by mu: workers still reading
  std::vector<uint64_t> pending;  // guarded by mu: batches handed out and not yet settled
};

/// Emitter for transforms: attaches the input's acks, lease and (to untagged outputs) tags to
/// outputs, and either pushes them downstream at once, collects them (ordered parallel), or
/// delivers them depth-first (sequential executor).
class PipelineRun::TransformEmitter final : public Emitter {
 public:
  enum class Mode { kPush, kCollect, kInline };
  TransformEmitter(PipelineRun* run, size_t node, Mode mode, int instance = 0,
                   InlineScope* scope = nullptr)
      : run_(run),
        node_(node),
        mode_(mode),
        ctx_(run->node_contexts_[node][static_cast<size_t>(instance)]),
        scope_(scope) {}

  void SetInput(const Message* input) { input_ = input; }
  std::vector<Message>& collected() { return collected_; }

  Status Emit(BatchPtr batch) override {
    AckSet acks = input_ != nullptr ? input_->acks : AckSet();
    return Emit(std::move(batch), std::move(acks));
  }
  Status Emit(BatchPtr batch, AckSet acks) override {
    if (batch == nullptr || batch->num_rows() == 0) return Status::OK();
    // The input's tags (database, table, ...) describe what the transform made of it too, so
    // a transform that builds new batches need not copy them itself.
    if (batch->tags().empty() && input_ != nullptr && !input_->batch->tags().empty()) {
      batch = batch->WithTags(input_->batch->tags());
    }
    Message m;
    m.batch = std::move(batch);
    m.acks = std::move(acks);
    if (input_ != nullptr) m.lease = input_->lease;
    return Send(std::move(m));
  }
  AckSet HoldAcks() override { return input_ != nullptr ? input_->acks : AckSet(); }
  Status EmitOn(int output, BatchPtr batch) override {
    if (batch == nullptr || batch->num_rows() == 0) return Status::OK();
    Message m;
    m.batch = std::move(batch);
    m.acks = input_ != nullptr ? input_->acks : AckSet();
    if (input_ != nullptr) m.lease = input_->lease;
    m.port = output;
    return Send(std::move(m));
  }

  /// Send what the node rejected during the call just made (NodeContext::DeadLetter) on its
  /// dead_letter output, with the acks of the input being processed. Call after every call
  /// into the transform.
  Status SendDeadLetters() {
    BatchPtr dead = ctx_->dead_letters()->Take();
    if (dead == nullptr) return Status::OK();
    return Send(executor_internal::DeadLetterMessage(ctx_->stats(), std::move(dead),
                                                     input_ != nullptr ? input_->acks : AckSet(),
                                                     input_ != nullptr ? input_->lease : nullptr));
  }

 private:
  Status Send(Message m) {
    switch (mode_) {
      case Mode::kCollect:
        collected_.push_back(std::move(m));
        return Status::OK();
      case Mode::kPush:
        if (!run_->PushDownstream(node_, std::move(m))) {
          return Status::Cancelled("run cancelled");
        }
        return Status::OK();
      case Mode::kInline:
        return run_->EmitInline(node_, std::move(m), scope_);
    }
    return Status::OK();
  }

  PipelineRun* run_;
  size_t node_;
  Mode mode_;
  NodeContext* ctx_;
  InlineScope* scope_;  // kInline
  const Message* input_ = nullptr;
  std::vector<Message> collected_;
};

}  // namespace sluice
