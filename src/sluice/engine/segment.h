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
};

/// Return the segments of `nodes` (in topological order, built and bound), setting each
/// member's PipelineNode::segment. A transform joins the segment of its inputs when every
/// input is a member of that one segment; a batch-local transform that cannot (inputs from
/// outside, from two segments, or from a node that is not batch-local) heads a new one. A
/// transform declared with `parallelism` or `partition_by` is in none: it keeps its instances.
std::vector<Segment> PlanSegments(std::vector<PipelineNode>* nodes);

/// Give transform `node` `count` instances (PipelineNode::transforms), the new ones made from
/// its options and bound to its input schemas like the first.
Status AddInstances(std::vector<PipelineNode>* nodes, int node, int count);

/// Return the CPUs this process may run on (its affinity mask), at least 1.
int AvailableCpus();

}  // namespace sluice
