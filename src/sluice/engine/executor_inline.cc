// Depth-first delivery on one thread: the sequential executor, and the parallel executor's
// segments — chains of batch-local transforms that each of `workers` threads takes whole
// batches through, in the order of the head's input where they leave (engine/segment.h).
#include <algorithm>
#include <chrono>

#include "sluice/engine/executor.h"
#include "sluice/engine/executor_internal.h"

namespace sluice {

using executor_internal::BusyTimer;
using executor_internal::NowNs;
using executor_internal::RaiseInput;

Status PipelineRun::EmitInline(size_t node, Message m, InlineScope* scope) {
  auto& n = pipeline_->nodes()[node];
  if (n.kind() == NodeKind::kTransform) CountOut(node, m);
  if (scope->segment >= 0 && !m.is_watermark() && m.port == 0 && n.output_schema != nullptr &&
      m.batch->schema() != n.output_schema && *m.batch->schema() == *n.output_schema) {
    // Each worker's instance made its own schema object: send the node's one, so that
    // consumers keying caches on it (encoders, plans) do not see a new schema every batch.
    m.batch = Batch::MakeUnchecked(n.output_schema, m.batch->columns(), m.batch->num_rows(),
                                   m.batch->tags());
  }
  // A batch goes to the consumers of the output it left on, a watermark to every consumer,
  // in the order of the node's outputs; in a segment, only the members are delivered to here,
  // and what goes to other nodes is collected (scope->exits) in that same order.
  const auto consumes = [&](size_t k) { return m.is_watermark() || n.output_from[k] == m.port; };
  const size_t last = executor_internal::LastOutput(n, consumes);
  for (size_t k = 0; k <= last && k < n.outputs.size(); ++k) {
    if (!consumes(k)) continue;
    Message copy = (k == last) ? std::move(m) : m;
    const auto to = static_cast<size_t>(n.outputs[k]);
    if (scope->segment >= 0 && pipeline_->nodes()[to].segment != scope->segment) {
      scope->exits.push_back(SegmentExit{node, static_cast<int>(k), std::move(copy)});
      if (!PassExitsInTurn(scope)) return Status::Cancelled("run cancelled");
      continue;
    }
    copy.input = n.output_ports[k];
    SLUICE_RETURN_NOT_OK(DeliverInline(to, std::move(copy), scope));
  }
  return Status::OK();
}

Status PipelineRun::DeliverInline(size_t node, Message m, InlineScope* scope) {
  if (cancelled()) return Status::Cancelled("run cancelled");
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  if (m.is_watermark()) {  // the sequential executor's (a segment's pass in DrainSegment)
    if (n.kind() != NodeKind::kTransform) return Status::OK();
    Reorderer& r = *reorderers_[node];  // one instance: its view is the node's
    const int64_t min = RaiseInput(&r.input_wm, m.input, m.watermark);
    if (min <= r.forwarded || min == INT64_MAX) return Status::OK();  // all ended: Finish
    Transform* t = n.transforms[0].get();
    TransformEmitter emitter(this, node, TransformEmitter::Mode::kInline, 0, scope);
    Status st = t->OnWatermark(min, &emitter);
    if (st.ok()) st = emitter.SendDeadLetters();
    if (!st.ok()) {
      if (st.code() == StatusCode::kCancelled && cancelled()) return st;
      stats.CountError(st.code());
      return st.WithContext("node '{}' ({}): watermark", n.spec.id, n.spec.type);
    }
    const int64_t out = t->OutputWatermark(min);
    r.forwarded = std::max(r.forwarded, min);
    stats.watermark_us.store(out, std::memory_order_relaxed);
    return EmitInline(node, Message::Watermark(out), scope);
  }
  stats.rows_in.fetch_add(m.batch->num_rows(), std::memory_order_relaxed);
  stats.bytes_in.fetch_add(m.batch->ByteSize(), std::memory_order_relaxed);
  stats.batches_in.fetch_add(1, std::memory_order_relaxed);
  if (stats.histograms) stats.batch_rows.Record(m.batch->num_rows());
  AckSet keep = m.acks;
  Status st;
  // The node's own time: this delivery's, less the deliveries downstream that its emits ran
  // inline (each adds its whole time to delivered_ns), as the parallel executor, whose nodes
  // run on threads of their own, measures it.
  const int64_t t0 = NowNs();
  const int64_t delivered0 = scope->delivered_ns;
  if (n.kind() == NodeKind::kTransform) {
    TransformEmitter emitter(this, node, TransformEmitter::Mode::kInline, scope->instance, scope);
    emitter.SetInput(&m);
    st = n.transforms[static_cast<size_t>(scope->instance)]->Process(m.batch, m.input, &emitter);
    if (st.ok()) st = emitter.SendDeadLetters();
  } else {
    st = n.sink->Write(m.batch, std::move(m.acks));
  }
  const int64_t elapsed = NowNs() - t0;
  const int64_t own = elapsed - (scope->delivered_ns - delivered0);
  scope->delivered_ns = delivered0 + elapsed;
  stats.busy_ns.fetch_add(own, std::memory_order_relaxed);
  if (stats.histograms) stats.batch_latency.Record(own);
  if (!st.ok()) {
    keep.Fail();
    if (st.code() == StatusCode::kCancelled && cancelled()) return st;
    stats.CountError(st.code());
    st = WithNode(node, st);
  }
  return st;
}

// ---------------------------------------------------------------------------------------------
// Segments (parallel executor).

void PipelineRun::RunSegmentWorker(size_t segment, int worker) {
  const Segment& seg = pipeline_->segments()[segment];
  const auto head = static_cast<size_t>(seg.head);
  SegmentState& state = *segment_states_[segment];
  Channel& in = *channels_[head][0];
  InlineScope scope;
  scope.segment = static_cast<int>(segment);
  scope.instance = worker;
  while (true) {
    std::optional<Message> m = in.Pop();
    if (!m) break;
    const uint64_t seq = m->seq;
    if (!WaitForTurn(segment, seq)) break;
    scope.seq = static_cast<int64_t>(seq);
    if (m->is_watermark()) {
      scope.exits.push_back(SegmentExit{head, -1, std::move(*m)});
    } else {
      AcquireSlot();
      Status st = DeliverInline(head, std::move(*m), &scope);
      ReleaseSlot();
      if (!st.ok()) {
        if (st.code() != StatusCode::kCancelled || !cancelled()) Cancel(st);
        break;
      }
    }
    if (!DrainSegment(segment, seq, std::move(scope.exits))) break;
    scope.exits.clear();
  }
  if (state.live.fetch_sub(1) == 1) FinishSegment(segment);
}

bool PipelineRun::WaitForTurn(size_t segment, uint64_t seq) {
  const Segment& seg = pipeline_->segments()[segment];
  SegmentState& state = *segment_states_[segment];
  // A batch may be this far ahead of the oldest not yet drained: what it made waits in
  // `pending` meanwhile, so this bounds that memory. The head's queue is part of it (a batch
  // the source claims is numbered after everything queued).
  const uint64_t ahead =
      4 * static_cast<uint64_t>(pipeline_->workers()) +
      static_cast<uint64_t>(pipeline_->nodes()[static_cast<size_t>(seg.head)].spec.queue_batches);
  // Cancel notifies without the lock (it may run in a drain holding it), so a wait could miss
  // it: wake now and then to look.
  std::unique_lock lock(state.mu);
  while (!state.behind.wait_for(lock, std::chrono::milliseconds(50),
                                [&] { return seq < state.next + ahead || cancelled(); })) {
  }
  return !cancelled();
}

bool PipelineRun::RunClaimed(size_t segment, Message m, int instance) {
  const Segment& seg = pipeline_->segments()[segment];
  InlineScope scope;
  scope.segment = static_cast<int>(segment);
  // The source's own instance: the last.
  scope.instance = instance >= 0 ? instance : pipeline_->workers() - 1;
  const uint64_t seq = m.seq;
  scope.seq = static_cast<int64_t>(seq);
  if (!WaitForTurn(segment, seq)) return false;
  if (instance < 0) stats_[static_cast<size_t>(seg.head)]->AddCounter("batches_run_by_source", 1);
  AcquireSlot();
  Status st = DeliverInline(static_cast<size_t>(seg.head), std::move(m), &scope);
  ReleaseSlot();
  if (!st.ok()) {
    if (st.code() != StatusCode::kCancelled || !cancelled()) Cancel(st);
    return false;
  }
  return DrainSegment(segment, seq, std::move(scope.exits));
}

bool PipelineRun::RunOnSource(size_t segment, Message m) {
  const auto head = static_cast<size_t>(pipeline_->segments()[segment].head);
  if (!channels_[head][0]->Claim(&m)) return false;
  if (!m.is_watermark()) return RunClaimed(segment, std::move(m));
  const uint64_t seq = m.seq;
  std::vector<SegmentExit> exits;
  exits.push_back(SegmentExit{head, -1, std::move(m)});
  return DrainSegment(segment, seq, std::move(exits));
}

bool PipelineRun::DrainSegment(size_t segment, uint64_t seq, std::vector<SegmentExit> exits) {
  SegmentState& state = *segment_states_[segment];
  const int s = static_cast<int>(segment);
  bool ok = true;
  {
    std::lock_guard lock(state.mu);
    state.pending[seq] = std::move(exits);
    while (ok && !state.pending.empty() && state.pending.begin()->first == state.next) {
      for (SegmentExit& out : state.pending.begin()->second) {
        ok = ok && (out.output < 0 ? SegmentWatermark(segment, out.message)
                                   : PushOut(out.node, std::move(out.message), s, out.output));
      }
      state.pending.erase(state.pending.begin());
      state.next.fetch_add(1, std::memory_order_release);
    }
  }
  state.behind.notify_all();
  return ok;
}

bool PipelineRun::PassExitsInTurn(InlineScope* scope) {
  // Under max_parallel_nodes the worker holds a slot here, and a consumer waiting for one
  // could never take what a full queue would make it wait for: the exits wait for the drain.
  if (scope->seq < 0 || pipeline_->spec().settings.max_parallel_nodes > 0) return true;
  const SegmentState& state = *segment_states_[static_cast<size_t>(scope->segment)];
  // `next` reaches this batch only after everything before it has been passed on, and moves
  // past it only in this worker's DrainSegment: no other thread passes anything on meanwhile.
  if (state.next.load(std::memory_order_acquire) != static_cast<uint64_t>(scope->seq)) return true;
  bool ok = true;
  for (SegmentExit& out : scope->exits) {
    ok = ok && PushOut(out.node, std::move(out.message), scope->segment, out.output);
  }
  scope->exits.clear();
  return ok;
}

bool PipelineRun::SegmentWatermark(size_t segment, const Message& marker) {
  const Segment& seg = pipeline_->segments()[segment];
  SegmentState& state = *segment_states_[segment];
  const auto& nodes = pipeline_->nodes();
  RaiseInput(&state.head_wm, marker.input, marker.watermark);
  for (int member : seg.members) {
    const auto i = static_cast<size_t>(member);
    const PipelineNode& n = nodes[i];
    int64_t in = INT64_MAX;
    if (member == seg.head) {
      in = *std::min_element(state.head_wm.begin(), state.head_wm.end());
    } else {
      for (int from : n.inputs)
        in = std::min(in, reorderers_[static_cast<size_t>(from)]->forwarded);
    }
    // Every input ended (INT64_MAX): nothing to pass on, Finish follows.
    if (in == INT64_MAX || in == kNoWatermark) continue;
    const int64_t out = n.transforms[0]->OutputWatermark(in);
    Reorderer& r = *reorderers_[i];
    if (out <= r.forwarded) continue;
    r.forwarded = out;
    stats_[i]->watermark_us.store(out, std::memory_order_relaxed);
    if (!PushOut(i, Message::Watermark(out), static_cast<int>(segment))) return false;
  }
  return true;
}

void PipelineRun::FinishSegment(size_t segment) {
  const Segment& seg = pipeline_->segments()[segment];
  auto& nodes = pipeline_->nodes();
  for (int member : seg.members) {
    const auto i = static_cast<size_t>(member);
    auto& n = nodes[i];
    for (int k = 0; k < n.instances() && !cancelled(); ++k) {
      InlineScope scope;
      scope.segment = static_cast<int>(segment);
      scope.instance = k;
      TransformEmitter emitter(this, i, TransformEmitter::Mode::kInline, k, &scope);
      Status st;
      {
        BusyTimer busy(stats_[i].get());
        st = n.transforms[static_cast<size_t>(k)]->Finish(&emitter);
        if (st.ok()) st = emitter.SendDeadLetters();
      }
      if (!st.ok()) {
        if (st.code() != StatusCode::kCancelled || !cancelled()) {
          Cancel(st.WithContext("node '{}' ({}): finishing", n.spec.id, n.spec.type));
        }
        break;
      }
      for (SegmentExit& out : scope.exits) {
        if (!PushOut(out.node, std::move(out.message), static_cast<int>(segment), out.output)) {
          break;
        }
      }
    }
  }
  if (cancelled()) {
    SegmentState& state = *segment_states_[segment];
    std::lock_guard lock(state.mu);
    state.pending.clear();  // drop held references so their sources can settle
  }
  for (int member : seg.members) {
    const auto i = static_cast<size_t>(member);
    for (int k = 0; k < nodes[i].instances(); ++k) {
      NodeInstanceDone(i);
      MarkDone(i);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Sequential executor: one node at a time, depth first from each source batch.

Status PipelineRun::ExecuteSequential() {
  auto& nodes = pipeline_->nodes();
  sequential_scope_ = std::make_unique<InlineScope>();
  sequential_pending_.assign(nodes.size(), {});
  sequential_timers_.assign(nodes.size(), TimerState{});
  // Finishes (a transform's Finish, a sink's last Flush) every node before `end` in
  // topological order not finished yet. Their sources come before them and have run.
  std::vector<char> finished(nodes.size(), 0);
  const auto finish_before = [&](size_t end) {
    for (size_t i = 0; i < end && !cancelled(); ++i) {
      auto& n = nodes[i];
      if (finished[i] || n.kind() == NodeKind::kSource) continue;
      finished[i] = 1;
      Status st;
      if (n.kind() == NodeKind::kTransform) {
        TransformEmitter emitter(this, i, TransformEmitter::Mode::kInline, 0,
                                 sequential_scope_.get());
        st = n.transforms[0]->Finish(&emitter);
        if (st.ok()) st = emitter.SendDeadLetters();
      } else {
        BusyTimer busy(stats_[i].get());
        st = n.sink->Flush();
      }
      if (!st.ok()) Cancel(st.WithContext("node '{}' ({}): finishing", n.spec.id, n.spec.type));
    }
  };
  for (size_t i = 0; i < nodes.size() && !cancelled(); ++i) {
    if (nodes[i].kind() != NodeKind::kSource) continue;
    // A source with `after` comes after the nodes it waits for: finish them (and everything
    // before it in order) first.
    if (!nodes[i].after.empty()) finish_before(i);
    RunSourceLoop(i, /*sequential=*/true);
  }
  finish_before(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind() != NodeKind::kSource) continue;
    if (!cancelled()) SettleAcks(i, 0, &sequential_pending_[i]);
    if (!sequential_pending_[i].empty() && !cancelled()) {
      // Everything downstream has flushed; a batch still pending was kept by a node that never
      // released it — a bug in that node, reported rather than hidden.
      Cancel(Status::Internal("node '{}': {} batch(es) never acknowledged after flush",
                              nodes[i].spec.id, sequential_pending_[i].size()));
    }
    FinishSourceAcks(i, &sequential_pending_[i]);
    Status st = nodes[i].source->Close();
    if (!st.ok()) Cancel(st.WithContext("node '{}': closing", nodes[i].spec.id));
  }
  std::lock_guard lock(error_mu_);
  return first_error_;
}

}  // namespace sluice
