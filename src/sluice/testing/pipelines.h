#pragma once

// Building pipelines in engine tests without a YAML file (link sluice_engine).

#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

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

}  // namespace sluice::testing
