#pragma once

#include "sluice/engine/registry.h"

namespace sluice::lookup {

/// Register the `lookup` transform.
void RegisterLookupNode(NodeRegistry* registry);

}  // namespace sluice::lookup
