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

/// The columns a page's query puts before the table's own.
enum class RowsPrefix {
  kKeyset,  ///< ctid, key and timestamp as text, then the timestamp in binary.
  kCtid,    ///< The ctid in binary only (pages read by heap blocks).
};

/// The rows of one page or batch.
struct RowsRead {
  BatchPtr batch;                                ///< The table's columns, exactly.
  std::vector<std::string> ctids;                ///< Each row's ctid, "(block,offset)".
  std::vector<std::optional<std::string>> keys;  ///< Each row's key as text (nullopt: NULL).
  std::string first_ts;                          ///< The first row's timestamp, as text.
  std::string last_ts;                           ///< The last row's timestamp, as text.
  std::string last_ctid;                         ///< The last row's ctid.
  uint64_t ctid_digest = 0;                      ///< CtidDigest of the rows, in their order.
  /// A page read by heap blocks: the blocks [first_block, end_block) it covers (end_block is 0
  /// for pages read in timestamp order). Such pages carry no keys or timestamps as text.
  uint32_t first_block = 0;
  uint32_t end_block = 0;
  std::string cutoff;    ///< Read by blocks: the cutoff used, if not the table's own.
  int64_t query_ns = 0;  ///< Time the statement took.
};

/// Return a 64-bit FNV-1a hash of ctids given as (block << 16 | offset), in order: what a
/// batch read by blocks records, to recognise the same rows when it is redone.
uint64_t CtidDigest(const std::vector<uint64_t>& ctids);

/// Decode `result` of a query PageQuery or RecoveryQuery made (ctid, key and timestamp as
/// text, then the plan's columns, fetched in binary).
Result<RowsRead> DecodeRows(const TablePlan& plan, const pg::PgResult& result, std::string* scratch,
                            RowsPrefix prefix = RowsPrefix::kKeyset);

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

/// Return the statement that deletes the rows older than the cutoff in heap blocks
/// [first_block, end_block) and returns them (the ctid in binary, then the plan's columns): a
/// range of the table read, locked and deleted in one pass, in physical order, so each heap
/// page is written once however its rows' timestamps are spread. Values are inlined, for
/// COPY. Only for a table no other archiver reads at the same time.
std::string BlockDeleteQuery(const TablePlan& plan, const TableSettings& settings,
                             const std::string& quoted_table, uint32_t first_block,
                             uint32_t end_block);

/// What the pages read so far showed of the rows' sizes, so the next page's buffers are sized
/// at once: grown by doubling, each step copies what it holds into fresh pages (most of the
/// archiver's page faults).
struct RowSizes {
  std::vector<double> bytes_per_row;  ///< Per column of a page; 0 for fixed-width ones.
};

/// Run `query` (one PageQuery, DeleteQuery or BlockDeleteQuery made, with its `prefix`) as
/// COPY (query) TO STDOUT (FORMAT binary) on `conn` and decode the rows as they stream in;
/// `expected_rows` and `sizes` (when given; updated with what this page held) size the
/// builders.
Result<RowsRead> CopyRows(pg::PgConnection* conn, const TablePlan& plan, const std::string& query,
                          int64_t expected_rows, RowsPrefix prefix = RowsPrefix::kKeyset,
                          RowSizes* sizes = nullptr);

/// Return the SELECT that locks (waiting) the rows `intent` recorded that are still older
/// than the cutoff: by ctid, by key for records of older versions, or — for a batch read by
/// blocks — the rows of its blocks older than the earlier of its cutoff and `settings`'s (so
/// a later cutoff adds no rows to it). Fills `params`; `*prefix` says how to decode them.
std::string RecoveryQuery(const TablePlan& plan, const TableSettings& settings,
                          const std::string& quoted_table, const Intent& intent,
                          pg::PgParams* params, RowsPrefix* prefix);

/// Keep the rows of `rows` that `intent` recorded: those whose key is the one recorded at
/// their ctid (a ctid reused by another row since is left out); for a batch read by blocks,
/// every row. Return how many were kept; `*identical` is set when they are exactly the
/// recorded rows (for blocks: the same count and ctid digest), so the batch may go out again
/// under its id. kDataLoss when the record cannot be read.
Result<int64_t> KeepRecordedRows(const Intent& intent, RowsRead* rows, bool* identical);

/// Keep the rows of `page` (read on a replica) whose key is among the rows `locked` on the
/// primary (ctid, key, ...), and take the primary's ctids; return how many were kept.
int64_t KeepLockedRows(const pg::PgResult& locked, RowsRead* page);

/// Return an id for a new batch: its first row's timestamp digits and ctid (for a page read by
/// blocks: "blocks", its first and end block), then `run_token` (unique per run), so that a
/// later batch can never get the same id as an archived one even when VACUUM hands the ctid to
/// a row with the same timestamp. A redone batch keeps the id its state record holds.
std::string BatchId(const RowsRead& rows, const std::string& run_token);

/// Return `values` as a PostgreSQL array literal ({"a","b",NULL}).
std::string TextArrayLiteral(const std::vector<std::optional<std::string>>& values);
std::string TidArrayLiteral(const std::vector<std::string>& ctids);
/// Parse an array literal TextArrayLiteral wrote (or a plain {1,2,3}); nullopt for NULL.
Result<std::vector<std::optional<std::string>>> ParseArrayLiteral(std::string_view text);

}  // namespace sluice::pg_archive
