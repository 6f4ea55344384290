// The anomaly transform, driven directly: scores against a brute-force baseline, outliers found
// and normal rows not, bounds, and baselines that survive a restart without double folding.

#include <cmath>
#include <filesystem>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/transforms.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using J = nlohmann::json;

constexpr int64_t kSec = 1'000'000;

using Collector = ::sluice::testing::CollectingEmitter;

const NodeRegistry& Registry() {
  static const NodeRegistry* registry = [] {
    auto* r = new NodeRegistry();
    RegisterTransformNodes(r);
    return r;
  }();
  return *registry;
}

SchemaPtr MeterSchema() {
  return MakeSchema(
      {{"meter", TypeId::kString}, {"ts", TypeId::kTimestamp}, {"kwh", TypeId::kFloat64}});
}

struct Reading {
  std::string meter;
  int64_t ts;
  std::optional<double> kwh;
};

BatchPtr Readings(const std::vector<Reading>& rows) {
  ColumnBuilder m(TypeId::kString), t(TypeId::kTimestamp), v(TypeId::kFloat64);
  for (const auto& r : rows) {
    m.AppendString(r.meter);
    t.AppendTimestamp(r.ts);
    r.kwh ? v.AppendFloat64(*r.kwh) : v.AppendNull();
  }
  return Batch::MakeUnchecked(MeterSchema(), {m.Finish(), t.Finish(), v.Finish()},
                              static_cast<int64_t>(rows.size()));
}

/// An anomaly transform bound to MeterSchema, opened on a context of its own — or, given
/// `node_stats`, as instance `instance` of a node whose stats those are.
struct Harness {
  explicit Harness(J options, NodeStats* node_stats = nullptr, int instance = 0)
      : ctx("a", "anomaly", node_stats != nullptr ? node_stats : &stats, &cancelled, false) {
    ctx.set_instance(instance);
    if (!options.contains("value")) options["value"] = "kwh";
    if (!options.contains("group_by")) options["group_by"] = {"meter"};
    if (!options.contains("time")) options["time"] = "ts";
    auto made = Registry().Find("anomaly")->make_transform(
        NodeOptions::ForTest("a", std::move(options), "anomaly"));
    status = made.status();
    if (!made.ok()) return;
    t = std::move(*made);
    status = t->Open(&ctx);
    if (!status.ok()) return;
    auto bound = t->Bind({MeterSchema()});
    status = bound.status();
    if (bound.ok()) schema = *bound;
  }
  Status Push(const std::vector<Reading>& rows) { return t->Process(Readings(rows), 0, &out); }
  int64_t Counter(const std::string& name) const {
    const auto c = stats.Counters();
    auto it = c.find(name);
    return it == c.end() ? 0 : it->second;
  }

  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx;
  std::unique_ptr<Transform> t;
  SchemaPtr schema;
  Status status;
  Collector out;
};

