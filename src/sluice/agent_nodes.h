#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register the node types `sluice-agent` offers: the procfs source, files, and the null and
/// stdout sinks. A subset of RegisterBuiltinNodes, kept apart so that the agent's executable
/// links none of the other connectors' libraries (their pages were most of its memory).
void RegisterAgentNodes(NodeRegistry* registry);

}  // namespace sluice
