#pragma once

// Helpers for the integration tests: the server of `scripts/services start`, uniquely named
// tables, and SQL run on a connection of the test's own.

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include <gtest/gtest.h>

#include "sluice/connectors/postgres/pg_connection.h"

namespace sluice::pg {

/// Return $SLUICE_PG_DSN, or "" after failing the current test (never skipping it).
inline std::string TestDsn() {
  const char* dsn = std::getenv("SLUICE_PG_DSN");
  if (dsn == nullptr || *dsn == '\0') {
    ADD_FAILURE() << "SLUICE_PG_DSN is not set: run `scripts/services start` and "
                     "`eval \"$(scripts/services env)\"` before the integration tests";
    return "";
  }
  return dsn;
}

/// Return a table name no other test (or concurrent test process) uses.
inline std::string UniqueTableName(std::string_view stem) {
  static std::atomic<int> counter{0};
  return fmt::format("sluice_{}_{}_{}", stem, getpid(), counter++);
}

/// Run `sql` on `conn`, failing the test on error; return the first cell as text ("" if none).
inline std::string QueryText(PgConnection* conn, const std::string& sql) {
  auto r = conn->Exec(sql);
  EXPECT_TRUE(r.ok()) << r.status().ToString() << " in " << sql;
  if (!r.ok() || r->num_rows() == 0 || r->num_columns() == 0 || r->IsNull(0, 0)) return "";
  return std::string(r->Value(0, 0));
}

inline int64_t QueryInt(PgConnection* conn, const std::string& sql) {
  const std::string text = QueryText(conn, sql);
  return text.empty() ? -1 : std::stoll(text);
}

}  // namespace sluice::pg
