#include "sluice/alerts/alerts.h"

#include <map>

#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::alerts {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

const std::vector<std::string> kMetrics = {"batch_latency_p95_s", "error_rate", "rows_per_s",
                                           "utilization"};

Result<std::vector<AlertRule>> Parse(std::string_view json,
                                     const std::vector<std::string>& metrics = kMetrics) {
  return ParseAlertRules(nlohmann::ordered_json::parse(json), metrics);
}

TEST(ParseAlertRulesTest, ParsesTheDocumentedExample) {
  ASSERT_OK_AND_ASSIGN(auto rules, Parse(R"([{"name": "slow_batches",
      "metric": "batch_latency_p95_s", "node": "archive", "above": 2, "for": "30s",
      "webhook": "http://127.0.0.1:9000/hook"}])"));
  ASSERT_THAT(rules, SizeIs(1));
  const AlertRule& r = rules[0];
  EXPECT_EQ(r.name, "slow_batches");
  EXPECT_EQ(r.metric, "batch_latency_p95_s");
  EXPECT_EQ(r.node, "archive");
  EXPECT_EQ(r.op, AlertOp::kAbove);
  EXPECT_EQ(r.threshold, 2.0);
  EXPECT_EQ(r.for_us, 30'000'000);
  EXPECT_EQ(r.webhook, "http://127.0.0.1:9000/hook");
}

TEST(ParseAlertRulesTest, AppliesDefaultsAndThresholdUnits) {
  ASSERT_OK_AND_ASSIGN(auto rules, Parse(R"([
      {"metric": "error_rate", "above": "5%"},
      {"metric": "rows_per_s", "node": "sink", "below": 100, "for": 90},
      {"metric": "batch_latency_p95_s", "above": "500ms", "for": "1m30s"},
      {"metric": "utilization", "below": "0.25", "for": 0.5}])"));
  ASSERT_THAT(rules, SizeIs(4));
  EXPECT_EQ(rules[0].name, "error_rate");
  EXPECT_EQ(rules[0].node, std::nullopt);
  EXPECT_DOUBLE_EQ(rules[0].threshold, 0.05);
  EXPECT_EQ(rules[0].for_us, 0);
  EXPECT_EQ(rules[0].webhook, std::nullopt);
  EXPECT_EQ(rules[1].name, "rows_per_s@sink");
  EXPECT_EQ(rules[1].op, AlertOp::kBelow);
  EXPECT_EQ(rules[1].threshold, 100.0);
  EXPECT_EQ(rules[1].for_us, 90'000'000);
  EXPECT_DOUBLE_EQ(rules[2].threshold, 0.5);
  EXPECT_EQ(rules[2].for_us, 90'000'000);
  EXPECT_DOUBLE_EQ(rules[3].threshold, 0.25);
  EXPECT_EQ(rules[3].for_us, 500'000);
}

TEST(ParseAlertRulesTest, NullIsNoRulesAndAnEmptyMetricListAcceptsAnyMetric) {
  ASSERT_OK_AND_ASSIGN(auto none, ParseAlertRules(nullptr, kMetrics));
  EXPECT_THAT(none, IsEmpty());
  ASSERT_OK_AND_ASSIGN(auto any, Parse(R"([{"metric": "cache_hit_ratio", "below": 0.9}])", {}));
  EXPECT_EQ(any[0].metric, "cache_hit_ratio");
}

TEST(ParseAlertRulesTest, ErrorsNameTheEntryAndField) {
  struct Case {
    const char* json;
    const char* message;
  };
  const Case cases[] = {
      {R"({"metric": "error_rate"})", "alerts: expected a list of rules"},
      {R"(["error_rate > 5%"])", "alerts[0]: expected a mapping"},
      {R"([{"above": 1}])", "alerts[0]: missing 'metric'"},
      {R"([{"metric": "error_rate", "above": 1},
           {"metric": "batch_latncy_p95_s", "above": 2}])",
       "alerts[1].metric: unknown metric 'batch_latncy_p95_s' \u2014 did you mean "
       "'batch_latency_p95_s'?"},
      {R"([{"metric": "zzz", "above": 2}])",
       "alerts[0].metric: unknown metric 'zzz' (known metrics: batch_latency_p95_s, error_rate, "
       "rows_per_s, utilization)"},
      {R"([{"metric": "error_rate", "above": 1, "fro": "30s"}])",
       "alerts[0]: unknown field 'fro' \u2014 did you mean 'for'?"},
      {R"([{"metric": "error_rate", "above": 1},
           {"metric": "error_rate", "above": 1, "for": "soon"}])",
       "alerts[1].for: 'soon' is not a duration"},
      {R"([{"metric": "error_rate", "above": 1, "for": -3}])",
       "alerts[0].for: expected a duration such as 30s, got -3"},
      {R"([{"metric": "error_rate", "above": 1, "below": 0}])",
       "alerts[0]: give one of 'above' or 'below', not both"},
      {R"([{"metric": "error_rate"}])", "alerts[0]: missing 'above' or 'below'"},
      {R"([{"metric": "error_rate", "above": "lots"}])",
       "alerts[0].above: expected a number (e.g. 2, 0.5, 5%, 500ms), got \"lots\""},
      {R"([{"metric": "error_rate", "below": true}])", "alerts[0].below: expected a number"},
      {R"([{"metric": "error_rate", "above": 1, "webhook": "127.0.0.1:9000/hook"}])",
       "alerts[0].webhook: expected an http:// or https:// URL, got <invalid URL>"},
      {R"([{"metric": "error_rate", "above": 1, "webhook": "ftp://u:pw@h.example/T0/x?t=1"}])",
       "alerts[0].webhook: expected an http:// or https:// URL, got ftp://h.example/…"},
      {R"([{"metric": "error_rate", "above": 1, "webhook": "http://bad host/T0?t=1"}])",
       "alerts[0].webhook: not a valid URL (expected http(s)://host[:port]/path)"},
      {R"([{"metric": "error_rate", "above": 1, "node": 3}])",
       "alerts[0].node: expected a non-empty string"},
      {R"([{"name": "x", "metric": "error_rate", "above": 1},
           {"name": "x", "metric": "rows_per_s", "below": 1}])",
       "alerts[1].name: another rule is already named 'x'"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.json);
    EXPECT_THAT(Parse(c.json), StatusIs(StatusCode::kConfigError, HasSubstr(c.message)));
  }
}

