#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register the `generate` source: seeded synthetic rows by count or rate.
void RegisterGenerateNodes(NodeRegistry* registry);

}  // namespace sluice
