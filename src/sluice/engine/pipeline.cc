#include "sluice/engine/pipeline.h"

#include "sluice/core/cpus.h"
#include "sluice/expr/expr.h"

#include <algorithm>
#include <map>
#include <queue>

namespace sluice {

namespace {

size_t EditDistance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
      // Adjacent transposition counts as one edit ("bacth" -> "batch").
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], prev[j - 1]);
      }
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

Status NodeError(const NodeSpec& n, const std::string& message) {
  return Status(
      StatusCode::kConfigError,
      fmt::format("{}{}node '{}': {}", n.location, n.location.empty() ? "" : ": ", n.id, message));
}

/// A node that cannot be built from its options is a configuration error: give it the node's
/// location unless the node already named one.
Status AsConfigError(const NodeSpec& n, const Status& st) {
  if (st.code() == StatusCode::kConfigError) return st;
  return NodeError(n, st.message());
}

/// Return the option by which node `n` sends the records it rejects to a dead_letter output
/// — `on_error` (records it cannot process) or, for a lookup, `on_miss` (rows its reference
/// has no row for) set to dead_letter — or "" when it sends none.
std::string_view DeadLetterOption(const NodeSpec& n) {
  const OptionJson& v = n.options.values();
  for (const std::string_view option : {"on_error", "on_miss"}) {
    const std::string key(option);
    if (v.contains(key) && v[key].is_string() && v[key].get<std::string>() == kDeadLetterPort) {
      return option;
    }
  }
  return {};
}

bool RoutesDeadLetters(const NodeSpec& n) { return !DeadLetterOption(n).empty(); }

/// Return true when node `n` sends rows that came too late to a `late` output.
bool RoutesLate(const NodeSpec& n) {
  const OptionJson& v = n.options.values();
  return v.contains("late") && v["late"].is_string() && v["late"].get<std::string>() == "output";
}

}  // namespace

