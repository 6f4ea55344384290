// The threads of the parallel executor's transforms and sinks: a transform instance's loop
// (its channel, its reorder buffer, its timers and watermarks) and a sink's, and what the last
// instance of a node does when it ends.
#include <algorithm>
#include <mutex>
#include <thread>

#include "sluice/engine/executor.h"
#include "sluice/engine/executor_internal.h"

namespace sluice {

using executor_internal::BusyTimer;
using executor_internal::NowNs;
using executor_internal::RaiseInput;

void PipelineRun::NodeInstanceDone(size_t node) {
  if (live_instances_[node]->fetch_sub(1) != 1) return;
  const auto& n = pipeline_->nodes()[node];
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    for (auto& c : channels_[static_cast<size_t>(n.outputs[k])]) c->ProducerDone(n.output_ports[k]);
  }
}

void PipelineRun::RunTransformInstance(size_t node, int instance) {
  auto& n = pipeline_->nodes()[node];
  Transform* t = n.transforms[static_cast<size_t>(instance)].get();
  NodeStats& stats = *stats_[node];
  const bool keyed = partitioners_[node] != nullptr;
  // Keyed instances keep each key's order (its rows come through one channel), not the input's.
  const bool ordered = n.spec.parallelism > 1 && n.spec.ordered && !keyed;
  // Instances sharing one channel: every pop goes through the reorder buffer (see DrainInOrder).
  const bool gated = n.spec.parallelism > 1 && !keyed;
  // A single or keyed instance's own view of its inputs' watermarks.
  std::vector<int64_t> own_wm(std::max<size_t>(n.inputs.size(), 1), kNoWatermark);
  int64_t own_min = kNoWatermark;
  TransformEmitter emitter(
      this, node, ordered ? TransformEmitter::Mode::kCollect : TransformEmitter::Mode::kPush,
      instance);
  Reorderer& reorder = *reorderers_[node];
  Channel& in = *channels_[node][keyed ? static_cast<size_t>(instance) : 0];
  const NodeContext& ctx = *node_contexts_[node][static_cast<size_t>(instance)];
  TimerState timer;
  while (true) {
    const int64_t now = clock_->NowMicros();
    if (TimerDue(ctx, now, &timer)) {
      Status st = FireTransformTimer(node, instance, now, /*sequential=*/false);
      if (!st.ok()) {
        if (st.code() != StatusCode::kCancelled || !cancelled()) Cancel(st);
        break;
      }
      continue;
    }
    std::optional<Message> m;
    if (timer.next_due >= 0) {
      bool timed_out = false;
      m = in.PopFor(WaitMs(now, timer), &timed_out);
      if (timed_out) continue;
    } else {
      m = in.Pop();
    }
    if (!m) break;
    if (m->is_watermark()) {
      if (!TransformWatermark(node, instance, *m, &own_wm, &own_min)) break;
      continue;
    }
    stats.rows_in.fetch_add(m->batch->num_rows(), std::memory_order_relaxed);
    stats.bytes_in.fetch_add(m->batch->ByteSize(), std::memory_order_relaxed);
    stats.batches_in.fetch_add(1, std::memory_order_relaxed);
    if (stats.histograms) stats.batch_rows.Record(m->batch->num_rows());
    emitter.SetInput(&*m);
    Status st;
    AcquireSlot();
    {
      BusyTimer busy(&stats, BusyTimer::kBatch);
      st = t->Process(m->batch, m->input, &emitter);
      if (st.ok()) st = emitter.SendDeadLetters();
    }
    ReleaseSlot();
    if (!st.ok()) {
      m->acks.Fail();
      if (st.code() != StatusCode::kCancelled || !cancelled()) {
        stats.CountError(st.code());
        Cancel(WithNode(node, st));
      }
      break;
    }
    if (gated) {
      // Ordered: the outputs wait for their turn. Unordered: they went out already; the entry
      // only marks this pop as done, so that a watermark popped later waits for it.
      if (!DrainInOrder(node, m->seq, std::move(emitter.collected()))) break;
      emitter.collected().clear();
    }
  }
  if (!cancelled()) {
    emitter.SetInput(nullptr);
    TransformEmitter finish_emitter(this, node, TransformEmitter::Mode::kPush, instance);
    Status st;
    {
      BusyTimer busy(&stats);
      st = t->Finish(&finish_emitter);
      if (st.ok()) st = finish_emitter.SendDeadLetters();
    }
    if (!st.ok()) Cancel(st.WithContext("node '{}' ({}): finishing", n.spec.id, n.spec.type));
  }
  if (cancelled()) {
    std::lock_guard lock(reorder.mu);
    reorder.pending.clear();  // drop held references so their sources can settle
  }
  NodeInstanceDone(node);
}

bool PipelineRun::WriteToSink(size_t node, Message* m) {
  const auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  stats.rows_in.fetch_add(m->batch->num_rows(), std::memory_order_relaxed);
  stats.bytes_in.fetch_add(m->batch->ByteSize(), std::memory_order_relaxed);
  stats.batches_in.fetch_add(1, std::memory_order_relaxed);
  if (stats.histograms) stats.batch_rows.Record(m->batch->num_rows());
  // Keep our own reference until Write returns, so a failed write is marked failed before
  // the sink could possibly have released the last reference.
  AckSet keep = m->acks;
  Status st;
  {
    BusyTimer busy(&stats, BusyTimer::kBatch);
    st = n.sink->Write(m->batch, std::move(m->acks));
  }
  if (st.ok()) return true;
  keep.Fail();
  stats.CountError(st.code());
  Cancel(WithNode(node, st));
  return false;
}

bool PipelineRun::WriteInline(size_t node, Message m) {
  std::lock_guard lock(*inline_sinks_[node]);
  if (cancelled()) return false;
  return WriteToSink(node, &m);
}

void PipelineRun::RunSink(size_t node) {
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  Channel& in = *channels_[node][0];
  int64_t flushed_generation = 0;
  const NodeContext& ctx = *node_contexts_[node][0];
  TimerState timer;
  while (true) {
    const int64_t now = clock_->NowMicros();
    if (TimerDue(ctx, now, &timer)) {
      BusyTimer busy(&stats);
      Status st = n.sink->OnTimer(now);
      if (!st.ok()) {
        stats.CountError(st.code());
        Cancel(st.WithContext("node '{}' ({}): timer", n.spec.id, n.spec.type));
        break;
      }
    }
    bool timed_out = false;
    std::optional<Message> m = in.PopFor(WaitMs(now, timer), &timed_out);
    if (timed_out) {
      // Idle: a source waiting at its in-flight limit may need the acks this sink holds.
      const int64_t gen = flush_generation_.load(std::memory_order_acquire);
      if (gen != flushed_generation) {
        flushed_generation = gen;
        BusyTimer busy(&stats);
        Status st = n.sink->Flush();
        if (!st.ok()) {
          stats.CountError(st.code());
          Cancel(st.WithContext("node '{}' ({}): flushing", n.spec.id, n.spec.type));
          break;
        }
      }
      continue;
    }
    if (!m) break;
    if (m->is_watermark()) continue;  // sinks write rows; time is for transforms
    AcquireSlot();
    const bool written = WriteToSink(node, &*m);
    ReleaseSlot();
    if (!written) break;
  }
  if (!cancelled()) {
    BusyTimer busy(&stats);
    Status st = n.sink->Flush();
    if (!st.ok()) {
      stats.CountError(st.code());
      Cancel(st.WithContext("node '{}' ({}): flushing", n.spec.id, n.spec.type));
    }
  }
}

}  // namespace sluice