/// Metric values set by the test, looked up by "metric@node".
class Metrics {
 public:
  void Set(const std::string& metric, const std::string& node, std::optional<double> v) {
    values_[metric + "@" + node] = v;
  }
  MetricLookup Lookup() {
    return [this](std::string_view metric, std::string_view node) -> std::optional<double> {
      auto it = values_.find(std::string(metric) + "@" + std::string(node));
      return it == values_.end() ? std::nullopt : it->second;
    };
  }

 private:
  std::map<std::string, std::optional<double>> values_;
};

AlertRule Rule(std::string name, AlertOp op, double threshold, int64_t for_us,
               std::optional<std::string> node = std::nullopt) {
  AlertRule r;
  r.name = std::move(name);
  r.metric = "m";
  r.node = std::move(node);
  r.op = op;
  r.threshold = threshold;
  r.for_us = for_us;
  return r;
}

constexpr int64_t kSecond = 1'000'000;

TEST(AlertEvaluatorTest, ForZeroFiresAtOnceOnceAndResolves) {
  FakeClock clock(100 * kSecond);
  Metrics metrics;
  AlertEvaluator eval({Rule("hot", AlertOp::kAbove, 2, 0, "archive")}, &clock);

  metrics.Set("m", "archive", 1.5);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty());
  clock.Advance(kSecond);
  metrics.Set("m", "archive", 2.5);
  auto fired = eval.Evaluate(metrics.Lookup());
  ASSERT_THAT(fired, SizeIs(1));
  EXPECT_EQ(fired[0].kind, AlertEvent::Kind::kFired);
  EXPECT_EQ(fired[0].name, "hot");
  EXPECT_EQ(fired[0].node, "archive");
  EXPECT_EQ(fired[0].value, 2.5);
  EXPECT_EQ(fired[0].threshold, 2.0);
  EXPECT_EQ(fired[0].fired_at_us, 101 * kSecond);
  EXPECT_EQ(fired[0].resolved_at_us, std::nullopt);
  EXPECT_EQ(fired[0].message, "alert 'hot' firing: m of node 'archive' is 2.5, above 2");

  clock.Advance(kSecond);
  metrics.Set("m", "archive", 3);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty()) << "fires once";
  clock.Advance(kSecond);
  metrics.Set("m", "archive", 2);  // not strictly above
  auto resolved = eval.Evaluate(metrics.Lookup());
  ASSERT_THAT(resolved, SizeIs(1));
  EXPECT_EQ(resolved[0].kind, AlertEvent::Kind::kResolved);
  EXPECT_EQ(resolved[0].value, 2.0);
  EXPECT_EQ(resolved[0].fired_at_us, 101 * kSecond);
  EXPECT_EQ(resolved[0].resolved_at_us, 103 * kSecond);
  EXPECT_EQ(resolved[0].message,
            "alert 'hot' resolved: m of node 'archive' is 2, no longer above 2 (firing for 2s)");
  ASSERT_THAT(eval.incidents(), SizeIs(1));
  EXPECT_EQ(eval.incidents()[0].resolved_at_us, 103 * kSecond);
  EXPECT_TRUE(eval.any_fired());

  metrics.Set("m", "archive", 9);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), SizeIs(1)) << "fires again after resolving";
  EXPECT_THAT(eval.incidents(), SizeIs(2));
}