TEST(AnomalyTest, ScoresAgainstTheBaselineBeforeTheReadingAndPassesOnOutliers) {
  Harness h(J{{"min_samples", 30}, {"threshold", 5.0}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  EXPECT_EQ(h.schema->ToString(),
            "meter:string, ts:timestamp, kwh:float64, anomaly_score:float64, "
            "anomaly_mean:float64, anomaly_stddev:float64, anomaly_samples:int64, "
            "anomaly_reason:string");
  std::mt19937_64 rng(3);
  std::normal_distribution<double> normal(10, 1);
  std::vector<Reading> rows;
  std::vector<double> seen;  // meter a's readings, for the brute-force baseline
  for (int i = 0; i < 200; ++i) {
    rows.push_back({"a", i * kSec, normal(rng)});
    rows.push_back({"b", i * kSec, 100 + normal(rng)});  // about 110: its own baseline
  }
  rows.push_back({"a", 500 * kSec, 30.0});   // 20 sigma
  rows.push_back({"b", 500 * kSec, 111.0});  // b is about 110
  ASSERT_TRUE(h.Push(rows).ok());
  for (const auto& r : rows) {
    if (r.meter == "a" && r.ts < 500 * kSec) seen.push_back(*r.kwh);
  }
  // Only a's outlier (20 sigma) comes out: no normal reading is 5 sigma off.
  ASSERT_EQ(h.out.rows.size(), 1u);
  const Batch& b = *h.out.rows[0];
  ASSERT_EQ(b.num_rows(), 1) << b.ToString();
  EXPECT_EQ(b.column(0).GetView(0), "a");
  EXPECT_EQ(b.column(2).GetFloat64(0), 30.0);
  double mean = 0;
  for (double x : seen) mean += x;
  mean /= static_cast<double>(seen.size());
  double ss = 0;
  for (double x : seen) ss += (x - mean) * (x - mean);
  const double sd = std::sqrt(ss / static_cast<double>(seen.size() - 1));
  EXPECT_NEAR(b.column(4).GetFloat64(0), mean, 1e-12);
  EXPECT_NEAR(b.column(5).GetFloat64(0), sd, 1e-12);
  EXPECT_NEAR(b.column(3).GetFloat64(0), (30.0 - mean) / sd, 1e-9);
  EXPECT_EQ(b.column(6).GetInt64(0), 200);
  EXPECT_EQ(b.column(7).GetView(0), "zscore");
  EXPECT_EQ(h.Counter("anomalies"), 1);
}

TEST(AnomalyTest, OutliersNaNAndNullsAreNotFoldedAndFewSamplesAreNotScored) {
  Harness h(J{{"min_samples", 3}, {"emit", "all"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  ASSERT_TRUE(h.Push({{"a", 1, 1.0},
                      {"a", 2, 1000.0},  // only 1 sample so far: not scored, folded
                      {"a", 3, 2.0},
                      {"a", 4, 3.0},
                      {"a", 5, 5000.0},  // scored against 3 samples: an anomaly, not folded
                      {"a", 6, NAN},
                      {"a", 7, std::nullopt},
                      {"a", 8, 4.0}})
                  .ok());
  const Batch& b = *h.out.rows[0];
  ASSERT_EQ(b.num_rows(), 8);
  const auto flags = nlohmann::json::parse(b.ToString());
  std::vector<bool> anomalous;
  std::vector<int64_t> samples;
  for (const auto& r : flags) {
    anomalous.push_back(r[8].get<bool>());
    samples.push_back(r[6].get<int64_t>());
  }
  EXPECT_EQ(anomalous, (std::vector<bool>{false, false, false, false, true, false, false, false}));
  // The outlier, the NaN and the null did not join the baseline.
  EXPECT_EQ(samples, (std::vector<int64_t>{0, 1, 2, 3, 4, 4, 4, 4}));
  EXPECT_TRUE(b.column(3).IsNull(0));  // fewer than min_samples: no score
  EXPECT_TRUE(b.column(3).IsNull(5));  // NaN: no score
}

TEST(AnomalyTest, BoundsMarkRowsWhateverTheirScore) {
  Harness h(J{{"bounds", "kwh > 50"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  ASSERT_TRUE(h.Push({{"a", 1, 1.0}, {"a", 2, 60.0}}).ok());
  ASSERT_EQ(h.out.rows.size(), 1u);
  EXPECT_EQ(h.out.rows[0]->column(2).GetFloat64(0), 60.0);
  EXPECT_EQ(h.out.rows[0]->column(7).GetView(0), "bounds");
}

TEST(AnomalyTest, EwmaForgetsOldReadings) {
  Harness h(J{{"method", "ewma"}, {"alpha", 0.5}, {"min_samples", 2}, {"emit", "all"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  ASSERT_TRUE(h.Push({{"a", 1, 0.0}, {"a", 2, 10.0}, {"a", 3, 10.0}}).ok());
  // mean: 0 -> 5 -> 7.5; variance: 0 -> 0.5 * (0 + 0.5 * 100) = 25.
  const Batch& b = *h.out.rows[0];
  EXPECT_EQ(b.column(4).GetFloat64(2), 5.0);
  EXPECT_EQ(b.column(5).GetFloat64(2), 5.0);
  EXPECT_EQ(b.column(3).GetFloat64(2), 1.0);  // (10 - 5) / 5
}

TEST(AnomalyTest, BaselinesSurviveARestartAndRedeliveredReadingsAreNotFoldedTwice) {
  const std::string path =
      (std::filesystem::temp_directory_path() / fmt::format("anomaly_test_{}.db", getpid()))
          .string();
  std::filesystem::remove(path);
  auto queue = std::make_shared<AckQueue>();
  std::vector<Reading> first;
  for (int i = 0; i < 50; ++i) first.push_back({"m", i * kSec, 10.0 + (i % 5)});
  {
    Harness h(J{{"state", path}, {"emit", "all"}});
    ASSERT_TRUE(h.status.ok()) << h.status.ToString();
    h.out.input_acks = AckSet(std::make_shared<AckHandle>(queue, 0));
    ASSERT_TRUE(h.Push(first).ok());
    h.out.input_acks = AckSet();
    h.out.rows.clear();  // the sink has the rows, durably
    h.out.row_acks.clear();
    std::vector<AckQueue::Event> events;
    queue->Drain(&events, 0);
    EXPECT_TRUE(events.empty()) << "acknowledged before its baseline was saved";
    ASSERT_TRUE(h.t->OnTimer(0, &h.out).ok());  // the snapshot
    queue->Drain(&events, 0);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_TRUE(events[0].delivered);
    EXPECT_EQ(h.Counter("baselines_saved"), 1);
    ASSERT_TRUE(h.t->Close().ok());
  }
  // A new run (after a crash that lost the acknowledgement of the last 10 readings): they come
  // again, and are scored against the saved baseline but not folded a second time.
  Harness h(J{{"state", path}, {"emit", "all"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  EXPECT_EQ(h.Counter("baselines_loaded"), 1);
  std::vector<Reading> again(first.end() - 10, first.end());
  again.push_back({"m", 50 * kSec, 12.0});  // new
  ASSERT_TRUE(h.Push(again).ok());
  const Batch& b = *h.out.rows[0];
  for (int64_t r = 0; r < 10; ++r) EXPECT_EQ(b.column(6).GetInt64(r), 50) << r;
  EXPECT_EQ(b.column(6).GetInt64(10), 50);  // the new reading is scored against 50 ...
  ASSERT_TRUE(h.t->Finish(&h.out).ok());    // ... and folded: 51 saved
  ASSERT_TRUE(h.t->Close().ok());
  Harness check(J{{"state", path}, {"emit", "all"}});
  ASSERT_TRUE(check.Push({{"m", 60 * kSec, 12.0}}).ok());
  EXPECT_EQ(check.out.rows[0]->column(6).GetInt64(0), 51);
  std::filesystem::remove(path);
}

TEST(AnomalyTest, BaselinesCountAgainstTheMemoryBudgetUntilClose) {
  MemoryBudget budget(0);
  {
    Harness h(J{{"emit", "all"}});
    h.ctx.set_memory(&budget);
    std::vector<Reading> rows;
    for (int i = 0; i < 1000; ++i) rows.push_back({fmt::format("meter-{}", i), 1, 1.0});
    ASSERT_TRUE(h.Push(rows).ok());
    EXPECT_GE(budget.held(), 1000 * 64);
    ASSERT_TRUE(h.t->Close().ok());
  }
  EXPECT_EQ(budget.held(), 0);
}

TEST(AnomalyTest, KeyedInstancesKeysAddUp) {
  // Two instances of one node (partition_by), each with its own meters' baselines: the node's
  // `keys` is the sum of what they hold, not the last one's.
  NodeStats stats;
  Harness a(J{{"emit", "all"}}, &stats, 0);
  Harness b(J{{"emit", "all"}}, &stats, 1);
  std::vector<Reading> few, many;
  for (int i = 0; i < 3; ++i) few.push_back({fmt::format("meter-{}", i), 1, 1.0});
  for (int i = 0; i < 50; ++i) many.push_back({fmt::format("meter-{}", 100 + i), 1, 1.0});
  ASSERT_TRUE(a.Push(few).ok());
  ASSERT_TRUE(b.Push(many).ok());
  ASSERT_TRUE(a.Push(few).ok());  // the instance holding less writes last
  EXPECT_EQ(stats.Gauges().at("keys"), 53);
  ASSERT_TRUE(a.t->Close().ok());
  ASSERT_TRUE(b.t->Close().ok());
}

TEST(AnomalyTest, RefusesConfigurationsThatCannotWork) {
  auto error_of = [](J options) { return Harness(std::move(options)).status.ToString(); };
  EXPECT_THAT(error_of(J{{"value", "meter"}}), HasSubstr("not an int64 or float64 column"));
  EXPECT_THAT(error_of(J{{"state", "/tmp/x.db"}, {"time", ""}}), HasSubstr("needs `time`"));
  EXPECT_THAT(error_of(J{{"method", "ewma"}, {"alpha", 1.5}}), HasSubstr("between 0 and 1"));
  EXPECT_THAT(error_of(J{{"bounds", "kwh + 1"}}), HasSubstr("bounds needs a bool"));
  EXPECT_THAT(error_of(J{{"min_samples", 1}}), HasSubstr("at least 2"));
  EXPECT_THAT(error_of(J{{"state", "/nonexistent/dir/x.db"}}), HasSubstr("baseline state"));
}

}  // namespace
}  // namespace sluice
