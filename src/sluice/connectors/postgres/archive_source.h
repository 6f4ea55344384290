#pragma once

#include "sluice/engine/registry.h"

namespace sluice {

/// Register `postgres_archive`: read rows older than a cutoff from PostgreSQL tables, locked
/// with FOR UPDATE SKIP LOCKED in a transaction that stays open until every sink downstream has
/// made the batch durable; then delete exactly those rows in that transaction and commit.
void RegisterPostgresArchiveNode(NodeRegistry* registry);

}  // namespace sluice
