#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"

namespace sluice {

enum class NodeKind : uint8_t { kSource, kTransform, kSink };
std::string_view NodeKindName(NodeKind kind);

using SourceFactory = std::function<Result<std::unique_ptr<Source>>(const NodeOptions&)>;
using TransformFactory = std::function<Result<std::unique_ptr<Transform>>(const NodeOptions&)>;
using SinkFactory = std::function<Result<std::unique_ptr<Sink>>(const NodeOptions&)>;

/// Everything the engine, the config loader and the docs know about one node type.
struct NodeTypeInfo {
  std::string name;
  NodeKind kind = NodeKind::kSource;
  std::string doc;  ///< One line: what the node does.
  OptionSchema options;
  /// For transforms: instances share no state, so `parallelism: N` is allowed.
  bool stateless = false;
  int min_inputs = 0;
  int max_inputs = 0;  ///< -1: any number.
  SourceFactory make_source;
  TransformFactory make_transform;
  SinkFactory make_sink;
};

/// The set of node types a pipeline may use. Filled once at start-up by RegisterBuiltinNodes
/// (or by an embedding program), then read-only and safe to share between threads.
class NodeRegistry {
 public:
  void AddSource(std::string name, std::string doc, OptionSchema options, SourceFactory f);
  void AddTransform(std::string name, std::string doc, OptionSchema options, TransformFactory f,
                    bool stateless, int min_inputs = 1, int max_inputs = 1);
  void AddSink(std::string name, std::string doc, OptionSchema options, SinkFactory f);

  /// Return the type called `name`, or nullptr. A name may denote both a source and a sink
  /// (`sqlite`, `file`): then a node with inputs is the sink (or transform), one without is the
  /// source.
  const NodeTypeInfo* Resolve(const std::string& name, bool has_inputs) const;
  /// Return the first type called `name` (source before transform before sink), or nullptr.
  const NodeTypeInfo* Find(const std::string& name) const;
  /// Return every registered type, by name then kind.
  std::vector<const NodeTypeInfo*> All() const;
  /// Return the distinct type names.
  std::vector<std::string> Names() const;

 private:
  std::map<std::pair<std::string, NodeKind>, NodeTypeInfo> types_;
};

/// Options every node accepts, whatever its type (type, inputs, parallelism, ...).
const OptionSchema& CommonNodeOptions();

}  // namespace sluice
