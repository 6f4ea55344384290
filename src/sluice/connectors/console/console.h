#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register the `null` sink (discard, ack at once) and the `stdout` sink (JSON lines).
void RegisterConsoleNodes(NodeRegistry* registry);

}  // namespace sluice
