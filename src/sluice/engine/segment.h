#pragma once

// Segments: chains of batch-local transforms that the parallel executor runs fused, every
// worker taking a whole batch through all of them (docs/ARCHITECTURE.md, "Executors").

#include <vector>

#include "sluice/core/status.h"

namespace sluice {

struct PipelineNode;

/// A connected run of batch-local transforms (Transform::BatchLocal) with one entry: the head,
/// whose inputs all come from outside; every other member takes all its inputs from members.
/// What members emit to nodes outside leaves the segment in the order of the head's input.
struct Segment {
  int head = -1;
  std::vector<int> members;  ///< Topological order, the head first.
  /// The head's one input is a source's rows: the source's thread is one of the workers —
  /// when the head's queue is full it takes its new batch through the segment itself (while
  /// the batch is in its core's cache) instead of waiting, with the last instance of every
  /// member; once it has ended it drains the queue with the others — and the segment has one
  /// thread fewer. With one worker (one CPU) the segment has no threads: the source takes
  /// every batch and watermark through as it makes them, as the sequential executor would.
  bool source_runs = false;
  /// Set with source_runs when the source may be read by several threads (Source::
  /// ConcurrentNext), feeds nothing else, and there are two workers or more (parallel executor,
  /// no max_parallel_nodes, no `after`): every worker, the source's thread among them, reads
  /// the source's next batch itself and takes it through, so that reading is not one thread's
  /// serial stage. The head's queue is not used; a batch's number is the source's `seq`.
  bool source_reads = false;
  /// The threads the segment starts: the workers, less the source's.
  int Threads(int workers) const { return workers - (source_runs ? 1 : 0); }
};

/// Return the segments of `nodes` (in topological order, built and bound), setting each
/// member's PipelineNode::segment and each segment's Segment::source_runs. A transform joins the
/// segment of its inputs when every input is a member of that one segment; a batch-local transform
/// that cannot (inputs from outside, from two segments, or from a node that is not batch-local)
/// heads a new one. A transform declared with `parallelism` or `partition_by` is in none: it keeps
/// its instances.
std::vector<Segment> PlanSegments(std::vector<PipelineNode>* nodes);

/// Give transform `node` `count` instances (PipelineNode::transforms), the new ones made from
/// its options and bound to its input schemas like the first.
Status AddInstances(std::vector<PipelineNode>* nodes, int node, int count);

}  // namespace sluice
