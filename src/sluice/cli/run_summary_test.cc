#include "sluice/cli/run_summary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/builtin_nodes.h"
#include "sluice/config/loader.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(ProgressLineTest, AStreamShowsItsLagAndTheRecordsSetAside) {
  NodeRegistry registry;
  RegisterBuiltinNodes(&registry);
  auto spec = LoadPipelineText(R"(
pipeline: progress
nodes:
  gen: {type: generate, shape: narrow, rows: 3000, batch_rows: 1000}
  out: {type: "null", inputs: [gen]}
)",
                               "test.yaml", registry, {});
  ASSERT_OK(spec.status());
  auto p = Pipeline::Build(std::move(*spec), registry);
  ASSERT_OK(p.status());
  PipelineRun run(p->get(), RunOptions{});
  ASSERT_OK(run.Execute());
  // Without a lag gauge or records set aside, the line says nothing of them.
  const std::string plain = FormatProgressLine(run);
  EXPECT_THAT(plain, AllOf(HasSubstr("3,000 rows"), Not(HasSubstr("lag")),
                           Not(HasSubstr("dead letters")), Not(HasSubstr("skipped"))));
  // What a redis_stream source and rejecting nodes report.
  run.stats(0).SetGauge("lag", 12345);
  run.stats(0).AddCounter("dead_letter_records", 7);
  run.stats(1).AddCounter("dead_letter_records", 2);
  run.stats(0).AddCounter("skipped_records", 1500);
  ProgressWindow window;
  EXPECT_THAT(FormatProgressLine(run, &window),
              AllOf(HasSubstr("3,000 rows"), HasSubstr("lag 12,345"), HasSubstr("9 dead letters"),
                    HasSubstr("1,500 skipped")));
}

// The report's operation metrics: what the sinks received, in how long, with the memory at the
// start, the end and the peak, and the requests nodes timed.
TEST(RunReportTest, OperationMetrics) {
  NodeRegistry registry;
  RegisterBuiltinNodes(&registry);
  auto spec = LoadPipelineText(R"(
pipeline: op
nodes:
  gen: {type: generate, shape: narrow, rows: 3000, batch_rows: 1000}
  a: {type: "null", inputs: [gen]}
  b: {type: "null", inputs: [gen]}
)",
                               "test.yaml", registry, {});
  ASSERT_OK(spec.status());
  auto p = Pipeline::Build(std::move(*spec), registry);
  ASSERT_OK(p.status());
  PipelineRun run(p->get(), RunOptions{});
  ASSERT_OK(run.Execute());
  run.stats(1).request_latency.Record(250'000'000);  // as a sink timing a transaction
  run.stats(2).request_latency.Record(500'000'000);
  const nlohmann::json op = RunReportJson(run, Status::OK(), "r1")["operation"];
  EXPECT_EQ(op["items"], 6000);  // each sink's 3,000
  EXPECT_EQ(op["batches"], 6);
  EXPECT_EQ(op["requests"]["count"], 2);
  EXPECT_DOUBLE_EQ(op["requests"]["seconds"].get<double>(), 0.75);
  EXPECT_GT(op["duration_s"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(op["throughput_per_s"].get<double>(), 6000 / op["duration_s"].get<double>());
  const auto& mem = op["memory_bytes"];
  EXPECT_GT(mem["start"].get<int64_t>(), 0);
  EXPECT_GT(mem["end"].get<int64_t>(), 0);
  EXPECT_GE(mem["peak"].get<int64_t>(), PeakRssBytes() - (1 << 20));  // the process's high mark
}

}  // namespace
}  // namespace sluice
