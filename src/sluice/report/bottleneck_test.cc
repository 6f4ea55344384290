#include "sluice/report/bottleneck.h"

#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice::report {
namespace {

using ::testing::AllOf;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

nlohmann::json Fixture(const std::string& name) {
  std::ifstream in(std::string(SLUICE_REPORT_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

// A chain src -> work -> out over a 10 s run; tests change the fields they are about.
nlohmann::json Chain() {
  return nlohmann::json::parse(R"({
    "duration_s": 10.0, "memory_budget_peak_bytes": 1000, "memory_budget_limit_bytes": 100000,
    "memory_budget_waits": 0,
    "nodes": [
      {"id": "src", "kind": "source", "parallelism": 1, "inputs": [], "utilization": 0.4,
       "busy_s": 4.0, "blocked_s": 5.0, "batches_out": 100},
      {"id": "work", "kind": "transform", "parallelism": 1, "inputs": ["src"],
       "utilization": 0.95, "busy_s": 9.5, "blocked_s": 0.0, "batches_in": 100,
       "batches_out": 100},
      {"id": "out", "kind": "sink", "parallelism": 1, "inputs": ["work"], "utilization": 0.3,
       "busy_s": 3.0, "blocked_s": 0.0, "batches_in": 100}
    ]})");
}

// Return the index of `id` in the nodes of `run`.
nlohmann::json& Node(nlohmann::json& run, const std::string& id) {
  for (auto& n : run["nodes"]) {
    if (n["id"] == id) return n;
  }
  throw std::runtime_error("no node " + id);
}

TEST(BottleneckTest, BusiestNodeWithBlockedUpstreamGetsMoreParallelism) {
  const Bottleneck b = AnalyzeBottleneck(Chain());
  EXPECT_EQ(b.node, "work");
  EXPECT_EQ(b.reason,
            "busy 95% of the time while its input 'src' is blocked 50% of the run waiting for "
            "room in it (backpressure)");
  ASSERT_EQ(b.advice.size(), 1u);
  EXPECT_THAT(b.advice[0], HasSubstr("raise `parallelism` of 'work' (now 1)"));
}

TEST(BottleneckTest, BlockedUpstreamWinsOverABusierNodeElsewhere) {
  auto run = Chain();
  // The source is busier than 'work' but nothing waits on it: 'work' still limits.
  Node(run, "src")["utilization"] = 0.99;
  Node(run, "work")["utilization"] = 0.7;
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_EQ(b.node, "work");
  // Busy 70% is not near 1: no parallelism advice.
  EXPECT_THAT(b.advice, IsEmpty());
}

TEST(BottleneckTest, WithoutBlockedUpstreamTheBusiestNodeLimits) {
  auto run = Chain();
  Node(run, "src")["blocked_s"] = 0.2;  // 2 %: below the threshold.
  Node(run, "work")["utilization"] = 0.6;
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_EQ(b.node, "work");
  EXPECT_THAT(b.reason, HasSubstr("the busiest node (busy 60%"));
  EXPECT_THAT(b.advice, IsEmpty());
}

TEST(BottleneckTest, SaturatedSourceIsTheLimit) {
  auto run = Chain();
  Node(run, "src")["blocked_s"] = 0.0;
  Node(run, "src")["utilization"] = 0.97;
  Node(run, "work")["utilization"] = 0.2;
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_EQ(b.node, "src");
  ASSERT_EQ(b.advice.size(), 1u);
  EXPECT_THAT(b.advice[0], HasSubstr("source 'src' is busy 97%: reading (or the system it reads "
                                     "from) sets the pace"));
  EXPECT_THAT(b.advice[0], Not(HasSubstr("parallelism")));  // sources have one instance
}

TEST(BottleneckTest, SinkBusyNearFullIsSinkBackpressure) {
  auto run = Chain();
  Node(run, "work")["utilization"] = 0.5;
  Node(run, "work")["blocked_s"] = 6.0;
  Node(run, "out")["utilization"] = 0.98;
  Node(run, "out")["parallelism"] = 2;
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_EQ(b.node, "out");
  ASSERT_EQ(b.advice.size(), 1u);  // No second, generic parallelism advice for the same sink.
  EXPECT_THAT(
      b.advice[0],
      AllOf(HasSubstr("sink backpressure: 'out' is busy 98%, the destination sets the pace"),
            HasSubstr("larger batches, fewer indexes"), Not(HasSubstr("parallelism"))));
}

TEST(BottleneckTest, AdaptiveBatchSizePinnedAtMax) {
  auto run = Chain();
  Node(run, "src")["counters"] = {{"batch_size", 50000}, {"batch_size_max", 50000}};
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_THAT(b.advice,
              Contains(AllOf(HasSubstr("batch size of 'src' is pinned at its max (50000 rows)"),
                             HasSubstr("`max_batch_size` of 'src'"))));
}

TEST(BottleneckTest, AdaptiveBatchSizeBelowMaxGivesNoBatchAdvice) {
  auto run = Chain();
  Node(run, "src")["counters"] = {{"batch_size", 20000}, {"batch_size_max", 50000}};
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_THAT(b.advice, Not(Contains(HasSubstr("batch_size"))));
}

TEST(BottleneckTest, BatchRowsHistogramWithP50AtMaxIsPinned) {
  auto run = Chain();
  Node(run, "src")["histograms"]["batch_rows"] = {
      {"unit", "rows"}, {"count", 100}, {"p50", 10000}, {"max", 10000}};
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_THAT(b.advice, Contains(HasSubstr("every batch of 'src' has its configured size")));

  Node(run, "src")["histograms"]["batch_rows"]["p50"] = 6000;
  EXPECT_THAT(AnalyzeBottleneck(run).advice, Not(Contains(HasSubstr("configured size"))));
}

TEST(BottleneckTest, BatchAdviceIgnoresNodesDownstreamOfTheLimit) {
  auto run = Chain();
  Node(run, "out")["counters"] = {{"batch_size", 500}, {"batch_size_max", 500}};
  EXPECT_THAT(AnalyzeBottleneck(run).advice, Not(Contains(HasSubstr("pinned"))));
}

TEST(BottleneckTest, MemoryBudgetWaitsMeanExhausted) {
  auto run = Chain();
  run["memory_budget_waits"] = 7;
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_THAT(b.advice, Contains(AllOf(
                            HasSubstr("memory budget exhausted (7 waits, peak 1000 B of 97.7 KiB)"),
                            HasSubstr("raise `settings.memory_limit`"))));
}

TEST(BottleneckTest, MemoryBudgetPeakNearLimitMeansExhausted) {
  auto run = Chain();
  run["memory_budget_peak_bytes"] = 95000;
  EXPECT_THAT(AnalyzeBottleneck(run).advice, Contains(HasSubstr("raise `settings.memory_limit`")));
  run["memory_budget_peak_bytes"] = 50000;
  EXPECT_THAT(AnalyzeBottleneck(run).advice, Not(Contains(HasSubstr("memory"))));
}

TEST(BottleneckTest, RetriesDominating) {
  auto run = Chain();
  Node(run, "out")["counters"] = {{"retries", 40}};
  EXPECT_THAT(AnalyzeBottleneck(run).advice,
              Contains(AllOf(HasSubstr("retries dominate 'out' (40 retries for 100 batches)"),
                             HasSubstr("check its health and limits"))));
  Node(run, "out")["counters"] = {{"retries", 5}};  // 5 per 100 batches: noise.
  EXPECT_THAT(AnalyzeBottleneck(run).advice, Not(Contains(HasSubstr("retries"))));
}

TEST(BottleneckTest, IdleEverywhereBlamesTheSource) {
  auto run = Chain();
  for (auto& n : run["nodes"]) {
    n["utilization"] = 0.1;
    n["blocked_s"] = 0.0;
  }
  const Bottleneck b = AnalyzeBottleneck(run);
  EXPECT_EQ(b.node, "src");
  EXPECT_THAT(b.reason, HasSubstr("waits for input"));
  ASSERT_EQ(b.advice.size(), 1u);
  EXPECT_THAT(b.advice[0], HasSubstr("the source 'src' or the system it reads from"));
}

TEST(BottleneckTest, DiamondFixtureNamesTheSink) {
  const Bottleneck b = AnalyzeBottleneck(Fixture("run_v2.json"));
  EXPECT_EQ(b.node, "s3_archive");
  EXPECT_THAT(b.advice, Contains(HasSubstr("sink backpressure: 's3_archive'")));
  EXPECT_THAT(b.advice, Contains(HasSubstr("every batch of 'orders' has its configured size")));
  EXPECT_THAT(b.advice, Contains(HasSubstr("`settings.memory_limit`")));
  EXPECT_THAT(b.advice, Not(Contains(HasSubstr("retries"))));  // 12 for 240 batches.
}

TEST(BottleneckTest, V1ReportWithoutInputsTreatsEarlierNodesAsUpstream) {
  auto run = Fixture("run_v1.json");
  EXPECT_EQ(AnalyzeBottleneck(run).node, "old_rows");  // Busiest; nothing blocked.
  Node(run, "old_rows")["blocked_s"] = 0.2;            // 48 % of the run.
  EXPECT_EQ(AnalyzeBottleneck(run).node, "archive");
}

TEST(BottleneckTest, NotARunReport) {
  const Bottleneck b = AnalyzeBottleneck(nlohmann::json::array());
  EXPECT_EQ(b.node, "");
  EXPECT_THAT(b.reason, HasSubstr("not a run report"));
  EXPECT_THAT(AnalyzeBottleneck(nlohmann::json::parse(R"({"nodes": []})")).reason,
              HasSubstr("no nodes"));
}

TEST(BottleneckTest, FormatHasTwoToFourLines) {
  Bottleneck b{"work", "busy 95%", {"a", "b", "c", "d", "e"}};
  const std::string text = FormatBottleneck(b);
  EXPECT_EQ(text,
            "  bottleneck: 'work' — busy 95%\n"
            "    - a\n    - b\n    - c\n");
  EXPECT_EQ(FormatBottleneck({"", "the report has no nodes", {}}),
            "  bottleneck: none found (the report has no nodes)\n"
            "    - no change suggested\n");
}

TEST(BottleneckTest, ToJson) {
  EXPECT_EQ(BottleneckToJson({"", "r", {}}),
            nlohmann::json::parse(R"({"node": null, "reason": "r", "advice": []})"));
  EXPECT_EQ(BottleneckToJson({"x", "r", {"a"}}),
            nlohmann::json::parse(R"({"node": "x", "reason": "r", "advice": ["a"]})"));
}

}  // namespace
}  // namespace sluice::report
