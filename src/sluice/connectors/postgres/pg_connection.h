#pragma once

// A libpq connection with sluice's error model: every failure is a Status whose message is one
// line, names the server (never the password) and carries the SQLSTATE as "[SQLSTATE 42P01]";
// the code says whether it is worth retrying (see ClassifySqlState).

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/connectors/postgres/pq_api.h"
#include "sluice/core/result.h"

namespace sluice::pg {

inline constexpr int64_t kDefaultConnectTimeoutUs = 10'000'000;

/// Return the sluice code for a five-character SQLSTATE: connection exceptions (class 08),
/// serialization failure (40001), deadlock (40P01), admin shutdown / cannot connect now
/// (57P01-57P03), too many connections (53300) and lock not available (55P03) are kUnavailable;
/// query_canceled (57014, statement timeout) is kTimeout; class 28 and 42501 are
/// kPermissionDenied; 42P01, 3D000 and 3F000 are kNotFound; anything else kInvalidArgument.
StatusCode ClassifySqlState(std::string_view sqlstate);

/// Return the SQLSTATE a Status from this library carries ("42P01"), or "" when it has none.
std::string SqlState(const Status& status);

/// Return "user@host:port/dbname" for a DSN (key=value or URI), omitting missing parts and
/// never the password; a DSN that does not parse is described as "(invalid DSN)".
std::string DescribeDsn(const std::string& dsn);

/// Return `text` with every occurrence of the DSN's password replaced by "***" (and with
/// "password=..." and "://user:...@" spans masked even when the DSN does not parse).
std::string RedactSecrets(std::string_view text, const std::string& dsn);

/// Return the Status for a failed connection attempt whose libpq message is `message`
/// (PQerrorMessage), to the server described by `where`. libpq gives no SQLSTATE for failures
/// during start-up, so the common ones are recognised by their text and labelled with the
/// SQLSTATE the server sent: 28P01/28000 (authentication), 3D000 (no such database), 53300
/// (too many clients), 57P03 (starting up); anything else is 08001 (kUnavailable), or kTimeout
/// for libpq's own "timeout expired".
Status ConnectError(std::string_view message, std::string_view where);

/// Format of query parameters and result columns.
enum class PgFormat : uint8_t { kText = 0, kBinary = 1 };

/// Text parameters of a query: one per $n, std::nullopt for SQL NULL.
using PgParams = std::vector<std::optional<std::string>>;

/// An owned PGresult (PQclear on destruction). Move-only; cheap to move.
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* result) : result_(result) {}

  PGresult* get() const { return result_.get(); }
  int num_rows() const { return PQntuples(result_.get()); }
  int num_columns() const { return PQnfields(result_.get()); }
  bool IsNull(int row, int column) const { return PQgetisnull(result_.get(), row, column) != 0; }
  /// Return the value of a cell (text or binary, as requested), valid while this result lives.
  std::string_view Value(int row, int column) const {
    return {PQgetvalue(result_.get(), row, column),
            static_cast<size_t>(PQgetlength(result_.get(), row, column))};
  }
  std::string_view ColumnName(int column) const { return PQfname(result_.get(), column); }
  Oid ColumnType(int column) const { return PQftype(result_.get(), column); }
  /// Return the rows an INSERT, UPDATE, DELETE, MERGE, COPY or SELECT affected (0 otherwise).
  int64_t AffectedRows() const;

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  std::unique_ptr<PGresult, Clear> result_;
};

/// One open connection to PostgreSQL (RAII over PGconn*; PQfinish on destruction).
///
/// Not thread-safe: one thread uses a connection at a time (the pool hands it out by lease).
/// The exception is Cancel(), which may be called from any thread.
class PgConnection {
 public:
  ~PgConnection();
  PgConnection(const PgConnection&) = delete;
  PgConnection& operator=(const PgConnection&) = delete;

  /// Connect to `dsn` (key=value or postgresql:// URI), giving up after `connect_timeout_us`
  /// (a hard deadline, whatever the DSN says). Sets client_encoding UTF8 and, unless the DSN
  /// says otherwise, application_name "sluice" and TCP keepalives, so that a dead peer is
  /// noticed. A DSN that does not parse is kConfigError; an unreachable server kUnavailable or
  /// kTimeout; bad credentials kPermissionDenied; a missing database kNotFound.
  static Result<std::unique_ptr<PgConnection>> Connect(
      const std::string& dsn, int64_t connect_timeout_us = kDefaultConnectTimeoutUs);

