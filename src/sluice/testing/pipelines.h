#pragma once

// Building pipelines in engine tests without a YAML file (link sluice_engine).

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/engine/executor.h"
#include "sluice/engine/pipeline.h"

namespace sluice::testing {

/// One node as a config file would declare it, at "test.yaml:1:1".
inline NodeSpec TestNode(std::string id, std::string type, std::vector<std::string> inputs,
                         nlohmann::json options = nlohmann::json::object(), int parallelism = 1,
                         std::string partition_by = "") {
  NodeSpec n;
  n.id = id;
  n.type = type;
  n.parallelism = parallelism;
  n.partition_by = std::move(partition_by);
  n.inputs = std::move(inputs);
  n.options = NodeOptions::ForTest(std::move(id), std::move(options), std::move(type));
  n.location = "test.yaml:1:1";
  return n;
}

/// Build `nodes` as pipeline "test" of test.yaml, run by `engine`.
inline Result<std::unique_ptr<Pipeline>> BuildTestPipeline(std::vector<NodeSpec> nodes,
                                                           const NodeRegistry& registry,
                                                           EngineKind engine) {
  PipelineSpec spec;
  spec.name = "test";
  spec.file = "test.yaml";
  spec.settings.engine = engine;
  spec.nodes = std::move(nodes);
  return Pipeline::Build(std::move(spec), registry);
}

/// A pipeline built from test nodes and run once, kept for inspecting its stats afterwards.
/// The registry must outlive it (the pipeline points into it).
class TestRun {
 public:
  Status Run(std::vector<NodeSpec> nodes, const NodeRegistry& registry, EngineKind engine,
             RunOptions options = {}) {
    auto p = BuildTestPipeline(std::move(nodes), registry, engine);
    if (!p.ok()) return p.status();
    pipeline_ = std::move(*p);
    run_ = std::make_unique<PipelineRun>(pipeline_.get(), std::move(options));
    return run_->Execute();
  }
  /// Return node `node`'s counter `name` (0 when never counted, -1 for an unknown node).
  int64_t Counter(const std::string& node, const std::string& name) const {
    const auto& nodes = pipeline_->nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].spec.id != node) continue;
      const auto c = run_->stats(i).Counters();
      auto it = c.find(name);
      return it == c.end() ? 0 : it->second;
    }
    return -1;
  }
  PipelineRun& run() { return *run_; }

 private:
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<PipelineRun> run_;
};

}  // namespace sluice::testing
