#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register every node type that ships with sluice. The only place that knows the whole set.
void RegisterBuiltinNodes(NodeRegistry* registry);

}  // namespace sluice
