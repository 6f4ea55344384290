#include "sluice/connectors/sqlite/sqlite.h"

namespace sluice {

void RegisterSqliteNodes(NodeRegistry* registry) {
  registry->AddSource(kSqliteSourceType,
                      "Read rows from a SQLite table or query; optionally delete them once every "
                      "sink has made them durable (archiving).",
                      SqliteSourceOptions(), &MakeSqliteSource);
  registry->AddSink(kSqliteSinkType,
                    "Insert, replace or delete rows of a SQLite table, one transaction per batch.",
                    SqliteSinkOptions(), &MakeSqliteSink);
}

}  // namespace sluice