TEST(AlertEvaluatorTest, ForThirtySecondsNeedsAnUnbrokenStretch) {
  FakeClock clock(0);
  Metrics metrics;
  AlertEvaluator eval({Rule("slow", AlertOp::kAbove, 2, 30 * kSecond)}, &clock);
  auto tick = [&](double value) {
    metrics.Set("m", "", value);
    auto events = eval.Evaluate(metrics.Lookup());
    clock.Advance(kSecond);
    return events;
  };
  // Holds for 0..24 s, then a one-sample gap at 25 s resets the timer.
  for (int t = 0; t < 25; ++t) EXPECT_THAT(tick(3), IsEmpty()) << "t=" << t;
  EXPECT_THAT(tick(1), IsEmpty());
  // Holds again from 26 s: nothing until 26 + 30 = 56 s.
  for (int t = 26; t < 56; ++t) EXPECT_THAT(tick(3), IsEmpty()) << "t=" << t;
  auto events = tick(3);
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].fired_at_us, 56 * kSecond);
  EXPECT_EQ(events[0].message, "alert 'slow' firing: m is 3, above 2 for 30s");
  EXPECT_THAT(tick(3), IsEmpty());
}

TEST(AlertEvaluatorTest, BelowFiresUnderTheThreshold) {
  FakeClock clock(0);
  Metrics metrics;
  AlertEvaluator eval({Rule("stalled", AlertOp::kBelow, 100, 2 * kSecond, "sink")}, &clock);
  metrics.Set("m", "sink", 500);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty());
  metrics.Set("m", "sink", 10);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty());
  clock.Advance(2 * kSecond);
  auto events = eval.Evaluate(metrics.Lookup());
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].message, "alert 'stalled' firing: m of node 'sink' is 10, below 100 for 2s");
  clock.Advance(kSecond);
  metrics.Set("m", "sink", 150);
  events = eval.Evaluate(metrics.Lookup());
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].kind, AlertEvent::Kind::kResolved);
}

