#pragma once

#include "sluice/engine/registry.h"

namespace sluice::geo {

/// Register the geo transforms (buffer, simplify, centroid, reproject, ...).
void RegisterGeoNodes(NodeRegistry* registry);

}  // namespace sluice::geo
