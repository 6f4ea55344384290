#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register the built-in row transforms: filter, map, select, rename, cast and union.
void RegisterTransformNodes(NodeRegistry* registry);

}  // namespace sluice
