#pragma once

// The record of every run: one row per run (pipeline, id, status, start, end, rows, bytes and
// the whole run report) plus one row per node (rows in and out, busy time), in a SQLite file by
// default or in PostgreSQL when configured. `sluice runs` lists them; `sluice report --run ID`
// renders one from its stored report.
//
// Tables (created when missing, in the current schema / search_path):
//   sluice_runs(run_id PRIMARY KEY, pipeline, status, started_at, ended_at, rows, bytes,
//               report_json)
//   sluice_run_nodes(run_id, node, position, rows_in, rows_out, busy_s)
//               PRIMARY KEY (run_id, node); position keeps the report's node order
//   indexes sluice_runs_status_started_idx (status, started_at) and
//           sluice_runs_pipeline_started_idx (pipeline, started_at)
// Timestamps: SQLite stores INTEGER µs since the epoch (UTC), exact and sortable; PostgreSQL
// stores timestamptz (µs precision). report_json is TEXT in SQLite and json in PostgreSQL.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/core/result.h"

namespace sluice::history {

/// Rows and time of one node in one run.
struct NodeRunRecord {
  std::string node;
  int64_t rows_in = 0;
  int64_t rows_out = 0;
  double busy_s = 0;

  bool operator==(const NodeRunRecord&) const = default;
};

/// One run as the history stores it.
struct RunRecord {
  std::string run_id;
  std::string pipeline;
  std::string status;         ///< "ok", "failed", "interrupted", "cancelled", ...
  int64_t started_at_us = 0;  ///< Wall-clock µs since the epoch (UTC).
  int64_t ended_at_us = 0;    ///< Wall-clock µs since the epoch (UTC).
  int64_t rows = 0;           ///< Rows read by the sources.
  int64_t bytes = 0;          ///< Bytes read by the sources.
  std::string report_json;    ///< The whole run report; empty in List() results.
  std::vector<NodeRunRecord> nodes;

  bool operator==(const RunRecord&) const = default;
};

/// What List() returns: runs matching every set field, newest first.
struct RunFilter {
  std::optional<std::string> pipeline = std::nullopt;
  std::optional<std::string> status = std::nullopt;
  int64_t limit = 20;  ///< At most this many runs; <= 0 means no limit.
};

/// A store of run records. Implementations serialise calls on one object with a mutex, so one
/// object may be shared by threads; several objects (or processes) on the same store may write
/// at the same time.
class RunHistory {
 public:
  virtual ~RunHistory() = default;

  /// Store `run`; a run with the same run_id is replaced, nodes included (so a run may be
  /// recorded as "running" when it starts and again when it ends). Atomic.
  virtual Status Record(const RunRecord& run) = 0;
  /// Return the runs matching `filter`, newest first (by started_at, then run_id), with their
  /// nodes but without report_json.
  virtual Result<std::vector<RunRecord>> List(const RunFilter& filter) = 0;
  /// Return one run with its nodes and report; kNotFound when no run has this id.
  virtual Result<RunRecord> Get(std::string_view run_id) = 0;
  /// Return where the history lives, for messages ("runs.db path" or "user@host:port/db",
  /// never a password).
  virtual const std::string& description() const = 0;
};

/// Open (creating tables and indexes when missing) the run history at `location`:
/// - a `postgres://` or `postgresql://` URI, or a libpq key=value DSN ("host=... dbname=..."),
///   opens PostgreSQL (tables in the connection's search_path; set it with
///   `options=-csearch_path=...` to use another schema);
/// - anything else is a SQLite file path ("~/" is expanded); its parent directories are
///   created, and the database uses WAL with a busy timeout so concurrent runs all record.
/// A file that is not a SQLite database is kIOError naming the path; an unreachable server is
/// kUnavailable or kTimeout.
Result<std::unique_ptr<RunHistory>> OpenRunHistory(std::string_view location);

/// Return the default SQLite location: $XDG_STATE_HOME/sluice/runs.db, else
/// $HOME/.local/state/sluice/runs.db, else ./sluice-runs.db.
std::string DefaultRunHistoryPath();

/// Build a record from a run report (`sluice run --report` JSON, version 1 or 2): pipeline,
/// run_id and status are required; started_at/ended_at are read when present (version 2),
/// otherwise ended_at is `now_us` and started_at is ended_at minus duration_s; rows is
/// rows_read; bytes is the sum of bytes_out of the source nodes; nodes[] give the per-node rows
/// and busy time. report_json is `report_json` unchanged. Errors are kInvalidArgument.
Result<RunRecord> RunRecordFromReport(std::string report_json, int64_t now_us);
/// Same, from a report already parsed (report_json is its dump).
Result<RunRecord> RunRecordFromParsedReport(const nlohmann::json& report, int64_t now_us);

/// Return a terminal table of `runs` with the columns RUN ID, PIPELINE, STATUS, STARTED (UTC),
/// DURATION, ROWS and ROWS/S, one line per run and a trailing newline; "no runs recorded\n"
/// when `runs` is empty.
std::string FormatRunList(const std::vector<RunRecord>& runs);

}  // namespace sluice::history
