#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/memory_budget.h"
#include "sluice/core/result.h"
#include "sluice/engine/ack.h"
#include "sluice/engine/dead_letter.h"
#include "sluice/engine/node_stats.h"
#include "sluice/resilience/clock.h"

namespace sluice {

/// Wakes the nodes waiting in NodeContext::WaitUnlessStopping when the run stops or is
/// cancelled. Owned by the run; thread-safe.
class StopSignal {
 public:
  /// Wake every waiter; call after setting the flag they wait for.
  void Notify() {
    { std::lock_guard lock(mu_); }  // a waiter between its check and its wait sees the flag
    cv_.notify_all();
  }
  /// Block for up to `micros` µs of the steady clock, less once `done()` holds.
  template <typename Done>
  void WaitFor(int64_t micros, Done done) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::microseconds(micros), done);
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
};

/// What a node may use while it runs. Owned by the executor; outlives the node's Open..Close.
class NodeContext {
 public:
  NodeContext(std::string id, std::string type, NodeStats* stats,
              const std::atomic<bool>* cancelled, bool dry_run)
      : id_(std::move(id)),
        type_(std::move(type)),
        stats_(stats),
        cancelled_(cancelled),
        dry_run_(dry_run) {}

  const std::string& id() const { return id_; }
  const std::string& type() const { return type_; }
  NodeStats* stats() const { return stats_; }
  /// Return true once the run is being cancelled; long loops should check it.
  bool cancelled() const { return cancelled_->load(std::memory_order_acquire); }
  /// The flag behind cancelled(), for waits that take one (retries): they end when it is set.
  const std::atomic<bool>* cancelled_flag() const { return cancelled_; }
  /// Return true once the run is asked to stop gracefully (a signal, --until-idle): a source
  /// that waits for input should return soon; it is asked for no more batches after that.
  bool stopping() const {
    return stopping_ != nullptr && stopping_->load(std::memory_order_acquire);
  }
  void set_stopping(const std::atomic<bool>* stopping) { stopping_ = stopping; }
  /// Block for up to `micros` of the run's clock, less once the run is stopping or cancelled:
  /// a source waiting for its next input wakes for a stop without polling for it. On a clock
  /// other than the system's (a FakeClock in tests), or outside a run, sleep by clock().
  void WaitUnlessStopping(int64_t micros) {
    if (micros <= 0 || stopping() || cancelled()) return;
    if (stop_signal_ == nullptr || clock_ != SystemClock()) {
      clock_->SleepMicros(micros);
      return;
    }
    stop_signal_->WaitFor(micros, [&] { return stopping() || cancelled(); });
  }
  /// Wake WaitUnlessStopping through `signal` (not owned; the run notifies it).
  void set_stop_signal(StopSignal* signal) { stop_signal_ = signal; }
  /// The run's clock (a FakeClock in tests): timers and waits go by it.
  Clock* clock() const { return clock_; }
  void set_clock(Clock* clock) { clock_ = clock; }
  /// Ask to be called back (Transform::OnTimer, Sink::OnTimer) every `period_us` of the run's
  /// clock, with or without input; 0 turns it off. Call from Open or from the node's own calls.
  /// The first call comes one period after this call.
  void SetTimer(int64_t period_us) {
    std::lock_guard lock(timer_mu_);
    timer_ = {period_us, clock_->NowMicros(), timer_.generation + 1};
  }
  struct TimerSetting {
    int64_t period_us = 0;  ///< 0: no timer.
    int64_t set_at_us = 0;  ///< When SetTimer was called, by clock().
    int64_t generation = 0;
  };
  TimerSetting timer() const {
    std::lock_guard lock(timer_mu_);
    return timer_;
  }
  /// Return true under `sluice run --dry-run`: count and describe, touch nothing.
  bool dry_run() const { return dry_run_; }
  /// Which instance this is (0..parallelism-1), for transforms run in parallel.
  int instance() const { return instance_; }
  void set_instance(int i) { instance_ = i; }
  /// Send one record this node rejects to its dead_letter output (for a node configured with
  /// `on_error: dead_letter`): it goes downstream with the acks of the call in progress (Next,
  /// Process, ...), so its source data is settled only once the dead-letter sink has it.
  /// `position` says where it was (entry id, file:line), `record` what it held.
  void DeadLetter(std::string_view position, std::string_view error, std::string_view record) {
    dead_letters_.Add(id_, position, error, record);
  }
  /// What DeadLetter collected during the current call; the executor takes it afterwards.
  DeadLetters* dead_letters() { return &dead_letters_; }
  /// Count `delta` bytes (may be negative) of state this node keeps across calls — a window's
  /// open groups — against the run's memory budget (MemoryBudget::Hold); a node releases all
  /// of it by Close.
  void HoldMemory(int64_t delta) {
    if (memory_ != nullptr && delta != 0) memory_->Hold(delta);
  }
  /// The run's memory budget in bytes (settings.memory); 0: unlimited or none.
  int64_t memory_limit() const { return memory_ != nullptr ? memory_->limit() : 0; }
  void set_memory(MemoryBudget* memory) { memory_ = memory; }