TEST(AlertEvaluatorTest, UnknownValuesResetPendingButDoNotResolve) {
  FakeClock clock(0);
  Metrics metrics;
  AlertEvaluator eval({Rule("a", AlertOp::kAbove, 1, kSecond)}, &clock);
  metrics.Set("m", "", 5);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty());
  clock.Advance(kSecond);
  metrics.Set("m", "", std::nullopt);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty()) << "unknown resets the timer";
  metrics.Set("m", "", 5);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty());
  clock.Advance(kSecond);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), SizeIs(1));
  metrics.Set("m", "", std::nullopt);
  clock.Advance(kSecond);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty()) << "unknown does not resolve";
  metrics.Set("m", "", std::nan(""));
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), IsEmpty()) << "NaN does not resolve";
  metrics.Set("m", "", 0);
  EXPECT_THAT(eval.Evaluate(metrics.Lookup()), SizeIs(1));
}

TEST(AlertEvaluatorTest, LooksUpEachRulesMetricAndNodeAndReportsEventsInRuleOrder) {
  FakeClock clock(0);
  std::vector<std::string> asked;
  AlertRule a = Rule("a", AlertOp::kAbove, 0, 0, "n1");
  AlertRule b = Rule("b", AlertOp::kAbove, 0, 0);
  b.metric = "other";
  b.webhook = "http://127.0.0.1:1/x";
  AlertEvaluator eval({a, b}, &clock);
  auto events = eval.Evaluate([&](std::string_view metric, std::string_view node) {
    asked.push_back(std::string(metric) + "@" + std::string(node));
    return std::optional<double>(1);
  });
  EXPECT_THAT(asked, ElementsAre("m@n1", "other@"));
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].name, "a");
  EXPECT_EQ(events[0].webhook, std::nullopt);
  EXPECT_EQ(events[1].name, "b");
  EXPECT_EQ(events[1].node, "");
  EXPECT_EQ(events[1].webhook, "http://127.0.0.1:1/x");
}

TEST(AlertsJsonTest, ReportAndWebhookJson) {
  FakeClock clock(10 * kSecond);
  Metrics metrics;
  AlertEvaluator eval(
      {Rule("hot", AlertOp::kAbove, 2, 0, "archive"), Rule("b", AlertOp::kBelow, 1, 0)}, &clock);
  metrics.Set("m", "archive", 4);
  metrics.Set("m", "", 0.5);
  auto fired = eval.Evaluate(metrics.Lookup());
  ASSERT_THAT(fired, SizeIs(2));
  clock.Advance(kSecond + kSecond / 2);
  metrics.Set("m", "archive", 1);
  auto resolved = eval.Evaluate(metrics.Lookup());
  ASSERT_THAT(resolved, SizeIs(1));

  const nlohmann::json report = AlertsReportJson(eval.incidents(), 8 * kSecond);
  EXPECT_EQ(report, nlohmann::json::parse(R"([
    {"name": "hot", "metric": "m", "node": "archive", "value": 4.0, "threshold": 2.0,
     "fired_at_s": 2.0, "resolved_at_s": 3.5,
     "message": "alert 'hot' firing: m of node 'archive' is 4, above 2"},
    {"name": "b", "metric": "m", "node": null, "value": 0.5, "threshold": 1.0,
     "fired_at_s": 2.0, "resolved_at_s": null,
     "message": "alert 'b' firing: m is 0.5, below 1"}])"));

  const nlohmann::json hook = AlertEventJson(resolved[0]);
  EXPECT_EQ(hook, nlohmann::json::parse(R"js({
    "name": "hot", "state": "resolved", "metric": "m", "node": "archive", "op": "above",
    "value": 1.0, "threshold": 2.0, "fired_at_us": 10000000, "resolved_at_us": 11500000,
    "message": "alert 'hot' resolved: m of node 'archive' is 1, no longer above 2 (firing for 1.5s)"
  })js"));
}

}  // namespace
}  // namespace sluice::alerts
