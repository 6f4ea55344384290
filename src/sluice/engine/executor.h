#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/core/memory_budget.h"
#include "sluice/engine/ack.h"
#include "sluice/engine/channel.h"
#include "sluice/engine/partition.h"
#include "sluice/engine/pipeline.h"

namespace sluice {

/// How to run a pipeline, beyond what its file says.
struct RunOptions {
  bool dry_run = false;
  /// Set asynchronously (the second SIGINT/SIGTERM) to cancel the run at once: what is in
  /// flight is abandoned (a rerun delivers it again); may be null.
  const std::atomic<bool>* interrupt = nullptr;
  /// Set asynchronously (the first SIGINT/SIGTERM) to stop gracefully: the sources end as if
  /// their input had ended, and what is in flight is finished, flushed and committed; may be
  /// null.
  const std::atomic<bool>* stop = nullptr;
  /// Stop gracefully once every source has answered "nothing yet" for this long (µs; 0: never).
  int64_t until_idle_us = 0;
  /// How often the run looks at `stop`, `interrupt` and until_idle_us (µs): signal handlers
  /// set the flags and cannot wake a thread, so a thread polls them. A long-lived process
  /// that idles most of the time (sluice agent) polls less often to wake the host less.
  int64_t watch_interval_us = 20'000;
  /// The clock of node timers (NodeContext::clock); null: the system's steady clock.
  Clock* clock = nullptr;
  /// Record the per-batch histograms (latency, rows). Off only to measure their own cost.
  bool histograms = true;
};

/// One execution of a built pipeline. Create, call Execute() once, then read the stats.
/// The node objects of the pipeline are used by this run only.
class PipelineRun {
 public:
  PipelineRun(Pipeline* pipeline, RunOptions options);
  ~PipelineRun();
  PipelineRun(const PipelineRun&) = delete;
  PipelineRun& operator=(const PipelineRun&) = delete;

  /// Open every node, run the pipeline to completion with the executor the settings name, and
  /// close every node. Return the first error; a run stopped by `interrupt` returns kCancelled.
  Status Execute();

  /// Stop the run because of `why` (the first call wins). Thread-safe.
  void Cancel(const Status& why);
  bool cancelled() const { return cancelled_.load(std::memory_order_acquire); }
  /// End the run gracefully because of `why` ("signal", "until-idle"; the first call wins):
  /// sources stop asking for batches, and the rest of the pipeline drains as at the end of
  /// its input. Execute() then returns OK unless something failed. Thread-safe.
  void Stop(const std::string& why);
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  /// Why the run was stopped, or "" when it was not.
  std::string stop_reason() const;

  Pipeline* pipeline() const { return pipeline_; }
  /// Per-node counters, indexed like pipeline()->nodes(). Safe to read while running.
  NodeStats& stats(size_t node) { return *stats_[node]; }
  const MemoryBudget& budget() const { return budget_; }
  /// Return the current depth of a node's input queue (0 for sources).
  size_t QueueDepth(size_t node) const;
  /// Return µs since Execute() started (or its total duration once finished).
  int64_t ElapsedMicros() const;
  bool finished() const { return finished_.load(std::memory_order_acquire); }
  /// The process's resident memory when Execute() started and when it returned (bytes).
  int64_t rss_start_bytes() const { return rss_start_bytes_; }
  int64_t rss_end_bytes() const { return rss_end_bytes_; }
  /// Return the rows sources expect to produce in total, or -1 when any is unknown.
  int64_t EstimatedRows() const;

 private:
  class TransformEmitter;
  struct Reorderer;

  Status OpenNodes();
  Status CloseNodes();
  Status ExecuteParallel();
  Status ExecuteSequential();

  // Shared by both executors.
  void RunSourceLoop(size_t node, bool sequential);
  void SettleAcks(size_t node, int max_wait_ms, std::vector<uint64_t>* pending);
  void FinishSourceAcks(size_t node, std::vector<uint64_t>* pending);
  void WaitForInFlightRoom(size_t node, bool sequential, std::vector<uint64_t>* pending);

  // Watermarks (see docs/ARCHITECTURE.md, "Time").
  bool PassSourceWatermark(size_t node, bool sequential, int64_t* last);
  bool ForwardWatermark(size_t node, int64_t watermark);
  bool DrainInOrder(size_t node, uint64_t seq, std::vector<Message> outputs);
  bool TransformWatermark(size_t node, int instance, const Message& marker,
                          std::vector<int64_t>* own_wm, int64_t* own_min);

