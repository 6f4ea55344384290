#include "sluice/builtin_nodes.h"

#include "sluice/connectors/console/console.h"
#include "sluice/connectors/files/files.h"
#include "sluice/connectors/generate/generate.h"
#include "sluice/connectors/http/webhook_sink.h"
#include "sluice/connectors/objectstore/objectstore.h"
#include "sluice/connectors/postgres/archive_source.h"
#include "sluice/connectors/postgres/postgres.h"
#include "sluice/connectors/procfs/procfs.h"
#include "sluice/connectors/redis/redis.h"
#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/transforms/geo/geo.h"
#include "sluice/transforms/lookup/lookup.h"
#include "sluice/transforms/transforms.h"

namespace sluice {

void RegisterBuiltinNodes(NodeRegistry* registry) {
  RegisterGenerateNodes(registry);
  RegisterConsoleNodes(registry);
  RegisterFileNodes(registry);
  RegisterSqliteNodes(registry);
  RegisterPostgresNodes(registry);
  RegisterPostgresArchiveNode(registry);
  RegisterObjectStoreNodes(registry);
  RegisterRedisNodes(registry);
  RegisterHttpNodes(registry);
  RegisterProcfsNodes(registry);
  RegisterTransformNodes(registry);
  lookup::RegisterLookupNode(registry);
  geo::RegisterGeoNodes(registry);
}

}  // namespace sluice
