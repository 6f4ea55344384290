#pragma once

// How the archiver selects, decodes and identifies the rows of one table: the page and
// recovery queries, the rows' physical ids (ctid) and keys, and the batch id. Pure functions
// over results, so they are testable without a server. Private to connectors/postgres/.

#include <optional>
#include <string>
#include <vector>

#include "sluice/connectors/postgres/archive_options.h"
#include "sluice/connectors/postgres/archive_state.h"
#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/pg_types.h"

namespace sluice::pg_archive {

/// How one table is read: every column exactly (pg::PlanRelation), plus what the archiver
/// needs around it.
struct TablePlan : pg::RelationPlan {
  std::string quoted_ts;   ///< The timestamp column, quoted.
  std::string quoted_key;  ///< The key column, quoted.
  std::string tags_json;   ///< {"column": "PostgreSQL type", ...}: the batch's pg_types tag.
};

/// Plan `quoted_table` on `conn`: check that the timestamp column exists and is a timestamp,
/// timestamptz or date, that the key column exists, and — when `unique_key` (replica reads
/// match rows by key) — that the key is NOT NULL with a unique index of its own. Config errors
/// say what to set or add.
Result<TablePlan> PlanTable(pg::PgConnection* conn, const std::string& quoted_table,
                            const TableSettings& settings, bool unique_key);

/// The rows of one page or batch.
struct RowsRead {
  BatchPtr batch;                                ///< The table's columns, exactly.
  std::vector<std::string> ctids;                ///< Each row's ctid, "(block,offset)".
  std::vector<std::optional<std::string>> keys;  ///< Each row's key as text (nullopt: NULL).
  std::string first_ts;                          ///< The first row's timestamp, as text.
  std::string last_ts;                           ///< The last row's timestamp, as text.
  std::string last_ctid;                         ///< The last row's ctid.
  int64_t query_ns = 0;                          ///< Time the statement took.
};

/// Decode `result` of a query PageQuery or RecoveryQuery made (ctid, key and timestamp as
/// text, then the plan's columns, fetched in binary).
Result<RowsRead> DecodeRows(const TablePlan& plan, const pg::PgResult& result,
                            std::string* scratch);

/// Return the SELECT of up to `limit` rows older than the cutoff, after the keyset bound
/// (`last_ts`, `last_ctid`; none when empty), in (timestamp, ctid) order; `lock` adds
/// FOR UPDATE SKIP LOCKED. Fills `params`.
std::string PageQuery(const TablePlan& plan, const TableSettings& settings,
                      const std::string& quoted_table, int64_t limit, const std::string& last_ts,
                      const std::string& last_ctid, bool lock, pg::PgParams* params);

/// Return the statement that deletes up to `limit` rows older than the cutoff after the keyset
/// bound, chosen in (timestamp, ctid) order, and returns them with PageQuery's columns: one
/// statement reads, locks and deletes a batch, writing each row once. Only for a table no
/// other archiver reads at the same time (rows another transaction holds are waited for, not
/// skipped). Values are inlined as quoted literals, so it can run inside COPY (CopyRows).
/// `lower` and `upper` ("" for none) restrict the page to timestamps in [lower, upper).
std::string DeleteQuery(const TablePlan& plan, const TableSettings& settings,
                        const std::string& quoted_table, int64_t limit, const std::string& last_ts,
                        const std::string& last_ctid, const std::string& lower = "",
                        const std::string& upper = "");

/// Run `query` (one PageQuery or DeleteQuery made) as COPY (query) TO STDOUT (FORMAT binary)
/// on `conn` and decode the rows as they stream in; `expected_rows` sizes the builders.
Result<RowsRead> CopyRows(pg::PgConnection* conn, const TablePlan& plan, const std::string& query,
                          int64_t expected_rows);

/// Return the SELECT that locks (waiting) the rows `intent` recorded that are still older
/// than the cutoff: by ctid, or by key for records of older versions. Fills `params`.
std::string RecoveryQuery(const TablePlan& plan, const TableSettings& settings,
                          const std::string& quoted_table, const Intent& intent,
                          pg::PgParams* params);

/// Keep the rows of `rows` whose key is the one `intent` recorded at their ctid (a ctid
/// reused by another row since is left out); return how many were kept.
/// kDataLoss when the record cannot be read.
Result<int64_t> KeepRecordedRows(const Intent& intent, RowsRead* rows);

/// Keep the rows of `page` (read on a replica) whose key is among the rows `locked` on the
/// primary (ctid, key, ...), and take the primary's ctids; return how many were kept.
int64_t KeepLockedRows(const pg::PgResult& locked, RowsRead* page);

/// Return an id for a new batch: its first row's timestamp digits and ctid, then `run_token`
/// (unique per run), so that a later batch can never get the same id as an archived one even
/// when VACUUM hands the ctid to a row with the same timestamp. A redone batch keeps the id its
/// state record holds.
std::string BatchId(const RowsRead& rows, const std::string& run_token);

/// Return `values` as a PostgreSQL array literal ({"a","b",NULL}).
std::string TextArrayLiteral(const std::vector<std::optional<std::string>>& values);
std::string TidArrayLiteral(const std::vector<std::string>& ctids);
/// Parse an array literal TextArrayLiteral wrote (or a plain {1,2,3}); nullopt for NULL.
Result<std::vector<std::optional<std::string>>> ParseArrayLiteral(std::string_view text);

}  // namespace sluice::pg_archive
