#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register the `procfs` source: a sample of the host's /proc every `interval`, as rows of
/// (ts, host, metric, labels, value, error). docs/AGENT.md describes the rows.
void RegisterProcfsNodes(NodeRegistry* registry);

}  // namespace sluice
