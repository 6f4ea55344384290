// Time in both executors: node timers (NodeContext::SetTimer) and event-time watermarks —
// how they are raised, held back in order behind the rows before them, and passed on.
#include <algorithm>

#include "sluice/engine/executor.h"
#include "sluice/engine/executor_internal.h"

namespace sluice {

using executor_internal::BusyTimer;
using executor_internal::RaiseInput;

bool PipelineRun::ForwardWatermark(size_t node, int64_t watermark) {
  Reorderer& r = *reorderers_[node];
  {
    std::lock_guard lock(r.mu);
    if (watermark <= r.forwarded) return true;
    r.forwarded = watermark;
  }
  stats_[node]->watermark_us.store(watermark, std::memory_order_relaxed);
  // Markers never wait for room, so pushing cannot block; two instances racing may pass on
  // two rising values out of order, which the consumer's max absorbs.
  return PushDownstream(node, Message::Watermark(watermark));
}

bool PipelineRun::TimerDue(const NodeContext& ctx, int64_t now, TimerState* state) {
  const NodeContext::TimerSetting t = ctx.timer();
  if (t.generation != state->generation) {  // set (or changed) since the last look
    state->generation = t.generation;
    state->next_due = t.period_us > 0 ? t.set_at_us + t.period_us : -1;
  }
  if (state->next_due < 0 || now < state->next_due) return false;
  state->next_due += t.period_us;
  if (state->next_due <= now) state->next_due = now + t.period_us;  // far behind: one call
  return true;
}

int PipelineRun::WaitMs(int64_t now, const TimerState& state) {
  if (state.next_due < 0) return kIdleWaitMs;
  return static_cast<int>(std::clamp<int64_t>((state.next_due - now + 999) / 1000, 1, 50));
}

Status PipelineRun::FireTransformTimer(size_t node, int instance, int64_t now, bool sequential) {
  auto& n = pipeline_->nodes()[node];
  TransformEmitter emitter(
      this, node, sequential ? TransformEmitter::Mode::kInline : TransformEmitter::Mode::kPush,
      instance, sequential ? sequential_scope_.get() : nullptr);
  Status st;
  {
    BusyTimer busy(stats_[node].get());
    st = n.transforms[static_cast<size_t>(instance)]->OnTimer(now, &emitter);
    if (st.ok()) st = emitter.SendDeadLetters();
  }
  if (st.ok() || (st.code() == StatusCode::kCancelled && cancelled())) return st;
  stats_[node]->CountError(st.code());
  return st.WithContext("node '{}' ({}): timer", n.spec.id, n.spec.type);
}

void PipelineRun::RunDueTimersSequential() {
  auto& nodes = pipeline_->nodes();
  for (size_t i = 0; i < nodes.size() && !cancelled(); ++i) {
    if (nodes[i].kind() == NodeKind::kSource) continue;
    const NodeContext& ctx = *node_contexts_[i][0];
    const int64_t now = clock_->NowMicros();
    if (!TimerDue(ctx, now, &sequential_timers_[i])) continue;
    Status st;
    if (nodes[i].kind() == NodeKind::kTransform) {
      st = FireTransformTimer(i, 0, now, /*sequential=*/true);
    } else {
      BusyTimer busy(stats_[i].get());
      st = nodes[i].sink->OnTimer(now);
      if (!st.ok()) {
        st = st.WithContext("node '{}' ({}): timer", nodes[i].spec.id, nodes[i].spec.type);
      }
    }
    if (!st.ok()) Cancel(st);
  }
}

bool PipelineRun::DrainInOrder(size_t node, uint64_t seq, std::vector<Message> outputs) {
  Reorderer& r = *reorderers_[node];
  std::vector<int64_t> rises;  // node watermarks to pass on, in order
  bool ok = true;
  {
    std::lock_guard lock(r.mu);
    r.pending[seq] = std::move(outputs);
    while (ok && !r.pending.empty() && r.pending.begin()->first == r.next) {
      for (auto& out : r.pending.begin()->second) {
        if (out.is_watermark()) {
          const int64_t min = RaiseInput(&r.input_wm, out.input, out.watermark);
          // Every input ended (INT64_MAX): nothing to pass on, Finish follows.
          if (min > r.forwarded && min != INT64_MAX && (rises.empty() || min > rises.back())) {
            rises.push_back(min);
          }
        } else if (!PushDownstream(node, std::move(out))) {
          ok = false;
        }
      }
      r.pending.erase(r.pending.begin());
      ++r.next;
    }
  }
  for (int64_t w : rises) ok = ok && ForwardWatermark(node, w);
  return ok;
}

bool PipelineRun::TransformWatermark(size_t node, int instance, const Message& marker,
                                     std::vector<int64_t>* own_wm, int64_t* own_min) {
  auto& n = pipeline_->nodes()[node];
  if (n.spec.parallelism > 1 && partitioners_[node] == nullptr) {
    // Shared channel: the node-level view, once everything popped before it is done.
    std::vector<Message> entry;
    entry.push_back(marker);
    return DrainInOrder(node, marker.seq, std::move(entry));
  }
  const int64_t min = RaiseInput(own_wm, marker.input, marker.watermark);
  if (min <= *own_min || min == INT64_MAX) return true;  // all ended: Finish follows
  *own_min = min;
  Transform* t = n.transforms[static_cast<size_t>(instance)].get();
  TransformEmitter emitter(this, node, TransformEmitter::Mode::kPush, instance);
  Status st;
  {
    BusyTimer busy(stats_[node].get());
    st = t->OnWatermark(min, &emitter);
    if (st.ok()) st = emitter.SendDeadLetters();
  }
  if (!st.ok()) {
    if (st.code() != StatusCode::kCancelled || !cancelled()) {
      stats_[node]->CountError(st.code());
      Cancel(st.WithContext("node '{}' ({}): watermark", n.spec.id, n.spec.type));
    }
    return false;
  }
  int64_t out = t->OutputWatermark(min);
  if (partitioners_[node] != nullptr) {
    // Keyed: the node is as far as its slowest instance.
    Reorderer& r = *reorderers_[node];
    std::lock_guard lock(r.mu);
    int64_t& mine = r.instance_wm[static_cast<size_t>(instance)];
    mine = std::max(mine, out);
    out = *std::min_element(r.instance_wm.begin(), r.instance_wm.end());
  }
  return ForwardWatermark(node, out);
}

}  // namespace sluice
