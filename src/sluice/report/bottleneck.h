#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/report/run_report.h"

namespace sluice::report {

/// The node that limits a run's throughput, why, and what to change.
struct Bottleneck {
  std::string node;  ///< The limiting node's id; empty when none was found.
  /// Why, for people: a clause that follows the node's id ("busy 96% of the time while ..."),
  /// or, without a node, why none was found.
  std::string reason;
  std::vector<std::string> advice;  ///< Concrete changes, most useful first; may be empty.
};

/// Thresholds of the rules below.
inline constexpr double kBlockedFraction = 0.10;  ///< "Blocked": >= 10 % of its wall time.
inline constexpr double kNearFull = 0.80;         ///< "Near 1": utilization >= 80 %.
inline constexpr double kSinkSaturated = 0.90;    ///< Sink backpressure: a sink busy >= 90 %.
inline constexpr double kIdle = 0.30;             ///< "Idle": every node busy < 30 %.
inline constexpr double kMemoryNearLimit = 0.90;  ///< Budget peak >= 90 % of the limit.
inline constexpr double kRetriesPerBatch = 0.25;  ///< Retries >= 1 per 4 batches ...
inline constexpr int64_t kMinRetries = 3;         ///< ... and at least 3 of them.

/// Find the node that limits the run described by a run report (v1 or v2, see
/// `ParseRunReport`) and give advice that names the node and the option to change.
///
/// Definitions: a node's utilization is `utilization` (busy / duration / parallelism); the
/// fraction of time it is blocked is blocked_s / (duration_s x parallelism). Its upstream are
/// the nodes in its `inputs`; a v1 report has no `inputs`, so there every node listed before it
/// counts as upstream (reports list nodes in pipeline order).
///
/// The limiting node:
///  1. Among the nodes with a direct upstream node blocked >= kBlockedFraction of the time
///     (backpressure: that upstream waits for room in this node's input), the one with the
///     highest utilization.
///  2. Otherwise, when every node is busy < kIdle: the busiest source — the pipeline waits for
///     input, so the source or the system it reads from is the limit.
///  3. Otherwise the busiest node.
///
/// Advice, in this order, each only when its condition holds:
///  - sink backpressure: a sink busy >= kSinkSaturated -> the destination sets the pace; raise
///    `parallelism` of that sink if the destination takes concurrent writes.
///  - raise `parallelism` of the limiting node X: X is busy >= kNearFull and its upstream is
///    blocked (rule 1), or X is a source busy >= kNearFull (rule 3: reading is the limit).
///  - batch size pinned at its max, on the limiting node or a node upstream of it: counters
///    `batch_size` >= `batch_size_max` (adaptive sizing, raise `max_batch_size`), or a
///    `batch_rows` histogram of >= 2 batches whose p50 equals its max (raise `batch_size`).
///  - memory budget exhausted: memory_budget_waits > 0, or the budget's peak >=
///    kMemoryNearLimit of its limit -> raise `settings.memory_limit`.
///  - retries dominating: a node whose counters.retries >= kMinRetries and >= kRetriesPerBatch
///    per batch (batches_in for sinks, batches_out otherwise) -> its server fails or throttles.
///  - source idle (rule 2): the source or the upstream system is the limit.
Bottleneck AnalyzeBottleneck(const RunReport& run);

/// Parse `run` (see ParseRunReport) and analyze it; a JSON that is not a run report gives an
/// empty node and a reason that says why.
Bottleneck AnalyzeBottleneck(const nlohmann::json& run);

/// Return the terminal summary of `b`: 2-4 lines, each ending in '\n' — the node and the reason,
/// then up to three pieces of advice.
std::string FormatBottleneck(const Bottleneck& b);

/// Return `b` as the v2 run report's `bottleneck` field: {"node": id|null, "reason", "advice"}.
nlohmann::json BottleneckToJson(const Bottleneck& b);

}  // namespace sluice::report
