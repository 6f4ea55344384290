#pragma once

// Private to src/sluice/history: the two stores behind OpenRunHistory.

#include <memory>
#include <string>

#include "sluice/history/run_history.h"

namespace sluice::history {

/// Open the SQLite history at `path` (already expanded), creating directories and tables.
Result<std::unique_ptr<RunHistory>> OpenSqliteRunHistory(const std::string& path);
/// Open the PostgreSQL history behind `dsn`, creating tables.
Result<std::unique_ptr<RunHistory>> OpenPgRunHistory(const std::string& dsn);

/// Return true when `location` is a PostgreSQL URI or a libpq key=value DSN.
bool IsPostgresLocation(std::string_view location);
/// Whether `location` starts as a key=value PostgreSQL DSN ("host=db dbname=x"): how
/// IsPostgresLocation decides when libpq, which parses DSNs, is not installed.
bool StartsAsKeyValueDsn(std::string_view location);

}  // namespace sluice::history
