#pragma once

// Shared by the SQLite connector (src/sluice/connectors/sqlite/) and the lookup transform's SQLite
// reference: thin RAII wrappers over the SQLite C API, the mapping of its result codes onto
// sluice's Status codes, and reading a result cell as a sluice type.

#include <sqlite3.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "sluice/core/column.h"
#include "sluice/core/result.h"
#include "sluice/core/types.h"

namespace sluice::sqlite_internal {

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

/// Whether an SQLITE_ERROR means a bad statement (while preparing: missing table, bad SQL,
/// reported as kConfigError) or a failure while running it (kInvalidArgument).
enum class ErrorPhase : uint8_t { kPrepare, kRun };

/// Return the Status for SQLite result `rc` on `db` (may be null), prefixed with `context`.
/// SQLITE_BUSY and SQLITE_LOCKED are kUnavailable (retryable).
Status SqliteError(int rc, sqlite3* db, std::string_view context,
                   ErrorPhase phase = ErrorPhase::kRun);

/// Open `path` with `flags` and set a busy timeout. `context` prefixes errors.
Result<DbPtr> OpenDatabase(const std::string& path, int flags, int64_t busy_timeout_us,
                           std::string_view context);
/// Prepare `sql` on `db`; errors are kConfigError carrying SQLite's message.
Result<StmtPtr> Prepare(sqlite3* db, const std::string& sql, std::string_view context);
/// Run `sql` (no results wanted) on `db`.
Status Exec(sqlite3* db, const std::string& sql, std::string_view context);

/// Return `name` as a quoted SQL identifier; dots separate a schema from a table
/// ("main.logs" -> "main"."logs").
std::string QuoteIdentifier(std::string_view name);

/// The name of the SQL function RegisterRowDigest adds.
inline constexpr std::string_view kRowDigestFunction = "sluice_row_digest";

/// Register `sluice_row_digest(v1, ..., vn)` on `db`: a 64-bit digest (as an INTEGER) of its
/// arguments' storage classes and exact values (integers and reals by their bits, text and blobs
/// by their bytes, NULL as NULL). Equal argument lists give equal digests on any connection;
/// different ones collide with probability about 2^-64. Deterministic and direct-only (not
/// usable from triggers or views). Used to recognise a row that is still as it was read.
Status RegisterRowDigest(sqlite3* db, std::string_view context);

/// Return the sluice type a declared column type (sqlite3_column_decltype) implies, or nullopt
/// when it says nothing useful (no declared type, NUMERIC, DECIMAL, ...).
std::optional<TypeId> TypeFromDeclared(const char* declared);

/// Return the declared type the sink writes for a sluice column type.
std::string_view DeclaredTypeFor(TypeId type);

/// Return the bytes of column `c` of the current row as text (or as a blob).
std::string_view ColumnText(sqlite3_stmt* stmt, int c);
std::string_view ColumnBlob(sqlite3_stmt* stmt, int c);
/// Read 1/0, true/false, t/f (any case of those) into `out`; false for anything else.
bool ParseBoolText(std::string_view s, bool* out);

/// Append column `c` of `stmt`'s current row to `b` as `type`: NULL as null; integers, reals
/// and their exact text forms as int64/float64; 0/1 or true/false as bool; integer
/// microseconds or ISO-8601 text as timestamp; any value as string. Return false when the value
/// cannot be read as `type`, with `*why` the explanation's tail (" (expected ...)", or "").
bool AppendCell(sqlite3_stmt* stmt, int c, TypeId type, ColumnBuilder* b, std::string_view* why);

}  // namespace sluice::sqlite_internal
