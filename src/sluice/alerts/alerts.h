#pragma once

// Alerts: rules from the pipeline's `alerts:` list, and the state machine that fires and
// resolves them as metric values come in. A rule fires when its condition has held on every
// evaluation for `for` (inactive -> pending -> firing), fires once, and resolves on the first
// evaluation where the condition no longer holds.
//
//   alerts:
//     - {name: slow_batches, metric: batch_latency_p95_s, node: archive, above: 2, for: 30s,
//        webhook: "http://127.0.0.1:9000/hook"}
//     - {name: error_rate, metric: error_rate, below: 5%}

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "sluice/core/result.h"
#include "sluice/resilience/clock.h"

namespace sluice::alerts {

/// Which side of the threshold is bad.
enum class AlertOp : uint8_t { kAbove, kBelow };

/// Return "above" or "below".
std::string_view AlertOpName(AlertOp op);

/// One alert rule: `metric` (of `node`, or run-wide) above/below `threshold` for `for_us`.
struct AlertRule {
  std::string name;                 ///< Unique among the rules; default "metric" or "metric@node".
  std::string metric;               ///< A metric name (docs/METRICS.md).
  std::optional<std::string> node;  ///< A node id; unset for a run-wide metric.
  AlertOp op = AlertOp::kAbove;     ///< Strictly above / strictly below.
  double threshold = 0;             ///< In the metric's unit ("2s" -> 2, "5%" -> 0.05).
  int64_t for_us = 0;               ///< How long the condition must hold; 0 fires at once.
  std::optional<std::string> webhook;  ///< An http(s) URL to POST events to.
};

/// Return the metric names a rule may watch (docs/ALERTS.md); `sluice run` serves
/// their values. With a `node`, the value of that node; without, the run-wide value.
const std::vector<std::string>& StandardAlertMetrics();

/// Parse the `alerts:` list (YAML converted to JSON; null means no rules). Each entry is a
/// mapping with `metric` (required; checked against `known_metrics` unless that is empty, with
/// the nearest name suggested on a typo), `name`, `node`, exactly one of `above`/`below` (a
/// number, "5%" for 0.05, or a duration such as "2s" or "500ms" in seconds), `for` (a duration
/// such as "30s", or a number of seconds; default 0) and `webhook` (http:// or https:// URL).
/// Errors are kConfigError and name the entry and field: "alerts[1].for: ...".
Result<std::vector<AlertRule>> ParseAlertRules(const nlohmann::ordered_json& alerts,
                                               const std::vector<std::string>& known_metrics);

/// Return the current value of `metric` for `node` ("" for a rule without a node: a run-wide
/// value), or std::nullopt when it is not known (yet).
using MetricLookup =
    std::function<std::optional<double>(std::string_view metric, std::string_view node)>;

/// A rule that fired or resolved.
struct AlertEvent {
  enum class Kind : uint8_t { kFired, kResolved };

  Kind kind = Kind::kFired;
  std::string name;
  std::string metric;
  std::string node;  ///< "" for a run-wide rule.
  AlertOp op = AlertOp::kAbove;
  double value = 0;  ///< The value that fired (or resolved) the alert.
  double threshold = 0;
  int64_t fired_at_us = 0;                ///< On the evaluator's clock.
  std::optional<int64_t> resolved_at_us;  ///< Set once resolved; on the evaluator's clock.
  std::string message;                    ///< One line for the log.
  std::optional<std::string> webhook;     ///< The rule's webhook, if any.
};

/// Evaluate alert rules against metric values, about once a second. Not thread-safe: call
/// Evaluate and the accessors from one thread (or guard them).
class AlertEvaluator {
 public:
  /// Evaluate `rules` with time from `clock` (not owned; must outlive this object).
  AlertEvaluator(std::vector<AlertRule> rules, Clock* clock);

  /// Read every rule's metric through `lookup` and return the events of this evaluation, in
  /// rule order: kFired when a condition has now held for the rule's `for` (measured from the
  /// first evaluation where it held, reset by any evaluation where it did not), kResolved when
  /// a firing rule's condition no longer holds. A value that is unknown (nullopt) or NaN resets
  /// a pending rule and leaves a firing one firing.
  std::vector<AlertEvent> Evaluate(const MetricLookup& lookup);

  /// Return one entry per time a rule fired, in firing order, with resolved_at_us set once it
  /// resolved (kind stays kFired): the run report's "alerts" list.
  const std::vector<AlertEvent>& incidents() const { return incidents_; }
  /// Return true when any rule has fired during this run (for --fail-on-alert).
  bool any_fired() const { return !incidents_.empty(); }
  const std::vector<AlertRule>& rules() const { return rules_; }

 private:
  enum class State : uint8_t { kInactive, kPending, kFiring };
  struct RuleState {
    State state = State::kInactive;
    int64_t pending_since_us = 0;
    size_t incident = 0;  // index into incidents_ while firing
  };

  std::vector<AlertRule> rules_;
  Clock* clock_;
  std::vector<RuleState> states_;
  std::vector<AlertEvent> incidents_;
};

/// Return `incidents` as the run report's "alerts" array: name, metric, node (null when
/// run-wide), value, threshold, fired_at_s and resolved_at_s (seconds since `run_start_us` on
/// the evaluator's clock; null while unresolved) and message.
nlohmann::json AlertsReportJson(const std::vector<AlertEvent>& incidents, int64_t run_start_us);

/// Return `event` as JSON: name, state ("firing" | "resolved"), metric, node (null when
/// run-wide), op ("above" | "below"), value, threshold, fired_at_us, resolved_at_us (null while
/// firing) and message. WebhookNotifier posts this, with a few fields of its own added.
nlohmann::json AlertEventJson(const AlertEvent& event);

}  // namespace sluice::alerts
