#include "sluice/transforms/geo/geo.h"

namespace sluice::geo {

void RegisterGeoNodes(NodeRegistry* registry) {}

}  // namespace sluice::geo
