#pragma once

// `sluice agent`: a pipeline with a procfs source (docs/AGENT.md), whose latest sample is served
// over HTTP — /api/v1/metrics (JSON), /metrics (Prometheus), /healthz and / (a live page).
// This header has what the command needs besides the CLI: the `agent:` section, the built-in
// config, the choice of the source to serve and the HTTP routes.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/agent/latest_sample.h"
#include "sluice/core/result.h"
#include "sluice/engine/options.h"
#include "sluice/engine/pipeline.h"
#include "sluice/serve/http_server.h"

namespace sluice::agent {

/// The pipeline `sluice agent` runs without --config: a procfs source sampling every second.
inline constexpr std::string_view kDefaultConfig = R"(pipeline: agent
agent:
  listen: 127.0.0.1:9108
nodes:
  host:
    type: procfs
    interval: 1s
)";
/// The name of the built-in config in messages.
inline constexpr std::string_view kDefaultConfigName = "(built-in agent config)";

/// Return the schema of the `agent:` section (listen address, the source served, HTTP limits),
/// for LoadOptions::sections.
const OptionSpec& AgentSection();

/// The `agent:` section, checked.
struct AgentOptions {
  serve::HttpServerOptions http;  ///< Address and limits of the HTTP server.
  std::string source;             ///< The node whose rows are served; "": the procfs source.
  std::string metric_prefix;      ///< Put before every metric name in /metrics.
};

/// Read the `agent:` section (PipelineSpec::sections). `listen_override` (--listen), when not
/// empty, replaces its listen address; a bare port means loopback. kConfigError names the
/// option's file:line:col.
Result<AgentOptions> ReadAgentOptions(const NodeOptions& section,
                                      const std::string& listen_override);

/// Return the id of the node whose rows the agent serves: `wanted`, which must exist and not be
/// a sink, or else the pipeline's one procfs source. Also return its sampling interval (the
/// procfs node's `interval`; 1 s for another node). kConfigError explains what is missing.
Result<std::pair<std::string, int64_t>> ChooseSource(const PipelineSpec& spec,
                                                     const std::string& wanted);

/// Return the agent's routes over `latest`: /, /api/v1/metrics, /metrics and /healthz.
std::vector<serve::Route> AgentRoutes(std::shared_ptr<const LatestSample> latest);

/// Return the live page: HTML with inline script and SVG, no external assets. It polls
/// api/v1/metrics every interval and charts CPU, memory, disk and network.
std::string_view LivePageHtml();

}  // namespace sluice::agent
