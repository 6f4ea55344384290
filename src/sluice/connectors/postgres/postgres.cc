#include "sluice/connectors/postgres/postgres.h"

namespace sluice {

void RegisterPostgresNodes(NodeRegistry* registry) {
  registry->AddSource(kPostgresType,
                      "Stream the rows of a PostgreSQL table or query with binary COPY, "
                      "optionally split by key ranges read in parallel.",
                      PostgresSourceOptions(), &MakePostgresSource);
  registry->AddSink(kPostgresType,
                    "Write rows to a PostgreSQL table with binary COPY (insert), a staging table "
                    "and INSERT ... ON CONFLICT (upsert), or multi-row INSERTs; one transaction "
                    "per batch.",
                    PostgresSinkOptions(), &MakePostgresSink);
}

}  // namespace sluice
