// A source read by every worker of the segment it feeds (Segment::source_reads): each worker
// reads the source's next batch itself and takes it through the segment.
#include "sluice/engine/executor.h"
#include "sluice/engine/executor_internal.h"

namespace sluice {

using executor_internal::BusyTimer;

void PipelineRun::RunScanWorker(size_t segment, int worker) {
  const auto head = static_cast<size_t>(pipeline_->segments()[segment].head);
  const auto node = static_cast<size_t>(pipeline_->nodes()[head].inputs[0]);
  const PipelineNode& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  ScanState& scan = *scans_[node];
  const bool source_thread = worker == pipeline_->workers() - 1;
  int64_t estimate = 0;
  while (!cancelled()) {
    if (!budget_.Acquire(estimate)) break;
    uint64_t seq = 0;
    {
      std::lock_guard lock(scan.mu);
      if (stopping()) scan.ended = true;
      if (scan.ended || cancelled()) {
        budget_.Release(estimate);
        break;
      }
      SettleAcks(node, 0, &scan.pending);
      seq = scan.next_seq++;
    }
    Result<BatchPtr> next = Status::Internal("unset");
    {
      BusyTimer busy(&stats, BusyTimer::kBatch);
      next = n.source->Next(seq);
    }
    if (!next.ok()) {
      budget_.Release(estimate);
      stats.CountError(next.status().code());
      const Status& st = next.status();
      if (st.code() != StatusCode::kCancelled || !cancelled()) {
        Cancel(WithNode(node, st));
      }
      break;
    }
    BatchPtr batch = std::move(*next);
    if (batch == nullptr || batch->num_rows() == 0) {
      budget_.Release(estimate);
      {
        std::lock_guard lock(scan.mu);
        if (batch == nullptr) {
          scan.ended = true;
        } else if (Status st = n.source->Commit(seq); !st.ok()) {
          Cancel(st.WithContext("node '{}': committing batch {}", n.spec.id, seq));
        }
      }
      if (!DrainSegment(segment, seq, {})) break;
      continue;
    }
    const int64_t rows = batch->num_rows();
    if (stats.histograms) stats.batch_rows.Record(rows);
    idle_since_us_[node].store(-1, std::memory_order_relaxed);
    const int64_t size = batch->ByteSize();
    budget_.Adjust(size - estimate);
    estimate = size;
    {
      std::lock_guard lock(scan.mu);
      scan.pending.push_back(seq);
    }
    Message m;
    m.batch = std::move(batch);
    m.acks = AckSet(std::make_shared<AckHandle>(ack_queues_[node], seq));
    m.lease = std::make_shared<MemoryLease>(&budget_, size);
    m.input = n.output_ports[0];
    m.seq = seq;
    CountOut(node, m);
    if (!source_thread) stats.AddCounter("batches_read_by_workers", 1);
    if (!RunClaimed(segment, std::move(m), worker)) break;
  }
  {
    std::lock_guard lock(scan.mu);
    --scan.readers;
  }
  scan.left.notify_all();
  if (segment_states_[segment]->live.fetch_sub(1) == 1) FinishSegment(segment);
}

void PipelineRun::RunSourceScan(size_t node) {
  const PipelineNode& n = pipeline_->nodes()[node];
  ScanState& scan = *scans_[node];
  RunScanWorker(static_cast<size_t>(scan.segment), pipeline_->workers() - 1);
  {
    std::unique_lock lock(scan.mu);
    scan.left.wait(lock, [&] { return scan.readers == 0; });
  }
  idle_since_us_[node].store(INT64_MIN, std::memory_order_relaxed);
  if (node_contexts_[node][0]->dead_letters()->size() > 0) {
    Cancel(Status::Internal("node '{}' ({}): sent dead letters while read by several threads",
                            n.spec.id, n.spec.type));
  }
  NodeInstanceDone(node);
  FinishSourceAcks(node, &scan.pending);
  Status st = n.source->Close();
  if (!st.ok()) Cancel(st.WithContext("node '{}': closing", n.spec.id));
}

}  // namespace sluice
