#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "sluice/core/result.h"
#include "sluice/engine/pipeline.h"
#include "sluice/engine/registry.h"

namespace sluice {

/// Return the value of an environment variable, or nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
/// Look variables up in the process environment.
EnvLookup ProcessEnv();

struct LoadOptions {
  /// `--set` overrides, each "dotted.path=value" (e.g. "nodes.src.rows=5000").
  std::vector<std::string> overrides;
  EnvLookup env = ProcessEnv();
  /// Top-level sections besides pipeline, settings, nodes and alerts that the caller accepts,
  /// each an OptionSpec::Record (`sluice agent`'s `agent:`). Their keys are checked as node
  /// options are (an unknown key is an error at its line with the nearest valid one; types;
  /// defaults filled in); the result is PipelineSpec::sections[name], present even when the
  /// file has no such section.
  std::vector<OptionSpec> sections;
};

/// Substitute `${VAR}` and `${VAR:-default}` in `text` (`$${` stays a literal `${`). Errors
/// name file:line:column of the reference.
Result<std::string> SubstituteEnv(const std::string& text, const std::string& file,
                                  const EnvLookup& env);

/// Parse and validate a pipeline file: YAML syntax, top-level sections, settings, node types
/// and every node option against its declared schema, with defaults filled in. Every error is a
/// kConfigError that starts with "file:line:col:" and suggests the nearest valid name. Graph
/// checks (inputs, cycles) happen in Pipeline::Build.
Result<PipelineSpec> LoadPipelineFile(const std::string& path, const NodeRegistry& registry,
                                      const LoadOptions& options = {});
/// Same, from text already in memory; `file` is used in messages.
Result<PipelineSpec> LoadPipelineText(const std::string& text, const std::string& file,
                                      const NodeRegistry& registry,
                                      const LoadOptions& options = {});

}  // namespace sluice