  // Parallel executor.
  bool PushDownstream(size_t node, Message m);
  // Count `m` in `node`'s output stats (rows of its output 0).
  void CountOut(size_t node, const Message& m);
  // Push `m` (counted already) to the consumers of the output it left on, except those in
  // segment `skip_segment` (-1: none), or only to `node`'s output `only_output` (>= 0);
  // return false when cancelled.
  bool PushOut(size_t node, Message m, int skip_segment, int only_output = -1);
  void RunTransformInstance(size_t node, int instance);
  void RunSink(size_t node);
  void NodeInstanceDone(size_t node);
  void AcquireSlot();
  void ReleaseSlot();

  // Deliver `m` into `node` and everything downstream, depth first, on the calling thread: the
  // sequential executor (every node), a segment's worker (the segment's members; what leaves
  // goes to scope->exits). EmitInline sends what `node` emitted.
  struct InlineScope;
  Status DeliverInline(size_t node, Message m, InlineScope* scope);
  Status EmitInline(size_t node, Message m, InlineScope* scope);
  Status EmitSequential(size_t node, Message m) {
    return EmitInline(node, std::move(m), sequential_scope_.get());
  }

  // Segments (parallel executor): `workers` threads per segment, each taking the batches of
  // the head's channel through every member (engine/segment.h).
  struct SegmentState;
  struct SegmentExit;
  void RunSegmentWorker(size_t segment, int worker);
  // Wait while batch `seq` is too far ahead of the oldest not yet drained (what waits in the
  // drain is bounded); false when cancelled.
  bool WaitForTurn(size_t segment, uint64_t seq);
  // The source feeding `segment` found its head's queue full (Segment::source_runs): take `m`
  // (numbered by the channel) through the segment on this thread, as the members' instance
  // `instance` (-1: the source's, the last); false when cancelled.
  bool RunClaimed(size_t segment, Message m, int instance = -1);
  // A segment with no threads of its own (one worker: the source's): number `m` and take it
  // through at once, a batch by RunClaimed, a watermark in its turn; false when cancelled.
  bool RunOnSource(size_t segment, Message m);
  // Pass on what batch `seq` of the head's input made (`exits`) once everything before it
  // has been; return false when cancelled.
  bool DrainSegment(size_t segment, uint64_t seq, std::vector<SegmentExit> exits);
  // A worker's batch whose turn has come (everything before it has left the segment): pass on
  // what it has emitted so far (scope->exits) now, as the sequential executor would, so that
  // its outputs do not all wait for the end of the batch; false when cancelled.
  bool PassExitsInTurn(InlineScope* scope);
  // A source read by every worker of `segment` (Segment::source_reads): worker `worker` reads
  // a batch, takes it through the segment, and again until the source ends (executor_scan.cc).
  struct ScanState;
  void RunScanWorker(size_t segment, int worker);
  // The source's thread: read with the segment's workers, then settle the acks and close.
  void RunSourceScan(size_t node);
  // Write `m` to sink `node` on this thread (Sink::WritesInline), one writer at a time, counting
  // it as the sink's own thread would; false when cancelled or the write failed.
  bool WriteInline(size_t node, Message m);
  // Count `m` into sink `node`'s stats and Write it; on failure fail its acks and cancel the run.
  // The one way a batch reaches a sink, from its thread (RunSink) or a segment (WriteInline).
  bool WriteToSink(size_t node, Message* m);
  // Return `st` naming node `node` ("node 'id' (type)"), unless it already names a node.
  Status WithNode(size_t node, const Status& st) const;
  // Raise the head's input watermark to the marker's and pass on each member's that rose.
  bool SegmentWatermark(size_t segment, const Message& marker);
  // Once every worker has ended: Finish every member's instances, mark them done.
  void FinishSegment(size_t segment);
  // Run the timers of transforms and sinks that are due, in topological order.
  void RunDueTimersSequential();

  // Timers (both executors). A node loop's view of its timer: when it next fires.
  struct TimerState {
    int64_t generation = 0;  // of the NodeContext::TimerSetting it follows
    int64_t next_due = -1;   // -1: no timer
  };
  // Return true, moving `*state` on, when `ctx`'s timer is due at `now`.
  static bool TimerDue(const NodeContext& ctx, int64_t now, TimerState* state);
  // Return how long a node loop may wait for input before its timer is due (ms, 1..50), or
  // kIdleWaitMs without a timer (a sink is woken for a flush: RequestSinkFlush).
  static int WaitMs(int64_t now, const TimerState& state);
  static constexpr int kIdleWaitMs = 1000;
  // Ask every idle sink to flush (a source waits at its in-flight limit for acks a sink may
  // hold until it flushes), and wake those waiting for input.
  void RequestSinkFlush();
  // Call a transform instance's OnTimer, its output pushed downstream (or, `sequential`,
  // delivered depth first).
  Status FireTransformTimer(size_t node, int instance, int64_t now, bool sequential);

