#include "sluice/engine/registry.h"

namespace sluice {

std::string_view NodeKindName(NodeKind kind) {
  switch (kind) {
    case NodeKind::kSource:
      return "source";
    case NodeKind::kTransform:
      return "transform";
    case NodeKind::kSink:
      return "sink";
  }
  return "?";
}

void NodeRegistry::AddSource(std::string name, std::string doc, OptionSchema options,
                             SourceFactory f) {
  NodeTypeInfo info;
  info.name = name;
  info.kind = NodeKind::kSource;
  info.doc = std::move(doc);
  info.options = std::move(options);
  info.make_source = std::move(f);
  types_[{name, info.kind}] = std::move(info);
}

void NodeRegistry::AddTransform(std::string name, std::string doc, OptionSchema options,
                                TransformFactory f, bool stateless, int min_inputs,
                                int max_inputs) {
  NodeTypeInfo info;
  info.name = name;
  info.kind = NodeKind::kTransform;
  info.doc = std::move(doc);
  info.options = std::move(options);
  info.make_transform = std::move(f);
  info.stateless = stateless;
  info.min_inputs = min_inputs;
  info.max_inputs = max_inputs;
  types_[{name, info.kind}] = std::move(info);
}

void NodeRegistry::AddSink(std::string name, std::string doc, OptionSchema options, SinkFactory f) {
  NodeTypeInfo info;
  info.name = name;
  info.kind = NodeKind::kSink;
  info.doc = std::move(doc);
  info.options = std::move(options);
  info.make_sink = std::move(f);
  info.min_inputs = 1;
  info.max_inputs = -1;
  types_[{name, info.kind}] = std::move(info);
}

const NodeTypeInfo* NodeRegistry::Find(const std::string& name) const {
  for (NodeKind k : {NodeKind::kSource, NodeKind::kTransform, NodeKind::kSink}) {
    auto it = types_.find({name, k});
    if (it != types_.end()) return &it->second;
  }
  return nullptr;
}

const NodeTypeInfo* NodeRegistry::Resolve(const std::string& name, bool has_inputs) const {
  const NodeKind first = has_inputs ? NodeKind::kTransform : NodeKind::kSource;
  for (NodeKind k : {first, NodeKind::kSink, NodeKind::kSource, NodeKind::kTransform}) {
    auto it = types_.find({name, k});
    if (it != types_.end()) return &it->second;
  }
  return nullptr;
}

std::vector<const NodeTypeInfo*> NodeRegistry::All() const {
  std::vector<const NodeTypeInfo*> out;
  for (const auto& [key, info] : types_) out.push_back(&info);
  return out;
}

std::vector<std::string> NodeRegistry::Names() const {
  std::vector<std::string> out;
  for (const auto& [key, info] : types_) {
    if (out.empty() || out.back() != key.first) out.push_back(key.first);
  }
  return out;
}

const OptionSchema& CommonNodeOptions() {
  static const OptionSchema kCommon = {
      {"type", OptionType::kString, "", "The node type (see `sluice nodes`).", true, {}},
      {"inputs",
       OptionType::kStringList,
       "",
       "Ids of the nodes whose output this node reads.",
       false,
       {}},
      {"after",
       OptionType::kStringList,
       "",
       "Sources only: ids of nodes that must finish before this source starts reading (a sink "
       "finishes once all its input is written and flushed), e.g. relationships after the "
       "resources their foreign keys point at.",
       false,
       {}},
      {"parallelism",
       OptionType::kInt,
       "1",
       "Instances of a transform that run at once: sharing one input (stateless), or each "
       "owning the keys partition_by gives it.",
       false,
       {}},
      {"ordered",
       OptionType::kBool,
       "true",
       "With parallelism > 1, keep output in input order.",
       false,
       {}},
      {"partition_by",
       OptionType::kExpr,
       "",
       "With parallelism > 1: an expression (usually a key column) whose value picks the "
       "instance of each row, so every row of one key goes to the same instance, in order. A "
       "stateful transform runs in parallel only with it; output order is kept per key only.",
       false,
       {}},
      {"queue_batches",
       OptionType::kInt,
       "8",
       "Capacity of this node's input queue in batches. The first node of a chain of "
       "row-by-row transforms fed by one source alone has one per worker instead (the source "
       "runs a batch itself when it finds that queue full).",
       false,
       {}},
      {"queue_bytes",
       OptionType::kByteSize,
       "",
       "Capacity of this node's input queue in bytes (a queue always takes one batch). Default "
       "64MiB, or less with settings.memory_limit: all queues together at most half of it.",
       false,
       {}},
  };
  return kCommon;
}

}  // namespace sluice
