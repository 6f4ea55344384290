#pragma once

#include <memory>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"

namespace sluice {

/// The node type names. NodeRegistry keys types by name alone, so the sink cannot share the
/// source's name until the registry tells sources and sinks apart.
inline constexpr const char* kSqliteSourceType = "sqlite";
inline constexpr const char* kSqliteSinkType = "sqlite";  // a sink when the node has inputs

/// Register the sqlite source (kSqliteSourceType) and sink (kSqliteSinkType) in `registry`.
void RegisterSqliteNodes(NodeRegistry* registry);

/// Return the option schema of the `sqlite` source.
const OptionSchema& SqliteSourceOptions();
/// Return the option schema of the `sqlite` sink.
const OptionSchema& SqliteSinkOptions();

/// Build a `sqlite` source from validated options; kConfigError names the offending option.
Result<std::unique_ptr<Source>> MakeSqliteSource(const NodeOptions& options);
/// Build a `sqlite` sink from validated options; kConfigError names the offending option.
Result<std::unique_ptr<Sink>> MakeSqliteSink(const NodeOptions& options);

}  // namespace sluice