std::string SuggestNearest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = EditDistance(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

Result<std::unique_ptr<Pipeline>> Pipeline::Build(PipelineSpec spec, const NodeRegistry& registry) {
  auto p = std::unique_ptr<Pipeline>(new Pipeline());
  std::map<std::string, int> index;
  std::vector<std::string> ids;
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const auto& n = spec.nodes[i];
    if (!index.emplace(n.id, static_cast<int>(i)).second) {
      return NodeError(n, "duplicate node id");
    }
    ids.push_back(n.id);
  }
  if (spec.nodes.empty()) {
    return Status::ConfigError("{}: the pipeline has no nodes", spec.file);
  }

  const std::vector<std::string> type_names = registry.Names();

  // Resolve types and inputs.
  std::vector<PipelineNode> nodes(spec.nodes.size());
  for (size_t i = 0; i < spec.nodes.size(); ++i) {
    const NodeSpec& n = spec.nodes[i];
    PipelineNode& node = nodes[i];
    node.info = registry.Resolve(n.type, !n.inputs.empty());
    if (node.info == nullptr) {
      std::string hint = SuggestNearest(n.type, type_names);
      return NodeError(n, fmt::format("unknown node type '{}'{}", n.type,
                                      hint.empty() ? std::string(" (see `sluice nodes`)")
                                                   : " — did you mean '" + hint + "'?"));
    }
    const int ninputs = static_cast<int>(n.inputs.size());
    if (node.info->kind == NodeKind::kSource && ninputs > 0) {
      return NodeError(n, fmt::format("a '{}' source takes no inputs", n.type));
    }
    if (node.info->kind != NodeKind::kSource) {
      if (ninputs < std::max(1, node.info->min_inputs)) {
        return NodeError(n, fmt::format("'{}' needs {} input(s): add `inputs: [<node id>]`", n.type,
                                        std::max(1, node.info->min_inputs)));
      }
      if (node.info->max_inputs >= 0 && ninputs > node.info->max_inputs) {
        return NodeError(n, fmt::format("'{}' takes at most {} input(s), got {}", n.type,
                                        node.info->max_inputs, ninputs));
      }
    }
    if (n.parallelism < 1) return NodeError(n, "parallelism must be at least 1");
    if (!n.partition_by.empty()) {
      if (node.info->kind != NodeKind::kTransform) {
        return NodeError(n,
                         "partition_by applies to transforms (it spreads their input over "
                         "their instances)");
      }
      auto parsed = ParseExpr(n.partition_by);
      if (!parsed.ok()) {
        return NodeError(n, "partition_by: " + std::string(parsed.status().message()));
      }
    }
    if (n.parallelism > 1 && !(node.info->kind == NodeKind::kTransform &&
                               (node.info->stateless || !n.partition_by.empty()))) {
      return NodeError(
          n,
          fmt::format(
              "parallelism > 1 needs a stateless transform, or partition_by so that "
              "each instance owns its keys; '{}' is not stateless{}",
              n.type,
              node.info->kind == NodeKind::kTransform ? " (add partition_by: <key column>)" : ""));
    }
    for (int port = 0; port < ninputs; ++port) {
      const std::string& in = n.inputs[static_cast<size_t>(port)];
      // `<id>.dead_letter` is the records node <id> rejected (unless a node is called that).
      auto it = index.find(in);
      int from = 0;
      const size_t dot = in.rfind('.');
      if (it == index.end() && dot != std::string::npos) {
        const std::string up = in.substr(0, dot), output = in.substr(dot + 1);
        it = index.find(up);
        if (it != index.end()) {
          const NodeSpec& up_spec = spec.nodes[static_cast<size_t>(it->second)];
          if (output == kLatePort) {
            if (!RoutesLate(up_spec)) {
              return NodeError(n, fmt::format("input '{}': node '{}' sends rows that come after "
                                              "their window fired to '{}' only with `late: "
                                              "output`; set it there",
                                              in, up, in));
            }
            from = kLateOutput;
          } else if (output != kDeadLetterPort) {
            return NodeError(n, fmt::format("input '{}': node '{}' has no output '{}' (a node's "
                                            "outputs are its rows, '{}', with on_error: "
                                            "dead_letter '{}.dead_letter', and for a window with "
                                            "late: output '{}.late')",
                                            in, up, output, up, up, up));
          } else if (!RoutesDeadLetters(up_spec)) {
            return NodeError(n, fmt::format("input '{}': node '{}' sends the records it rejects "
                                            "to '{}' only with `on_error: dead_letter` (a "
                                            "lookup: `on_miss: dead_letter`); set it there",
                                            in, up, in));
          } else {
            from = kDeadLetterOutput;
          }
        }
      }
      if (it == index.end()) {
        std::string hint = SuggestNearest(in, ids);
        return NodeError(n, fmt::format("unknown input '{}'{}", in,
                                        hint.empty() ? "" : " — did you mean '" + hint + "'?"));
      }
      if (it->second == static_cast<int>(i)) return NodeError(n, "a node cannot be its own input");
      for (size_t k = 0; k < node.inputs.size(); ++k) {
        if (node.inputs[k] == it->second && node.input_from[k] == from) {
          return NodeError(n, fmt::format("input '{}' is listed twice (it would deliver every "
                                          "row twice); list it once",
                                          in));
        }
      }
      node.inputs.push_back(it->second);
      node.input_from.push_back(from);
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const NodeSpec& n = spec.nodes[i];
    for (const std::string& a : n.after) {
      if (nodes[i].info->kind != NodeKind::kSource) {
        return NodeError(n, "after: applies to sources (a node downstream starts with its inputs)");
      }
      auto it = index.find(a);
      if (it == index.end()) {
        std::string hint = SuggestNearest(a, ids);
        return NodeError(n, fmt::format("after: unknown node '{}'{}", a,
                                        hint.empty() ? "" : " — did you mean '" + hint + "'?"));
      }
      if (it->second == static_cast<int>(i))
        return NodeError(n, "after: a node cannot wait for itself");
      nodes[i].after.push_back(it->second);
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (size_t port = 0; port < nodes[i].inputs.size(); ++port) {
      auto& up = nodes[static_cast<size_t>(nodes[i].inputs[port])];
      up.outputs.push_back(static_cast<int>(i));
      up.output_ports.push_back(static_cast<int>(port));
      up.output_from.push_back(nodes[i].input_from[port]);
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& from = nodes[i].output_from;
    const bool rows_used = std::count(from.begin(), from.end(), 0) > 0;
    const bool dead_used = std::count(from.begin(), from.end(), kDeadLetterOutput) > 0;
    const bool late_used = std::count(from.begin(), from.end(), kLateOutput) > 0;
    if (RoutesLate(spec.nodes[i]) && !late_used) {
      return NodeError(spec.nodes[i],
                       fmt::format("late: output, but no node takes '{}.late' as input: add a "
                                   "sink with `inputs: [{}.late]` (or use late: drop to count and "
                                   "drop them)",
                                   spec.nodes[i].id, spec.nodes[i].id));
    }
    if (nodes[i].info->kind != NodeKind::kSink && !rows_used) {
      return NodeError(spec.nodes[i],
                       "its output is not used by any node: add it to a sink's `inputs` or "
                       "remove it");
    }
    if (const std::string_view option = DeadLetterOption(spec.nodes[i]);
        !option.empty() && !dead_used) {
      if (nodes[i].info->kind == NodeKind::kSink) {
        return NodeError(spec.nodes[i],
                         fmt::format("{}: dead_letter needs an output, and a sink has none; use "
                                     "fail or skip",
                                     option));
      }
      return NodeError(spec.nodes[i],
                       fmt::format("{}: dead_letter, but no node takes '{}.dead_letter' "
                                   "as input: add a sink with `inputs: [{}.dead_letter]` (or use "
                                   "{}: skip to count and drop them)",
                                   option, spec.nodes[i].id, spec.nodes[i].id, option));
    }
  }

  // Topological order (Kahn); anything left over sits on a cycle.
  // A source's `after` counts as an input here: it is ordered after the nodes it waits for,
  // and a wait on its own downstream is a cycle.
  std::vector<int> indegree(nodes.size());
  std::vector<std::vector<int>> waiters(nodes.size());  // node -> the sources waiting for it
  for (size_t i = 0; i < nodes.size(); ++i) {
    indegree[i] = static_cast<int>(nodes[i].inputs.size() + nodes[i].after.size());
    for (int a : nodes[i].after) waiters[static_cast<size_t>(a)].push_back(static_cast<int>(i));
  }
  std::queue<int> ready;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (indegree[i] == 0) ready.push(static_cast<int>(i));
  }
  std::vector<int> order;
  while (!ready.empty()) {
    const int i = ready.front();
    ready.pop();
    order.push_back(i);
    for (int o : nodes[static_cast<size_t>(i)].outputs) {
      if (--indegree[static_cast<size_t>(o)] == 0) ready.push(o);
    }
    for (int w : waiters[static_cast<size_t>(i)]) {
      if (--indegree[static_cast<size_t>(w)] == 0) ready.push(w);
    }
  }
  if (order.size() != nodes.size()) {
    std::vector<std::string> cyc;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (indegree[i] > 0) cyc.push_back("'" + spec.nodes[i].id + "'");
    }
    std::string list;
    for (const auto& c : cyc) list += (list.empty() ? "" : ", ") + c;
    size_t first = 0;
    while (indegree[first] == 0) ++first;
    return NodeError(spec.nodes[first],
                     fmt::format("the graph has a cycle through nodes {} (counting the waits of "
                                 "`after`); a pipeline must be a DAG",
                                 list));
  }

  // Re-index nodes in topological order.
  std::vector<int> new_index(nodes.size());
  for (size_t k = 0; k < order.size(); ++k)
    new_index[static_cast<size_t>(order[k])] = static_cast<int>(k);
  p->nodes_.resize(nodes.size());
  for (size_t k = 0; k < order.size(); ++k) {
    const auto old = static_cast<size_t>(order[k]);
    PipelineNode& dst = p->nodes_[k];
    dst = std::move(nodes[old]);
    dst.spec = spec.nodes[old];
    for (auto& in : dst.inputs) in = new_index[static_cast<size_t>(in)];
    for (auto& out : dst.outputs) out = new_index[static_cast<size_t>(out)];
    for (auto& a : dst.after) a = new_index[static_cast<size_t>(a)];
  }

  // Build the nodes and bind schemas where they are known.
  for (auto& node : p->nodes_) {
    const NodeTypeInfo& info = *node.info;
    switch (info.kind) {
      case NodeKind::kSource: {
        auto made = info.make_source(node.spec.options);
        if (!made.ok()) return AsConfigError(node.spec, made.status());
        node.source = std::move(*made);
        node.output_schema = node.source->schema();
        break;
      }
      case NodeKind::kTransform: {
        for (int k = 0; k < node.spec.parallelism; ++k) {
          auto made = info.make_transform(node.spec.options);
          if (!made.ok()) return AsConfigError(node.spec, made.status());
          node.transforms.push_back(std::move(*made));
        }
        bool all_known = true;
        const std::vector<SchemaPtr> in_schemas = InputSchemas(p->nodes_, node, &all_known);
        if (all_known) {
          for (auto& t : node.transforms) {
            auto bound = t->Bind(in_schemas);
            if (!bound.ok()) return AsConfigError(node.spec, bound.status());
            node.output_schema = *bound;
          }
        }
        break;
      }
      case NodeKind::kSink: {
        auto made = info.make_sink(node.spec.options);
        if (!made.ok()) return AsConfigError(node.spec, made.status());
        node.sink = std::move(*made);
        break;
      }
    }
  }
  // The sequential executor runs its sources one after another: a stream would keep every
  // source after it from ever starting.
  if (spec.settings.engine == EngineKind::kSequential) {
    int sources = 0;
    const PipelineNode* stream = nullptr;
    for (const auto& node : p->nodes_) {
      if (node.kind() != NodeKind::kSource) continue;
      ++sources;
      if (node.source->Unbounded() && stream == nullptr) stream = &node;
    }
    if (sources > 1 && stream != nullptr) {
      return NodeError(stream->spec,
                       fmt::format("'{}' never ends by itself, and the sequential engine runs "
                                   "sources one after another: the other {} source(s) would "
                                   "never start. Use the parallel engine (settings: engine: "
                                   "parallel, the default) or `--engine parallel`",
                                   stream->spec.type, sources - 1));
    }
  }
  // A source that stops at MaxInFlight batches without acks must not feed a transform that
  // keeps acks until more input moves its watermark: each would wait for the other. And a
  // stream without a watermark would never let such a transform (a window) emit anything.
  for (const auto& node : p->nodes_) {
    if (node.kind() != NodeKind::kSource) continue;
    const bool endless = node.source->Unbounded() && !node.source->HasWatermark();
    if (node.source->MaxInFlight() <= 0 && !endless) continue;
    std::vector<int> stack(node.outputs.begin(), node.outputs.end());
    std::vector<bool> seen(p->nodes_.size());
    while (!stack.empty()) {
      const auto i = static_cast<size_t>(stack.back());
      stack.pop_back();
      if (seen[i]) continue;
      seen[i] = true;
      const PipelineNode& down = p->nodes_[i];
      if (endless && down.kind() == NodeKind::kTransform &&
          down.transforms[0]->HoldsAcksUntilWatermark()) {
        return NodeError(down.spec,
                         fmt::format("'{}' emits a window once the watermark passes its end, but "
                                     "source '{}' never ends and sets no watermark: nothing "
                                     "would ever come out. Give the source its event-time column "
                                     "(redis_stream: `event_time: <column>`)",
                                     down.spec.id, node.spec.id));
      }
      if (node.source->MaxInFlight() > 0 && down.kind() == NodeKind::kTransform &&
          down.transforms[0]->HoldsAcksUntilWatermark()) {
        return NodeError(down.spec,
                         fmt::format("'{}' keeps the acknowledgements of the rows it holds until "
                                     "its watermark moves on, but source '{}' hands out at most "
                                     "{} batches before it needs acknowledgements back: neither "
                                     "could go on. Feed it from a source without that limit, or "
                                     "write the source's rows somewhere first",
                                     down.spec.id, node.spec.id, node.source->MaxInFlight()));
      }
      stack.insert(stack.end(), down.outputs.begin(), down.outputs.end());
    }
  }
  // A source that deletes what it read must not feed a node that loses data: the source
  // would delete rows (or values) that were never written anywhere.
  for (const auto& node : p->nodes_) {
    if (node.kind() != NodeKind::kSource || !node.source->ConsumesInput()) continue;
    std::vector<int> stack(node.outputs.begin(), node.outputs.end());
    std::vector<bool> seen(p->nodes_.size());
    while (!stack.empty()) {
      const auto i = static_cast<size_t>(stack.back());
      stack.pop_back();
      if (seen[i]) continue;
      seen[i] = true;
      const PipelineNode& down = p->nodes_[i];
      std::string lossy;
      if (down.kind() == NodeKind::kTransform && !down.transforms.empty()) {
        lossy = down.transforms.front()->LossyBecause();
      } else if (down.kind() == NodeKind::kSink && down.sink != nullptr) {
        lossy = down.sink->LossyBecause();
      }
      if (!lossy.empty()) {
        return NodeError(down.spec,
                         fmt::format("'{}' {}, but source '{}' deletes every row it read once the "
                                     "pipeline is done with it: what '{}' loses would be deleted "
                                     "without being written anywhere. Select the rows in the "
                                     "source instead (its `where:` option), or keep every column "
                                     "and value on the way to the sinks.",
                                     down.spec.id, lossy, node.spec.id, down.spec.id));
      }
      stack.insert(stack.end(), down.outputs.begin(), down.outputs.end());
    }
  }
  // The parallel executor runs chains of batch-local transforms fused, on every worker.
  if (spec.settings.engine == EngineKind::kParallel) {
    p->workers_ = spec.settings.workers > 0 ? spec.settings.workers : AvailableCpus();
    p->segments_ = PlanSegments(&p->nodes_);
    for (const Segment& s : p->segments_) {
      for (int m : s.members) {
        Status st = AddInstances(&p->nodes_, m, p->workers_);
        if (!st.ok()) return AsConfigError(p->nodes_[static_cast<size_t>(m)].spec, st);
      }
    }
    for (Segment& s : p->segments_) {
      if (!s.source_runs || p->workers_ < 2 || spec.settings.max_parallel_nodes > 0) continue;
      const PipelineNode& head = p->nodes_[static_cast<size_t>(s.head)];
      const PipelineNode& src = p->nodes_[static_cast<size_t>(head.inputs[0])];
      const Source& source = *src.source;
      s.source_reads = src.outputs.size() == 1 && src.after.empty() && source.ConcurrentNext() &&
                       !source.HasWatermark() && source.MaxInFlight() == 0 && !source.Unbounded();
    }
  }
  // Queues not given a size. A segment its source feeds alone: one batch per worker. Measured
  // on bench/diamond (two cores, 10 runs each): 2 batches 0.229-0.237 s, 8 batches 0.243-0.250
  // s (what a queue holds is memory touched afresh, page by page), 1 batch 0.241-0.251 s (the
  // source runs too many batches itself).
  for (const Segment& s : p->segments_) {
    NodeSpec& head = p->nodes_[static_cast<size_t>(s.head)].spec;
    if (s.source_runs && head.queue_batches == 0) head.queue_batches = p->workers_;
  }
  for (PipelineNode& n : p->nodes_) {
    if (n.spec.queue_batches == 0) n.spec.queue_batches = kDefaultQueueBatches;
  }
  p->spec_ = std::move(spec);
  return p;
}

std::vector<SchemaPtr> InputSchemas(const std::vector<PipelineNode>& nodes,
                                    const PipelineNode& node, bool* all_known) {
  std::vector<SchemaPtr> schemas;
  for (size_t k = 0; k < node.inputs.size(); ++k) {
    SchemaPtr s = node.input_from[k] == kDeadLetterOutput
                      ? DeadLetterSchema()
                      : nodes[static_cast<size_t>(node.inputs[k])].output_schema;
    *all_known = *all_known && s != nullptr;
    schemas.push_back(std::move(s));
  }
  return schemas;
}

std::string Pipeline::ToDot() const {
  std::string out = fmt::format("digraph \"{}\" {{\n  rankdir=LR;\n", spec_.name);
  for (const auto& n : nodes_) {
    const char* shape = n.kind() == NodeKind::kSource ? "invhouse"
                        : n.kind() == NodeKind::kSink ? "house"
                                                      : "box";
    std::string label = n.spec.id + "\\n(" + n.spec.type + ")";
    if (n.instances() > 1) label += fmt::format(" x{}", n.instances());
    out += fmt::format("  \"{}\" [shape={}, label=\"{}\"];\n", n.spec.id, shape, label);
  }
  for (const auto& n : nodes_) {
    for (size_t k = 0; k < n.outputs.size(); ++k) {
      out += fmt::format(
          "  \"{}\" -> \"{}\"{};\n", n.spec.id, nodes_[static_cast<size_t>(n.outputs[k])].spec.id,
          n.output_from[k] == kDeadLetterOutput ? " [style=dashed, label=\"dead_letter\"]"
          : n.output_from[k] == kLateOutput     ? " [style=dashed, label=\"late\"]"
                                                : "");
    }
  }
  out += "}\n";
  return out;
}

}  // namespace sluice
