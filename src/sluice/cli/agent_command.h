#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "sluice/engine/registry.h"

namespace sluice {

/// What `sluice agent` was given on the command line.
struct AgentArgs {
  std::string config;             ///< --config FILE; "": the built-in config.
  std::string listen;             ///< --listen HOST:PORT (or a port); "": the config's.
  std::vector<std::string> sets;  ///< --set PATH=VALUE overrides.
  bool check = false;             ///< --check: validate and exit.
};

/// `sluice agent [--config agent.yaml] [--listen ADDR]`: run the pipeline (a procfs source at
/// 1 s without a config) and serve its latest sample over HTTP until `stop` (the first signal;
/// `interrupt`, the second, cancels). Registers its tap in `registry`. Return the process exit
/// code: 0 after a stop, 1 when the run or the server failed, 2 for a bad config or option.
int CmdAgent(const AgentArgs& args, NodeRegistry* registry, const std::atomic<bool>* stop,
             const std::atomic<bool>* interrupt);

}  // namespace sluice