  /// Run `sql` (one or more statements, no parameters); return the last result.
  Result<PgResult> Exec(const std::string& sql);
  /// Run `sql` with text parameters $1..$n; results come back in `result_format`.
  Result<PgResult> ExecParams(const std::string& sql, const PgParams& params,
                              PgFormat result_format = PgFormat::kText);
  /// Prepare `sql` as statement `name` on this connection; `param_types` (may be empty) fixes
  /// the types of $1..$n, otherwise the server infers them.
  Status Prepare(const std::string& name, const std::string& sql,
                 const std::vector<Oid>& param_types = {});
  /// Return true once Prepare(name, ...) has succeeded on this connection.
  bool IsPrepared(const std::string& name) const { return prepared_.count(name) > 0; }
  /// Run prepared statement `name` with text parameters.
  Result<PgResult> ExecPrepared(const std::string& name, const PgParams& params,
                                PgFormat result_format = PgFormat::kText);
  /// Run prepared statement `name` with binary parameters: values[i] points at lengths[i]
  /// bytes in the type's binary send format, or is null for SQL NULL. The caller keeps the
  /// bytes alive for the call.
  Result<PgResult> ExecPreparedBinary(const std::string& name,
                                      const std::vector<const char*>& values,
                                      const std::vector<int>& lengths);
  /// Return the column names and type OIDs `sql` would produce, without running it (a
  /// description of the unnamed prepared statement).
  Result<PgResult> Describe(const std::string& sql);

  /// Set statement_timeout for this session in milliseconds (0: none). Skips the round trip
  /// when the session already has that value. A statement that exceeds it fails kTimeout.
  Status SetStatementTimeout(int64_t ms);

  Status Begin() { return ExecCommand("BEGIN"); }
  Status Commit() { return ExecCommand("COMMIT"); }
  Status Rollback() { return ExecCommand("ROLLBACK"); }
  /// Return true inside a transaction block (also a failed one).
  bool InTransaction() const;

  /// Start `copy_sql` (a COPY ... FROM STDIN); then PutCopyData, then EndCopyIn or AbortCopyIn.
  Status BeginCopyIn(const std::string& copy_sql);
  /// Send the next bytes of the COPY stream (any split: rows may span calls).
  Status PutCopyData(std::string_view data);
  /// Finish the COPY; return the number of rows the server stored.
  Result<int64_t> EndCopyIn();
  /// Abandon the COPY: the server discards everything sent and the statement fails.
  void AbortCopyIn(const std::string& reason);
  /// Run `copy_sql` (COPY ... FROM STDIN) sending `data` as its whole input; return the rows.
  Result<int64_t> CopyIn(const std::string& copy_sql, std::string_view data);

  /// Start `copy_sql` (a COPY ... TO STDOUT); then call ReadCopyData until it returns false.
  Status BeginCopyOut(const std::string& copy_sql);
  /// Point `data` at the next message of the COPY stream (for binary COPY, one row; the first
  /// also holds the header, the last the trailer) and return true; return false at the end,
  /// once the server confirmed success. `data` stays valid until the next call.
  Result<bool> ReadCopyData(std::string_view* data);

  /// Return true when the connection is usable for a new command: open, not inside a
  /// transaction or COPY, and with nothing unexpected on its socket (a server that ended the
  /// session, e.g. pg_terminate_backend, is noticed here without a round trip).
  bool IsHealthy();
  /// Run an empty query: a round trip that proves the server answers.
  Status Ping();
  /// Ask the server to cancel the command now running. Thread-safe; best effort.
  void Cancel();

  /// Return the backend's process id (pg_backend_pid()).
  int backend_pid() const { return PQbackendPID(conn_); }
  /// Return "user@host:port/dbname", for messages.
  const std::string& description() const { return description_; }
  PGconn* raw() const { return conn_; }

 private:
  PgConnection(PGconn* conn, std::string dsn);
  Status ExecCommand(const char* sql);
  /// Return the Status for a failed command whose result is `result` (may be null).
  Status ErrorFrom(const PGresult* result) const;
  Result<PgResult> Check(PGresult* raw, ExecStatusType expected);
  void FreeCopyBuffer();

  PGconn* conn_;
  PGcancel* cancel_ = nullptr;
  const std::string dsn_;  // kept only to redact its password from messages
  const std::string description_;
  std::set<std::string> prepared_;
  int64_t statement_timeout_ms_ = -1;  // -1: unknown (the server default)
  char* copy_buffer_ = nullptr;        // the row ReadCopyData returned last (PQfreemem)
  bool session_ended_ = false;         // the server sent FATAL outside a command
};

}  // namespace sluice::pg
