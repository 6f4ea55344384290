// The source side of both executors: each source's loop, and how its batches' acks settle
// into Commit or Abandon.
#include <algorithm>
#include <thread>

#include "sluice/engine/executor.h"
#include "sluice/engine/executor_internal.h"

namespace sluice {

using executor_internal::BusyTimer;

// ---------------------------------------------------------------------------------------------
// Sources and acknowledgements (both executors).

void PipelineRun::SettleAcks(size_t node, int max_wait_ms, std::vector<uint64_t>* pending) {
  std::vector<AckQueue::Event> events;
  ack_queues_[node]->Drain(&events, max_wait_ms);
  if (events.empty()) return;
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  for (const auto& e : events) {
    auto it = std::find(pending->begin(), pending->end(), e.seq);
    if (it == pending->end()) continue;  // already settled (abandoned on cancel)
    pending->erase(it);
    // `delivered` was decided when the last reference dropped, before any cancellation: the
    // rows are durable, so the commit happens even if the run has been cancelled since.
    if (e.delivered) {
      BusyTimer busy(&stats);
      Status st = n.source->Commit(e.seq);
      if (!st.ok()) {
        stats.CountError(st.code());
        Cancel(
            st.WithContext("node '{}' ({}): committing batch {}", n.spec.id, n.spec.type, e.seq));
        continue;
      }
      stats.committed_batches.fetch_add(1, std::memory_order_relaxed);
    } else {
      n.source->Abandon(e.seq);
      stats.abandoned_batches.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void PipelineRun::FinishSourceAcks(size_t node, std::vector<uint64_t>* pending) {
  // Wait for every batch to be settled. Once the run is cancelled, nothing still pending can
  // be delivered any more (cancellation wins), so it is abandoned at once instead of waiting
  // for every downstream reference to be dropped.
  while (!pending->empty()) {
    SettleAcks(node, 50, pending);
    if (cancelled() && !pending->empty()) {
      SettleAcks(node, 0, pending);
      auto& n = pipeline_->nodes()[node];
      for (uint64_t seq : *pending) {
        n.source->Abandon(seq);
        stats_[node]->abandoned_batches.fetch_add(1, std::memory_order_relaxed);
      }
      pending->clear();
    }
  }
}

void PipelineRun::WaitForInFlightRoom(size_t node, bool sequential,
                                      std::vector<uint64_t>* pending) {
  const int limit = pipeline_->nodes()[node].source->MaxInFlight();
  if (limit <= 0) return;
  int idle_rounds = 0;
  while (!cancelled() && static_cast<int>(pending->size()) >= limit) {
    const size_t before = pending->size();
    SettleAcks(node, 20, pending);
    if (pending->size() < before) {
      idle_rounds = 0;
      continue;
    }
    // No ack for a while: the batches may sit in a sink that holds acks until it flushes.
    if (++idle_rounds < 3) continue;
    idle_rounds = 0;
    if (sequential) {
      for (size_t i = 0; i < pipeline_->nodes().size(); ++i) {
        auto& n = pipeline_->nodes()[i];
        if (n.kind() != NodeKind::kSink) continue;
        Status st = n.sink->Flush();
        if (!st.ok()) Cancel(st.WithContext("node '{}' ({}): flushing", n.spec.id, n.spec.type));
      }
    } else {
      RequestSinkFlush();
    }
  }
}

void PipelineRun::RunSourceLoop(size_t node, bool sequential) {
  if (!sequential && scans_[node] != nullptr) {
    RunSourceScan(node);
    return;
  }
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  const std::shared_ptr<AckQueue>& queue = ack_queues_[node];
  std::vector<uint64_t> pending;
  uint64_t seq = 0;
  int64_t estimate = 0;
  int64_t last_wm = kNoWatermark;  // the source's watermark last passed on
  const bool unbounded = n.source->Unbounded();
  // A stop ends the loop as the end of the input would: what was handed out drains, is
  // flushed and committed. A source still holding input it read ahead (Buffered) is called
  // until it has handed that out.
  const auto stopped = [&] { return stopping() && !n.source->Buffered(); };
  while (!cancelled() && !stopped()) {
    SettleAcks(node, 0, &pending);
    WaitForInFlightRoom(node, sequential, &pending);
    if (cancelled() || stopped()) break;
    if (!budget_.Acquire(estimate)) break;  // cancelled while waiting for memory
    Result<BatchPtr> next = Status::Internal("unset");
    AcquireSlot();
    {
      BusyTimer busy(&stats, BusyTimer::kBatch);
      in_call_since_us_[node].store(ElapsedMicros(), std::memory_order_relaxed);
      next = n.source->Next(seq);
      in_call_since_us_[node].store(-1, std::memory_order_relaxed);
      // A stream's "nothing yet" was a wait for input, not work: the summary's busy share and
      // bottleneck would otherwise blame an idle stream.
      if (unbounded && next.ok() && *next != nullptr && (*next)->num_rows() == 0 &&
          node_contexts_[node][0]->dead_letters()->size() == 0) {
        busy.Waited();
      }
    }
    ReleaseSlot();
    if (!next.ok()) {
      budget_.Release(estimate);
      stats.CountError(next.status().code());
      Status st = next.status();
      if (st.code() != StatusCode::kCancelled || !cancelled()) {
        Cancel(WithNode(node, st));
      }
      break;
    }
    BatchPtr batch = std::move(*next);
    // Records the source rejected while reading this batch go out with its acks.
    BatchPtr dead = node_contexts_[node][0]->dead_letters()->Take();
    if (sequential) RunDueTimersSequential();
    const bool ended = batch == nullptr;
    if (ended && dead == nullptr) {
      budget_.Release(estimate);
      break;
    }
    const int64_t rows = ended ? 0 : batch->num_rows();  // ended: only dead letters this time
    if (stats.histograms && !ended) stats.batch_rows.Record(rows);
    std::atomic<int64_t>& idle_since = idle_since_us_[node];
    if (rows > 0 || dead != nullptr) {
      idle_since.store(-1, std::memory_order_relaxed);
    } else if (idle_since.load(std::memory_order_relaxed) == -1) {
      idle_since.store(ElapsedMicros(), std::memory_order_relaxed);  // "nothing yet" begins
    }
    const int64_t size = (ended ? 0 : batch->ByteSize()) + (dead != nullptr ? dead->ByteSize() : 0);
    budget_.Adjust(size - estimate);
    estimate = size;
    auto lease = std::make_shared<MemoryLease>(&budget_, size);
    const uint64_t this_seq = seq++;
    if (rows == 0 && dead == nullptr) {
      // Nothing to deliver: settled at once.
      Status st = n.source->Commit(this_seq);
      if (!st.ok()) {
        Cancel(st.WithContext("node '{}': committing batch {}", n.spec.id, this_seq));
        break;
      }
      if (!PassSourceWatermark(node, sequential, &last_wm)) break;
      continue;
    }
    if (sequential && rows > 0) {  // the parallel path counts in PushDownstream
      stats.rows_out.fetch_add(rows, std::memory_order_relaxed);
      stats.bytes_out.fetch_add(batch->ByteSize(), std::memory_order_relaxed);
      stats.batches_out.fetch_add(1, std::memory_order_relaxed);
    }
    pending.push_back(this_seq);
    AckSet acks(std::make_shared<AckHandle>(queue, this_seq));
    std::vector<Message> out;
    if (rows > 0) {
      out.emplace_back();
      out.back().batch = std::move(batch);
      out.back().acks = acks;
      out.back().lease = lease;
    }
    if (dead != nullptr) {
      out.push_back(executor_internal::DeadLetterMessage(&stats, std::move(dead), acks, lease));
    }
    acks = AckSet();  // the messages hold the batch's acks now
    bool sent = true;
    for (auto& m : out) {
      if (sequential) {
        Status st = EmitSequential(node, std::move(m));
        if (!st.ok()) {
          Cancel(st);
          sent = false;
          break;
        }
      } else if (!PushDownstream(node, std::move(m))) {
        sent = false;
        break;
      }
    }
    if (!sent || ended) break;
    if (!PassSourceWatermark(node, sequential, &last_wm)) break;
  }
  idle_since_us_[node].store(INT64_MIN, std::memory_order_relaxed);  // ended: idle for good
  if (sequential && !cancelled()) {
    // The source has ended: its outputs' inputs no longer hold back their watermarks.
    Status st = EmitSequential(node, Message::Watermark(INT64_MAX));
    if (!st.ok()) Cancel(st);
  }
  if (!sequential) {
    NodeInstanceDone(node);
    // The source's thread is one of the workers of the segments it feeds alone: now that it
    // has ended, it drains their queues with the others (rather than leave the last batches to
    // one core) and, if last out, finishes them.
    const auto& segments = pipeline_->segments();
    for (size_t s = 0; s < segments.size(); ++s) {
      const auto head = static_cast<size_t>(segments[s].head);
      if (segments[s].source_runs && pipeline_->nodes()[head].inputs[0] == static_cast<int>(node)) {
        RunSegmentWorker(s, pipeline_->workers() - 1);
      }
    }
    FinishSourceAcks(node, &pending);
  }
  // The sequential executor settles acks after the downstream Finish/Flush (see below), so it
  // hands `pending` over by leaving it in the source's queue.
  if (sequential) {
    sequential_pending_[node] = std::move(pending);
    return;
  }
  Status st = n.source->Close();
  if (!st.ok()) Cancel(st.WithContext("node '{}': closing", n.spec.id));
}

bool PipelineRun::PassSourceWatermark(size_t node, bool sequential, int64_t* last) {
  const int64_t wm = pipeline_->nodes()[node].source->Watermark();
  if (wm <= *last) return true;
  *last = wm;
  stats_[node]->watermark_us.store(wm, std::memory_order_relaxed);
  if (!sequential) return PushDownstream(node, Message::Watermark(wm));
  Status st = EmitSequential(node, Message::Watermark(wm));
  if (!st.ok()) Cancel(st);
  return st.ok();
}

}  // namespace sluice
