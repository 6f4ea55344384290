#include "sluice/alerts/alerts.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <set>

#include "sluice/connectors/http/http_post.h"
#include "sluice/core/json_text.h"
#include "sluice/core/units.h"
#include "sluice/engine/pipeline.h"

namespace sluice::alerts {

namespace {

const std::vector<std::string>& RuleFields() {
  static const std::vector<std::string> kFields = {"name",  "metric", "node",   "above",
                                                   "below", "for",    "webhook"};
  return kFields;
}

Status FieldError(size_t index, std::string_view field, const std::string& message) {
  if (field.empty()) return Status::ConfigError("alerts[{}]: {}", index, message);
  return Status::ConfigError("alerts[{}].{}: {}", index, field, message);
}

std::string Hint(const std::string& word, const std::vector<std::string>& candidates) {
  const std::string near = SuggestNearest(word, candidates);
  return near.empty() ? "" : " \u2014 did you mean '" + near + "'?";
}

std::optional<double> ParseNumber(std::string_view text) {
  double v = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, v);
  if (ec != std::errc() || ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

/// Parse a threshold: a number, "5%" (0.05) or a duration in seconds ("2s", "500ms").
Result<double> ParseThreshold(const nlohmann::ordered_json& j) {
  if (j.is_number()) {
    const double v = j.get<double>();
    if (std::isfinite(v)) return v;
  }
  if (j.is_string()) {
    std::string_view text = j.get_ref<const std::string&>();
    if (text.ends_with('%')) {
      if (auto v = ParseNumber(text.substr(0, text.size() - 1))) return *v / 100;
    } else if (auto v = ParseNumber(text)) {
      return *v;
    } else if (auto us = ParseDurationMicros(text); us.ok()) {
      return static_cast<double>(*us) / 1e6;
    }
  }
  return Status::ConfigError("expected a number (e.g. 2, 0.5, 5%, 500ms), got {}", JsonText(j));
}

Result<int64_t> ParseFor(const nlohmann::ordered_json& j) {
  if (j.is_number()) {
    const double s = j.get<double>();
    if (!std::isfinite(s) || s < 0 || s > 1e9) {
      return Status::ConfigError("expected a duration such as 30s, got {}", JsonText(j));
    }
    return static_cast<int64_t>(std::llround(s * 1e6));
  }
  if (j.is_string()) {
    auto us = ParseDurationMicros(j.get_ref<const std::string&>());
    if (!us.ok()) return Status::ConfigError("{}", us.status().message());
    return *us;
  }
  return Status::ConfigError("expected a duration such as 30s, got {}", JsonText(j));
}

Result<std::string> NonEmptyString(const nlohmann::ordered_json& j) {
  if (!j.is_string() || j.get_ref<const std::string&>().empty()) {
    return Status::ConfigError("expected a non-empty string, got {}", JsonText(j));
  }
  return j.get<std::string>();
}

Result<AlertRule> ParseRule(size_t index, const nlohmann::ordered_json& entry,
                            const std::vector<std::string>& known_metrics) {
  if (!entry.is_object()) {
    return FieldError(index, "",
                      fmt::format("expected a mapping such as {{name: slow, metric: "
                                  "batch_latency_p95_s, above: 2, for: 30s}}, got {}",
                                  JsonText(entry)));
  }
  for (const auto& [key, value] : entry.items()) {
    const auto& fields = RuleFields();
    if (std::find(fields.begin(), fields.end(), key) == fields.end()) {
      return FieldError(index, "", fmt::format("unknown field '{}'{}", key, Hint(key, fields)));
    }
  }
  AlertRule rule;
  auto field = [&](const char* name) -> const nlohmann::ordered_json* {
    auto it = entry.find(name);
    return it == entry.end() || it->is_null() ? nullptr : &*it;
  };
  auto wrap = [&](const char* name, const Status& st) {
    return FieldError(index, name, st.message());
  };

  const auto* metric = field("metric");
  if (metric == nullptr) {
    return FieldError(index, "", "missing 'metric' (the metric to watch, e.g. error_rate)");
  }
  auto metric_name = NonEmptyString(*metric);
  if (!metric_name.ok()) return wrap("metric", metric_name.status());
  rule.metric = *metric_name;
  if (!known_metrics.empty() &&
      std::find(known_metrics.begin(), known_metrics.end(), rule.metric) == known_metrics.end()) {
    std::string hint = Hint(rule.metric, known_metrics);
    if (hint.empty()) {
      hint = " (known metrics: ";
      for (size_t i = 0; i < known_metrics.size(); ++i) {
        hint += (i ? ", " : "") + known_metrics[i];
      }
      hint += ")";
    }
    return FieldError(index, "metric", fmt::format("unknown metric '{}'{}", rule.metric, hint));
  }

  if (const auto* node = field("node")) {
    auto id = NonEmptyString(*node);
    if (!id.ok()) return wrap("node", id.status());
    rule.node = *id;
  }
  if (const auto* name = field("name")) {
    auto text = NonEmptyString(*name);
    if (!text.ok()) return wrap("name", text.status());
    rule.name = *text;
  } else {
    rule.name = rule.node ? rule.metric + "@" + *rule.node : rule.metric;
  }

  const auto* above = field("above");
  const auto* below = field("below");
  if (above != nullptr && below != nullptr) {
    return FieldError(index, "", "give one of 'above' or 'below', not both");
  }
  if (above == nullptr && below == nullptr) {
    return FieldError(index, "", "missing 'above' or 'below' (the threshold)");
  }
  rule.op = above != nullptr ? AlertOp::kAbove : AlertOp::kBelow;
  auto threshold = ParseThreshold(above != nullptr ? *above : *below);
  if (!threshold.ok()) return wrap(above != nullptr ? "above" : "below", threshold.status());
  rule.threshold = *threshold;

  if (const auto* for_field = field("for")) {
    auto us = ParseFor(*for_field);
    if (!us.ok()) return wrap("for", us.status());
    rule.for_us = *us;
  }
  if (const auto* webhook = field("webhook")) {
    auto url = NonEmptyString(*webhook);
    if (!url.ok()) return wrap("webhook", url.status());
    if (!url->starts_with("http://") && !url->starts_with("https://")) {
      return FieldError(
          index, "webhook",
          fmt::format("expected an http:// or https:// URL, got {}", http::RedactUrl(*url)));
    }
    if (http::RedactUrl(*url) == "<invalid URL>") {
      return FieldError(index, "webhook", "not a valid URL (expected http(s)://host[:port]/path)");
    }
    rule.webhook = *url;
  }
  return rule;
}

/// Return a duration for people: "30s", "1m30s", "500ms", "2.5s".
std::string DurationText(int64_t us) {
  if (us % 1'000'000 != 0) {
    if (us < 1'000'000 && us % 1000 == 0) return fmt::format("{}ms", us / 1000);
    return fmt::format("{:g}s", static_cast<double>(us) / 1e6);
  }
  const int64_t s = us / 1'000'000;
  if (s < 60 || s % 60 != 0) {
    return s < 60 ? fmt::format("{}s", s) : fmt::format("{}m{}s", s / 60, s % 60);
  }
  return s % 3600 == 0 ? fmt::format("{}h", s / 3600) : fmt::format("{}m", s / 60);
}

std::string Subject(const AlertRule& rule) {
  return rule.node ? fmt::format("{} of node '{}'", rule.metric, *rule.node) : rule.metric;
}

bool Holds(const AlertRule& rule, double value) {
  return rule.op == AlertOp::kAbove ? value > rule.threshold : value < rule.threshold;
}

}  // namespace

std::string_view AlertOpName(AlertOp op) { return op == AlertOp::kAbove ? "above" : "below"; }

const std::vector<std::string>& StandardAlertMetrics() {
  static const std::vector<std::string> kMetrics = {
      "rows_per_s",
      "utilization",
      "backpressure",
      "queue_depth",
      "errors",
      "error_rate",
      "retries",
      "batch_latency_p50_s",
      "batch_latency_p95_s",
      "batch_latency_p99_s",
      "batch_latency_max_s",
      "rss_mb",
      "cpu_percent",
      "memory_budget_used",
  };
  return kMetrics;
}

Result<std::vector<AlertRule>> ParseAlertRules(const nlohmann::ordered_json& alerts,
                                               const std::vector<std::string>& known_metrics) {
  std::vector<AlertRule> rules;
  if (alerts.is_null()) return rules;
  if (!alerts.is_array()) {
    return Status::ConfigError("alerts: expected a list of rules, got {}", JsonText(alerts));
  }
  std::set<std::string> names;
  for (size_t i = 0; i < alerts.size(); ++i) {
    SLUICE_ASSIGN_OR_RETURN(AlertRule rule, ParseRule(i, alerts[i], known_metrics));
    if (!names.insert(rule.name).second) {
      return FieldError(i, alerts[i].contains("name") ? "name" : "",
                        fmt::format("another rule is already named '{}'; give each rule its "
                                    "own 'name'",
                                    rule.name));
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

AlertEvaluator::AlertEvaluator(std::vector<AlertRule> rules, Clock* clock)
    : rules_(std::move(rules)), clock_(clock), states_(rules_.size()) {}

std::vector<AlertEvent> AlertEvaluator::Evaluate(const MetricLookup& lookup) {
  std::vector<AlertEvent> events;
  const int64_t now = clock_->NowMicros();
  for (size_t i = 0; i < rules_.size(); ++i) {
    const AlertRule& rule = rules_[i];
    RuleState& st = states_[i];
    const std::optional<double> value = lookup(rule.metric, rule.node.value_or(""));
    const bool known = value.has_value() && !std::isnan(*value);
    const bool holds = known && Holds(rule, *value);
    switch (st.state) {
      case State::kInactive:
      case State::kPending: {
        if (!holds) {
          st.state = State::kInactive;
          break;
        }
        if (st.state == State::kInactive) {
          st.state = State::kPending;
          st.pending_since_us = now;
        }
        if (now - st.pending_since_us < rule.for_us) break;
        st.state = State::kFiring;
        AlertEvent e;
        e.kind = AlertEvent::Kind::kFired;
        e.name = rule.name;
        e.metric = rule.metric;
        e.node = rule.node.value_or("");
        e.op = rule.op;
        e.value = *value;
        e.threshold = rule.threshold;
        e.fired_at_us = now;
        e.webhook = rule.webhook;
        e.message = fmt::format("alert '{}' firing: {} is {:g}, {} {:g}{}", rule.name,
                                Subject(rule), *value, AlertOpName(rule.op), rule.threshold,
                                rule.for_us > 0 ? " for " + DurationText(rule.for_us) : "");
        st.incident = incidents_.size();
        incidents_.push_back(e);
        events.push_back(std::move(e));
        break;
      }
      case State::kFiring: {
        // Unknown data is not evidence that the problem went away.
        if (!known || holds) break;
        st.state = State::kInactive;
        AlertEvent& incident = incidents_[st.incident];
        incident.resolved_at_us = now;
        AlertEvent e = incident;
        e.kind = AlertEvent::Kind::kResolved;
        e.value = *value;
        e.message =
            fmt::format("alert '{}' resolved: {} is {:g}, no longer {} {:g} (firing for {})",
                        rule.name, Subject(rule), *value, AlertOpName(rule.op), rule.threshold,
                        DurationText(now - incident.fired_at_us));
        events.push_back(std::move(e));
        break;
      }
    }
  }
  return events;
}

nlohmann::json AlertsReportJson(const std::vector<AlertEvent>& incidents, int64_t run_start_us) {
  nlohmann::json out = nlohmann::json::array();
  for (const AlertEvent& e : incidents) {
    nlohmann::json j;
    j["name"] = e.name;
    j["metric"] = e.metric;
    j["node"] = e.node.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.node);
    j["value"] = e.value;
    j["threshold"] = e.threshold;
    j["fired_at_s"] = static_cast<double>(e.fired_at_us - run_start_us) / 1e6;
    j["resolved_at_s"] =
        e.resolved_at_us
            ? nlohmann::json(static_cast<double>(*e.resolved_at_us - run_start_us) / 1e6)
            : nlohmann::json(nullptr);
    j["message"] = e.message;
    out.push_back(std::move(j));
  }
  return out;
}

nlohmann::json AlertEventJson(const AlertEvent& event) {
  nlohmann::json j;
  j["name"] = event.name;
  j["state"] = event.kind == AlertEvent::Kind::kFired ? "firing" : "resolved";
  j["metric"] = event.metric;
  j["node"] = event.node.empty() ? nlohmann::json(nullptr) : nlohmann::json(event.node);
  j["op"] = std::string(AlertOpName(event.op));
  j["value"] = event.value;
  j["threshold"] = event.threshold;
  j["fired_at_us"] = event.fired_at_us;
  j["resolved_at_us"] =
      event.resolved_at_us ? nlohmann::json(*event.resolved_at_us) : nlohmann::json(nullptr);
  j["message"] = event.message;
  return j;
}

}  // namespace sluice::alerts
