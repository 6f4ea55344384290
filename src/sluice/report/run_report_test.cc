#include "sluice/report/run_report.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::report {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

nlohmann::json Fixture(const std::string& name) {
  std::ifstream in(std::string(SLUICE_REPORT_TESTDATA) + "/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  return nlohmann::json::parse(ss.str());
}

TEST(ParseRunReportTest, ReadsAVersion1Report) {
  ASSERT_OK_AND_ASSIGN(RunReport r, ParseRunReport(Fixture("run_v1.json")));
  EXPECT_EQ(r.version, 1);
  EXPECT_EQ(r.pipeline, "quickstart");
  EXPECT_EQ(r.rows_read, 37815);
  ASSERT_EQ(r.nodes.size(), 2u);
  EXPECT_EQ(r.nodes[1].id, "archive");
  EXPECT_EQ(r.nodes[1].kind, "sink");
  EXPECT_DOUBLE_EQ(r.nodes[1].phases_s.at("compress"), 0.123102248);
  EXPECT_EQ(r.nodes[1].counters.at("files"), 1);
  EXPECT_FALSE(r.nodes[1].inputs.has_value());
  EXPECT_FALSE(r.timeseries.has_value());
  EXPECT_FALSE(r.cpu_user_s.has_value());
}

TEST(ParseRunReportTest, ReadsAVersion2Report) {
  ASSERT_OK_AND_ASSIGN(RunReport r, ParseRunReport(Fixture("run_v2.json")));
  EXPECT_EQ(r.version, 2);
  EXPECT_EQ(r.started_at, "2026-11-24T22:36:40Z");
  EXPECT_DOUBLE_EQ(*r.cpu_user_s, 78.4);
  const NodeReport* sink = r.FindNode("s3_archive");
  ASSERT_NE(sink, nullptr);
  EXPECT_THAT(*sink->inputs, ElementsAre("clean", "enrich"));
  EXPECT_EQ(*sink->queue_depth_max, 4);
  const HistogramReport& h = sink->histograms.at("batch_latency");
  EXPECT_EQ(h.unit, "s");
  EXPECT_DOUBLE_EQ(h.p95, 2.31);
  EXPECT_TRUE(std::isinf(h.buckets.back().first));  // "+Inf"
  EXPECT_THAT(sink->batch_close, ElementsAre(Pair("rows", 240)));
  ASSERT_TRUE(r.timeseries.has_value());
  EXPECT_EQ(r.timeseries->t.size(), 60u);
  EXPECT_EQ(r.timeseries->nodes.at("orders").rows_out.size(), 60u);
  ASSERT_EQ(r.alerts.size(), 1u);
  EXPECT_EQ(r.alerts[0].node, "s3_archive");
  EXPECT_FALSE(r.alerts[0].resolved_at_s.has_value());  // null
}

TEST(ParseRunReportTest, NullSamplesBecomeGaps) {
  auto j = nlohmann::json::parse(
      R"({"nodes": [], "timeseries": {"t": [1, 2], "rss_bytes": [5, null]}})");
  ASSERT_OK_AND_ASSIGN(RunReport r, ParseRunReport(j));
  EXPECT_EQ(r.timeseries->rss_bytes[0], 5);
  EXPECT_TRUE(std::isnan(r.timeseries->rss_bytes[1]));
}

TEST(ParseRunReportTest, RejectsWhatIsNotARunReport) {
  using J = nlohmann::json;
  EXPECT_THAT(ParseRunReport(J::array()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("expected a JSON object")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"pipeline": "p"})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("missing field 'nodes'")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"nodes": {}})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nodes: expected an array")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"nodes": [{"type": "x"}]})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nodes[0].id: missing")));
  EXPECT_THAT(
      ParseRunReport(J::parse(R"({"nodes": [{"id": "a"}, {"id": "b", "utilization": "high"}]})")),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("nodes[1].utilization: expected a number")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"nodes": [], "duration_s": "1s"})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("duration_s: expected a number")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"nodes": [{"id": "a", "inputs": "b"}]})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nodes[0].inputs")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"nodes": [], "timeseries": {"t": [1, "2"]}})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("timeseries.t[1]")));
  EXPECT_THAT(
      ParseRunReport(
          J::parse(R"({"nodes": [{"id": "a", "histograms": {"h": {"buckets": [[1]]}}}]})")),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("nodes[0].histograms.h.buckets[0]")));
  EXPECT_THAT(ParseRunReport(J::parse(R"({"nodes": [], "alerts": [{"value": "x"}]})")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("alerts[0].value")));
}

TEST(ParseRunReportTest, HugeNumbersAreClamped) {
  auto j = nlohmann::json::parse(R"({"nodes": [{"id": "a", "rows_in": 1e300}]})");
  ASSERT_OK_AND_ASSIGN(RunReport r, ParseRunReport(j));
  EXPECT_EQ(r.nodes[0].rows_in, INT64_MAX);
}

}  // namespace
}  // namespace sluice::report
