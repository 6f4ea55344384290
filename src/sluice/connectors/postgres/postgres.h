#pragma once

#include <memory>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"

namespace sluice {

/// The node type name of both the source and the sink (a node with inputs is the sink).
inline constexpr const char* kPostgresType = "postgres";

/// Register the `postgres` source and sink in `registry`.
void RegisterPostgresNodes(NodeRegistry* registry);

/// Return the option schema of the `postgres` source.
const OptionSchema& PostgresSourceOptions();
/// Return the option schema of the `postgres` sink.
const OptionSchema& PostgresSinkOptions();

/// Build a `postgres` source from validated options; kConfigError names the offending option.
/// Nothing connects until Open().
Result<std::unique_ptr<Source>> MakePostgresSource(const NodeOptions& options);
/// Build a `postgres` sink from validated options; kConfigError names the offending option.
/// Nothing connects until Open().
Result<std::unique_ptr<Sink>> MakePostgresSink(const NodeOptions& options);

}  // namespace sluice
