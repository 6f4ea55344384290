#include "sluice/engine/segment.h"

#include <algorithm>

#include "sluice/engine/pipeline.h"

namespace sluice {

namespace {

bool Fusable(const PipelineNode& n) {
  return n.kind() == NodeKind::kTransform && n.spec.parallelism == 1 &&
         n.spec.partition_by.empty() && n.transforms.size() == 1 && n.transforms[0]->BatchLocal();
}

}  // namespace

std::vector<Segment> PlanSegments(std::vector<PipelineNode>* nodes) {
  std::vector<Segment> segments;
  for (size_t i = 0; i < nodes->size(); ++i) {
    PipelineNode& n = (*nodes)[i];
    n.segment = -1;
    if (!Fusable(n)) continue;
    int joined = -1;
    for (int in : n.inputs) {
      const int s = (*nodes)[static_cast<size_t>(in)].segment;
      if (s < 0 || (joined >= 0 && s != joined)) {
        joined = -1;
        break;
      }
      joined = s;
    }
    if (joined < 0) {
      joined = static_cast<int>(segments.size());
      segments.push_back(Segment{static_cast<int>(i), {}});
    }
    n.segment = joined;
    segments[static_cast<size_t>(joined)].members.push_back(static_cast<int>(i));
  }
  for (Segment& s : segments) {
    const PipelineNode& head = (*nodes)[static_cast<size_t>(s.head)];
    s.source_runs = head.inputs.size() == 1 && head.input_from[0] == 0 &&
                    (*nodes)[static_cast<size_t>(head.inputs[0])].kind() == NodeKind::kSource;
  }
  return segments;
}

Status AddInstances(std::vector<PipelineNode>* nodes, int node, int count) {
  PipelineNode& n = (*nodes)[static_cast<size_t>(node)];
  bool all_known = true;
  const std::vector<SchemaPtr> in_schemas = InputSchemas(*nodes, n, &all_known);
  while (n.transforms.size() < static_cast<size_t>(count)) {
    auto made = n.info->make_transform(n.spec.options);
    if (!made.ok()) return made.status();
    if (all_known) SLUICE_RETURN_NOT_OK((*made)->Bind(in_schemas).status());
    n.transforms.push_back(std::move(*made));
  }
  return Status::OK();
}

}  // namespace sluice
