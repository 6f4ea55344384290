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

}  // namespace
}  // namespace sluice