 private:
  std::string id_;
  std::string type_;
  NodeStats* stats_;
  const std::atomic<bool>* cancelled_;
  const std::atomic<bool>* stopping_ = nullptr;
  StopSignal* stop_signal_ = nullptr;
  Clock* clock_ = SystemClock();
  mutable std::mutex timer_mu_;
  TimerSetting timer_;  // guarded by timer_mu_
  bool dry_run_;
  int instance_ = 0;
  DeadLetters dead_letters_;
  MemoryBudget* memory_ = nullptr;
};

/// Produce batches. Every method is called from the source's own thread.
class Source {
 public:
  virtual ~Source() = default;
  virtual Status Open(NodeContext* ctx) { return Status::OK(); }
  /// Return the next batch, which the engine numbers `seq` (0, 1, 2, ... in order), or
  /// nullptr at the end of the stream. Empty batches are allowed and skipped.
  virtual Result<BatchPtr> Next(uint64_t seq) = 0;
  /// Make batch `seq` final: every sink downstream has made it durable. Called in any order
  /// relative to other batches; a source whose commits must be ordered tracks that itself.
  virtual Status Commit(uint64_t seq) { return Status::OK(); }
  /// Give up batch `seq`: it will never be acknowledged (a sink failed or the run stopped).
  /// The source must leave its rows as if never read, so that a rerun delivers them again.
  virtual void Abandon(uint64_t seq) {}
  /// Release resources; called once, after every batch was committed or abandoned.
  virtual Status Close() { return Status::OK(); }
  /// Return the schema of the batches, if known before reading (for validation), else null.
  virtual SchemaPtr schema() const { return nullptr; }
  /// Return the number of rows expected in total, or -1 when unknown (drives the ETA).
  virtual int64_t EstimatedRows() const { return -1; }
  /// Return true when Commit() deletes or consumes what was read (archiving, queue acks). The
  /// pipeline then refuses row-dropping transforms downstream: rows they drop would count as
  /// done and be deleted without having been written anywhere.
  virtual bool ConsumesInput() const { return false; }
  /// Return the most batches this source may have handed out and not yet seen committed or
  /// abandoned (0: no limit). A source that holds a resource per batch until its ack — an open
  /// transaction, a lease — returns the size of that resource's pool. While the limit is
  /// reached the engine waits for acks instead of calling Next(), and asks sinks that hold
  /// acks (a file not yet rolled) to flush early, so the limit cannot deadlock a pipeline.
  virtual int MaxInFlight() const { return 0; }
  /// Return the source's event-time watermark (µs): no row older than this will follow, e.g.
  /// the largest event time seen less the lateness allowed; kNoWatermark (INT64_MIN) for none.
  /// Read after every Next; when it rises it travels downstream behind the batches before it.
  virtual int64_t Watermark() const { return INT64_MIN; }
  /// Return true when, as configured, this source sets a watermark (Watermark can rise).
  /// Checked before the run: an unbounded source without one would never close a window.
  virtual bool HasWatermark() const { return false; }
  /// Return true for a source that never ends by itself (a stream): its Next answers "nothing
  /// yet" with an empty batch after a short wait, and the run ends on a stop or --until-idle.
  virtual bool Unbounded() const { return false; }
  /// Return true while the source holds input it has read ahead and not yet handed out (a
  /// stream's prefetched reads, already delivered to this reader). After a stop, Next is
  /// called — with NodeContext::stopping() true — until this is false, so that such input goes
  /// downstream and is acknowledged rather than left unread.
  virtual bool Buffered() const { return false; }
  /// Return true when Next may be called from several threads at once, each call with its own
  /// `seq`, and batch `seq` depends only on `seq` (the source keeps no cursor between calls);
  /// once Next(seq) has returned nullptr, so does every later `seq`. Such a source, if it feeds
  /// one segment alone, is read by every worker of that segment (Segment::source_reads): each
  /// reads a batch and takes it through, and the segment keeps the order of `seq`. It must set
  /// no watermark, send no dead letters and hold no in-flight limit. Commit and Abandon are
  /// still called one at a time, but they may run while other threads are in Next.
  virtual bool ConcurrentNext() const { return false; }
};

/// Where a transform sends its output. Outputs carry the acknowledgements of the input being
/// processed, unless the transform passes its own AckSet.
class Emitter {
 public:
  virtual ~Emitter() = default;
  virtual Status Emit(BatchPtr batch) = 0;
  /// Emit a batch built from inputs whose acks the transform kept (see HoldAcks).
  virtual Status Emit(BatchPtr batch, AckSet acks) = 0;
  /// Return the acks of the input being processed, for a transform that keeps rows past
  /// Process() (windows, buffers); the input is then not done until those acks are released.
  virtual AckSet HoldAcks() = 0;
  /// Emit `batch` with the input's acks on another output of the node: kLateOutput (a
  /// window's late rows, taken as `<id>.late`). Only for outputs the pipeline wired.
  virtual Status EmitOn(int output, BatchPtr batch) {
    return Status::NotImplemented("this emitter has only one output (asked for {})", output);
  }
};

