#include "sluice/builtin_nodes.h"

#include "sluice/connectors/console/console.h"
#include "sluice/connectors/files/files.h"
#include "sluice/connectors/generate/generate.h"
#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/faults/fault_inject.h"
#include "sluice/transforms/transforms.h"

namespace sluice {

void RegisterBuiltinNodes(NodeRegistry* registry) {
  RegisterGenerateNodes(registry);
  RegisterConsoleNodes(registry);
  RegisterFileNodes(registry);
  RegisterSqliteNodes(registry);
  RegisterTransformNodes(registry);
  RegisterFaultNodes(registry);
}

}  // namespace sluice
