#include "sluice/cli/run_monitor.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/builtin_nodes.h"
#include "sluice/config/loader.h"
#include "sluice/faults/fault_inject.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

class RunMonitorTest : public ::testing::Test {
 protected:
  RunMonitorTest() {
    RegisterBuiltinNodes(&registry_);
    RegisterFaultNodes(&registry_);  // tests break runs on purpose
  }

  std::unique_ptr<Pipeline> Build(const std::string& yaml) {
    auto spec = LoadPipelineText(yaml, "test.yaml", registry_, {});
    EXPECT_OK(spec.status());
    auto p = Pipeline::Build(std::move(*spec), registry_);
    EXPECT_OK(p.status());
    return std::move(*p);
  }

  NodeRegistry registry_;
};

constexpr const char* kThreeNodes = R"(
pipeline: mon
nodes:
  gen: {type: generate, shape: narrow, rows: 20000, batch_rows: 1000}
  keep: {type: filter, inputs: [gen], where: "id > 0"}
  out: {type: "null", inputs: [keep]}
)";

TEST_F(RunMonitorTest, ReportHasEdgesHistogramsAndAFinalSampleWithTheTotals) {
  auto p = Build(kThreeNodes);
  PipelineRun run(p.get(), RunOptions{});
  RunMonitor monitor(&run, {.run_id = "r1", .interval_us = 1000});
  ASSERT_OK(monitor.Start());
  ASSERT_OK(run.Execute());
  monitor.Stop(Status::OK());
  nlohmann::json r = nlohmann::json::object();
  r["nodes"] = nlohmann::json::array({{{"id", "gen"}}, {{"id", "keep"}}, {{"id", "out"}}});
  monitor.AddToReport(&r);
  EXPECT_EQ(r["version"], 2);
  EXPECT_EQ(r["nodes"][0]["inputs"], nlohmann::json::array());
  EXPECT_EQ(r["nodes"][1]["inputs"], nlohmann::json::array({"gen"}));
  EXPECT_EQ(r["nodes"][2]["inputs"], nlohmann::json::array({"keep"}));
  // One latency and one size record per batch: 20 batches produced, filtered and written.
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(r["nodes"][i]["histograms"]["batch_rows"]["count"], 20) << i;
    EXPECT_EQ(r["nodes"][i]["histograms"]["batch_rows"]["max"], 1000) << i;
    EXPECT_GE(r["nodes"][i]["histograms"]["batch_latency"]["count"], 20) << i;
  }
  const auto& ts = r["timeseries"];
  ASSERT_GE(ts["t"].size(), 2u);             // the start and the end, at least
  EXPECT_GE(ts["t"][0].get<double>(), 0.0);  // the sample taken at Start()
  EXPECT_LT(ts["t"][0].get<double>(), ts["t"].back().get<double>());
  EXPECT_EQ(ts["nodes"]["gen"]["rows_out"].back(), 20000);
  EXPECT_EQ(ts["nodes"]["out"]["rows_in"].back(), 20000);
  EXPECT_EQ(ts["nodes"]["gen"]["rows_out"].size(), ts["t"].size());
  EXPECT_EQ(r["alerts"], nlohmann::json::array());
}

TEST_F(RunMonitorTest, LongRunsKeepABoundedThinnedSeries) {
  auto p = Build(R"(
nodes:
  gen: {type: generate, shape: narrow, rows: 3000000, batch_rows: 1000}
  out: {type: "null", inputs: [gen]}
)");
  PipelineRun run(p.get(), RunOptions{});
  RunMonitor monitor(&run, {.run_id = "r2", .interval_us = 100, .max_samples = 8});
  ASSERT_OK(monitor.Start());
  ASSERT_OK(run.Execute());
  monitor.Stop(Status::OK());
  nlohmann::json r = nlohmann::json::object();
  monitor.AddToReport(&r);
  const auto& t = r["timeseries"]["t"];
  EXPECT_LE(t.size(), 8u);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_GT(t[i], t[i - 1]);
  EXPECT_EQ(r["timeseries"]["nodes"]["gen"]["rows_out"].back(), 3000000);
}

TEST_F(RunMonitorTest, AnAlertOnErrorsFiresAndTheErrorIsCountedByKind) {
  auto p = Build(R"(
pipeline: failing
nodes:
  gen: {type: generate, shape: narrow, rows: 10000, batch_rows: 1000}
  fault: {type: fault_inject, inputs: [gen], fail_at_batch: 3}
  out: {type: "null", inputs: [fault]}
alerts:
  - {name: any_error, metric: errors, node: fault, above: 0}
)");
  auto rules = alerts::ParseAlertRules(p->spec().alerts, alerts::StandardAlertMetrics());
  ASSERT_OK(rules.status());
  PipelineRun run(p.get(), RunOptions{});
  RunMonitor monitor(&run, {.run_id = "r3", .alert_rules = *rules});
  ASSERT_OK(monitor.Start());
  Status st = run.Execute();
  EXPECT_FALSE(st.ok());
  monitor.Stop(st);  // the last sample sees the error: for 0s fires at once
  EXPECT_TRUE(monitor.AlertFired());
  nlohmann::json r = nlohmann::json::object();
  monitor.AddToReport(&r);
  ASSERT_EQ(r["alerts"].size(), 1u);
  EXPECT_EQ(r["alerts"][0]["name"], "any_error");
  EXPECT_THAT(monitor.MetricsText(), HasSubstr("sluice_node_errors_total{code=\""));
  EXPECT_THAT(monitor.MetricsText(), HasSubstr("node=\"fault\""));
}

TEST_F(RunMonitorTest, ServesPrometheusTextAndLiveJson) {
  auto p = Build(kThreeNodes);
  PipelineRun run(p.get(), RunOptions{});
  RunMonitor monitor(&run, {.run_id = "r4", .metrics_listen = "127.0.0.1:0"});
  ASSERT_OK(monitor.Start());
  EXPECT_GT(monitor.port(), 0);
  ASSERT_OK(run.Execute());
  const std::string text = monitor.MetricsText();
  EXPECT_THAT(text, HasSubstr("# TYPE sluice_node_rows_out_total counter"));
  EXPECT_THAT(text, HasSubstr("sluice_run_info{pipeline=\"mon\",run_id=\"r4\"} 1"));
  EXPECT_THAT(text, HasSubstr("sluice_node_batch_latency_seconds_count{"));
  nlohmann::json live = nlohmann::json::parse(monitor.LiveJson());
  EXPECT_EQ(live["run_id"], "r4");
  EXPECT_EQ(live["status"], "running");  // Stop() not called yet
  ASSERT_EQ(live["nodes"].size(), 3u);
  EXPECT_EQ(live["nodes"][0]["rows_out"], 20000);
  monitor.Stop(Status::OK());
  EXPECT_EQ(nlohmann::json::parse(monitor.LiveJson())["status"], "ok");
}

TEST_F(RunMonitorTest, ABadListenAddressIsAnInvalidArgument) {
  auto p = Build(kThreeNodes);
  PipelineRun run(p.get(), RunOptions{});
  RunMonitor monitor(&run, {.run_id = "r5", .metrics_listen = "localhost"});
  EXPECT_THAT(monitor.Start(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("host:port")));
}

}  // namespace
}  // namespace sluice
