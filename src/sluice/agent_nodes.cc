#include "sluice/agent_nodes.h"

#include "sluice/connectors/console/console.h"
#include "sluice/connectors/files/files.h"
#include "sluice/connectors/procfs/procfs.h"

namespace sluice {

void RegisterAgentNodes(NodeRegistry* registry) {
  RegisterConsoleNodes(registry);
  RegisterFileNodes(registry);
  RegisterProcfsNodes(registry);
}

}  // namespace sluice