  Pipeline* pipeline_;
  RunOptions options_;
  std::atomic<bool> cancel_started_{false};  // Cancel's once-flag
  std::atomic<bool> cancelled_{false};       // set once the ack queues are cancelled
  std::atomic<bool> stopping_{false};
  StopSignal stop_signal_;   // notified by Stop and Cancel, for NodeContext::WaitUnlessStopping
  std::string stop_reason_;  // guarded by error_mu_
  // For until_idle_us, per node: since when (µs since start_) a source's calls have answered
  // "nothing yet" (INT64_MIN once it has ended); -1 while its last call returned rows, or
  // before its first. A source busy for long in one call, or held back by backpressure, is not
  // idle; only sources that keep finding nothing are.
  std::unique_ptr<std::atomic<int64_t>[]> idle_since_us_;
  // Per node: since when a source's current Next call has run (-1: not in a call). A call that
  // has run for the idle time is busy (reconnecting, a slow query), whatever came before.
  std::unique_ptr<std::atomic<int64_t>[]> in_call_since_us_;
  // Return true when every source has found nothing for at least until_idle_us.
  bool SourcesIdle() const;
  std::atomic<bool> finished_{false};
  mutable std::mutex error_mu_;
  Status first_error_;  // guarded by error_mu_
  MemoryBudget budget_;
  int channel_count_ = 0;  // input queues of the pipeline (a keyed node has one per instance)
  std::vector<std::unique_ptr<NodeStats>> stats_;
  std::vector<std::unique_ptr<NodeContext>> contexts_;  // one per node instance, see ctx_index_
  std::vector<std::vector<NodeContext*>> node_contexts_;
  std::vector<std::shared_ptr<AckQueue>> ack_queues_;  // per node; used by sources
  // Per node: its input channel (none for sources), or with partition_by one per instance.
  std::vector<std::vector<std::unique_ptr<Channel>>> channels_;
  std::vector<std::unique_ptr<KeyPartitioner>> partitioners_;  // per node; null if not keyed
  std::vector<std::unique_ptr<Reorderer>> reorderers_;
  std::vector<std::unique_ptr<std::atomic<int>>> live_instances_;
  std::vector<std::vector<uint64_t>> sequential_pending_;      // per source, sequential executor
  std::vector<TimerState> sequential_timers_;                  // per node, sequential executor
  std::unique_ptr<InlineScope> sequential_scope_;              // sequential executor
  std::vector<std::unique_ptr<SegmentState>> segment_states_;  // per Pipeline::segments()
  std::vector<std::unique_ptr<ScanState>> scans_;  // per node: a source read by its segment
  // Per node: for a sink a segment writes itself (Sink::WritesInline), the lock its writes take.
  std::vector<std::unique_ptr<std::mutex>> inline_sinks_;
  Clock* clock_;
  // Raised by a source waiting at its MaxInFlight limit; idle sinks flush when it changes.
  std::atomic<int64_t> flush_generation_{0};
  std::chrono::steady_clock::time_point start_;
  int64_t rss_start_bytes_ = 0;
  int64_t rss_end_bytes_ = 0;
  std::atomic<int64_t> elapsed_us_{0};
  // max_parallel_nodes: a counting gate (0 = unlimited).
  std::mutex slot_mu_;
  std::condition_variable slot_cv_;
  // `after:` — a source starts once the nodes it names are done (parallel executor).
  void MarkDone(size_t node);
  void WaitForAfter(size_t node);  // returns at once when cancelled
  std::mutex done_mu_;
  std::condition_variable done_cv_;
  std::vector<int> done_instances_;  // per node: instances (threads) that ended
  int free_slots_ = 0;               // guarded by slot_mu_
};

/// Return the process's peak resident set size in bytes (VmHWM), or 0 if unknown.
int64_t PeakRssBytes();
/// Return the process's current resident set size in bytes (VmRSS), or 0 if unknown.
int64_t CurrentRssBytes();

}  // namespace sluice
