#pragma once

// The archiver's state table: one record per batch handed downstream and not yet deleted, so
// that a run killed between an object's upload and its DELETE is finished by the next run
// with the same rows under the same object key. Private to connectors/postgres/.

#include <cstdint>
#include <deque>
#include <string>

#include "sluice/core/result.h"

namespace sluice::pg {
class PgConnection;
}

namespace sluice::pg_archive {

/// A batch recorded in the state table and not yet deleted.
struct Intent {
  std::string batch_id;  ///< Unique among the table's open batches; names its object.
  std::string date;      ///< The batch's {date} (UTC yyyy-mm-dd when it was first read).
  std::string ctids;     ///< The rows' physical ids, as a PostgreSQL tid[] literal; "" in
                         ///< records of sluice versions before 0.2 (then `keys` identify them).
  std::string keys;      ///< Each row's key as text, a text[] literal in the order of `ctids`.
  int64_t rows = 0;
  // A batch read by heap blocks (read_order: physical) records where it was read instead of
  // each row: the rows older than `cutoff` in blocks [first, end), whose ctids in order hash to
  // `digest`. `blocks` is "" for batches recorded row by row.
  std::string blocks;  ///< "first-end"
  std::string cutoff;  ///< The cutoff the batch was read with, as a timestamptz literal.
  std::string digest;  ///< CtidDigest of its rows, in hex.
};

/// The state table of one node in one database. Statements run on the connection given, so
/// the caller decides what is autocommitted (Record) and what joins a batch's transaction
/// (ForgetStatement). Stateless apart from its names: safe to share between threads.
class StateTable {
 public:
  /// `name` is the table's name as configured (quoted here); `node` is recorded with each row.
  StateTable(std::string name, std::string node);

  /// Create the table unless it exists, and add the columns newer versions need.
  Status Create(pg::PgConnection* conn) const;
  /// Record `intent` for `table`, committed by the caller's autocommit connection.
  Status Record(pg::PgConnection* conn, const std::string& table, const Intent& intent) const;
  /// Return the open batches of `table`, oldest first.
  Result<std::deque<Intent>> Load(pg::PgConnection* conn, const std::string& table) const;
  /// Remove the record of batch `batch_id` of `table` (in the caller's transaction).
  Status Forget(pg::PgConnection* conn, const std::string& table,
                const std::string& batch_id) const;

  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::string quoted_;
  std::string node_;
};

}  // namespace sluice::pg_archive