/// Map batches to batches. Instances of a stateless transform may run in parallel, each with
/// its own object; a single instance is called from one thread at a time.
class Transform {
 public:
  virtual ~Transform() = default;
  virtual Status Open(NodeContext* ctx) { return Status::OK(); }
  /// Validate against the input schemas and return the output schema (null if unknown).
  /// Called before the run when the input schemas are known, so type errors surface early.
  virtual Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) { return SchemaPtr{}; }
  /// Process one input batch; `input` is the index of the input it came from.
  virtual Status Process(const BatchPtr& batch, int input, Emitter* out) = 0;
  /// Emit what is left once every input has ended. When the run is stopping
  /// (NodeContext::stopping(): a signal, --until-idle), the inputs ended because their sources
  /// stopped, not because the data did: a transform holding incomplete results (an open
  /// window) emits none of them and fails the acks it holds (AckSet::Fail), so the sources
  /// keep those rows for the next run.
  virtual Status Finish(Emitter* out) { return Status::OK(); }
  /// Called every period the node asked for (NodeContext::SetTimer), between Process calls,
  /// with the clock's time; what it emits carries no input's acks (pass held ones with
  /// Emit(batch, acks)). In the sequential executor timers run between source batches.
  virtual Status OnTimer(int64_t now_us, Emitter* out) { return Status::OK(); }
  /// Called when the watermark of this instance's input — the smallest over its inputs — rises
  /// to `watermark` (every row older than it has been processed): a window closes here. What it
  /// emits goes downstream before the watermark. Not called for the instances of a stateless
  /// transform sharing one input (they hold nothing).
  virtual Status OnWatermark(int64_t watermark, Emitter* out) { return Status::OK(); }
  /// Return the watermark to pass downstream once the input's is `input_watermark`: the same
  /// by default; a transform whose output rows are older than its input (a window emitting its
  /// start time) may hold it back.
  virtual int64_t OutputWatermark(int64_t input_watermark) const { return input_watermark; }
  virtual Status Close() { return Status::OK(); }
  /// Return true when the transform keeps the acks of its input until its event time moves on
  /// (a window until it fires), i.e. until more input arrives. A source that stops handing out
  /// batches at MaxInFlight may not feed it: neither could go on (Pipeline::Build refuses it).
  virtual bool HoldsAcksUntilWatermark() const { return false; }
  /// Return why this transform, as configured, does not pass on every value it receives
  /// ("drops the rows where `where` is not true"), or "" when it keeps them all. Called after
  /// Bind, before the run: a source that deletes what it read (ConsumesInput) may not feed a
  /// node that loses data, since the source deletes what the node dropped.
  virtual std::string LossyBecause() const { return {}; }
  /// Return true when this transform, as configured and bound, handles every batch on its own:
  /// it keeps nothing from one Process call to the next, sets no timer, holds no acks, emits
  /// nothing from Finish, passes watermarks on unchanged, and any instance made from the same
  /// options and bound to the same schemas emits the same for the same batch. The parallel
  /// executor then runs it fused with such neighbours, one instance per worker, each worker
  /// taking whole batches through the chain (a segment: docs/ARCHITECTURE.md, "Executors").
  virtual bool BatchLocal() const { return false; }
};

/// Consume batches. Called from one thread (but see WritesInline).
class Sink {
 public:
  virtual ~Sink() = default;
  virtual Status Open(NodeContext* ctx) { return Status::OK(); }
  /// Write `batch`. Release `acks` (drop it) only once the rows are durable; a sink that
  /// buffers keeps `acks` until it has flushed. Returning an error fails the batch.
  virtual Status Write(const BatchPtr& batch, AckSet acks) = 0;
  /// Make everything written so far durable and release the acks still held.
  virtual Status Flush() { return Status::OK(); }
  /// Called every period the sink asked for (NodeContext::SetTimer), between Write calls.
  virtual Status OnTimer(int64_t now_us) { return Status::OK(); }
  virtual Status Close() { return Status::OK(); }
  /// Return why this sink, as configured, does not keep every row it acknowledges ("discards
  /// every row", "prints only the first 10 rows"), or "" when it keeps them. See
  /// Transform::LossyBecause.
  virtual std::string LossyBecause() const { return {}; }
  /// Return true when Write is cheap, never blocks, and keeps no state that Flush, OnTimer or
  /// Close use, so that it may run on another thread than theirs, even at the same time. The
  /// parallel executor then has a segment write its outputs to this sink itself, in order, one
  /// Write at a time, on the worker that made them — instead of handing each batch to the
  /// sink's thread (another core, where its memory would be freed). A sink that does I/O must
  /// not: it would stall the segment's workers.
  virtual bool WritesInline() const { return false; }
};

}  // namespace sluice
