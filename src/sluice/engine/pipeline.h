#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"
#include "sluice/engine/segment.h"

namespace sluice {

enum class EngineKind : uint8_t { kParallel, kSequential };

/// Run-wide settings (the `settings:` section of a pipeline file).
struct PipelineSettings {
  EngineKind engine = EngineKind::kParallel;
  int max_parallel_nodes = 0;  ///< Nodes processing a batch at the same moment; 0 = no limit.
  /// Threads that run each segment of batch-local transforms (parallel executor); 0: one per
  /// CPU this process may use.
  int workers = 0;
  int64_t memory_limit = 0;    ///< Bytes of in-flight batches; 0 = no limit.
  std::string history;         ///< Run-history location: a SQLite path or a PostgreSQL DSN.
  std::string metrics_listen;  ///< host:port for /metrics and /api/v1/run; "" = off.
};

/// One node as declared: id, type, inputs, engine-level options and the node's own options.
/// A node's input queue in batches unless it says otherwise (NodeSpec::queue_batches).
inline constexpr int64_t kDefaultQueueBatches = 8;

struct NodeSpec {
  std::string id;
  std::string type;
  std::vector<std::string> inputs;
  /// A source with `after`: it starts reading once every node listed has finished (a sink:
  /// all its input written and flushed). How a pipeline loads relationships after the
  /// resources their foreign keys point at.
  std::vector<std::string> after;
  int parallelism = 1;
  bool ordered = true;
  /// With parallelism > 1: an expression whose value picks the instance of each row, so each
  /// instance owns its keys (what a stateful transform needs to run in parallel). "" = none.
  std::string partition_by;
  /// 0: the default, set by Pipeline::Build — kDefaultQueueBatches, or one per worker at the
  /// head of a segment its source feeds alone (Segment::source_runs): finding that queue full,
  /// the source takes its batch through itself, so a deeper queue would only hold memory.
  int64_t queue_batches = 0;
  /// 0: the default — 64 MiB, or less under settings.memory_limit (see ChannelBytes).
  int64_t queue_bytes = 0;
  NodeOptions options;
  std::string location;  ///< "file:line:col" of the node's key, for messages.
};

/// A whole pipeline as declared in one file.
struct PipelineSpec {
  std::string name;
  std::string file;
  PipelineSettings settings;
  std::vector<NodeSpec> nodes;
  OptionJson alerts;  ///< The `alerts:` list as JSON (null when absent); checked by the loader.
  /// Sections a command added to the format (LoadOptions::sections), checked, with defaults
  /// filled in and where each key was written; the engine ignores them.
  std::map<std::string, NodeOptions> sections;
};

/// One node of a built pipeline: its spec, type, instances and edges.
struct PipelineNode {
  NodeSpec spec;
  const NodeTypeInfo* info = nullptr;
  std::unique_ptr<Source> source;
  std::vector<std::unique_ptr<Transform>> transforms;  ///< One per parallel instance.
  std::unique_ptr<Sink> sink;
  std::vector<int> inputs;        ///< Indices of upstream nodes, in declared order.
  std::vector<int> input_from;    ///< For each input: which output of that node it takes.
  std::vector<int> outputs;       ///< Indices of downstream nodes.
  std::vector<int> output_ports;  ///< For each output: which input of that node this feeds.
  /// For each output: which of this node's outputs feeds it — 0 its rows, kDeadLetterOutput
  /// the records it rejected (an input written `<id>.dead_letter`).
  std::vector<int> output_from;
  std::vector<int> after;   ///< Indices of the nodes this source waits for (NodeSpec::after).
  SchemaPtr output_schema;  ///< Known before the run when every upstream schema is.
  /// The segment (Pipeline::segments) this transform runs fused in, or -1.
  int segment = -1;
  NodeKind kind() const { return info->kind; }
  /// How many instances run: a transform's objects (parallelism, or a segment's workers), else 1.
  int instances() const {
    return kind() == NodeKind::kTransform ? static_cast<int>(transforms.size()) : 1;
  }
};

/// Return the schemas of `node`'s inputs (null where unknown before the run), setting
/// `*all_known` false when any is.
std::vector<SchemaPtr> InputSchemas(const std::vector<PipelineNode>& nodes,
                                    const PipelineNode& node, bool* all_known);

/// The output of a node that carries its rejected records (Message::port).
inline constexpr int kDeadLetterOutput = 1;
/// The output of a window that carries the rows that came after their windows fired
/// (`late: output`), taken as `<id>.late`.
inline constexpr int kLateOutput = 2;
inline constexpr std::string_view kLatePort = "late";

/// A validated DAG with instantiated nodes, in topological order (every node after its inputs).
class Pipeline {
 public:
  /// Check the graph (unknown types and inputs, wrong input counts, cycles, unused outputs),
  /// build every node through the registry and bind schemas where known. Errors are
  /// kConfigError and name the file, line and column of the offending node.
  static Result<std::unique_ptr<Pipeline>> Build(PipelineSpec spec, const NodeRegistry& registry);

  const PipelineSpec& spec() const { return spec_; }
  const std::string& name() const { return spec_.name; }
  std::vector<PipelineNode>& nodes() { return nodes_; }
  const std::vector<PipelineNode>& nodes() const { return nodes_; }
  /// The chains of batch-local transforms the parallel executor runs fused (engine/segment.h);
  /// none under the sequential executor.
  const std::vector<Segment>& segments() const { return segments_; }
  /// Threads per segment: settings.workers, or the CPUs this process may use.
  int workers() const { return workers_; }
  /// Return the graph in Graphviz DOT.
  std::string ToDot() const;

 private:
  PipelineSpec spec_;
  std::vector<PipelineNode> nodes_;
  std::vector<Segment> segments_;
  int workers_ = 1;
};

/// Return the candidate closest to `word` by edit distance when it is plausibly a typo, else "".
std::string SuggestNearest(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace sluice
