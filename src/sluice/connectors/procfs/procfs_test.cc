#include "sluice/connectors/procfs/procfs.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>

#include "sluice/connectors/procfs/procfs_test_util.h"
#include "sluice/connectors/procfs/sampler.h"
#include "sluice/core/time.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"

namespace sluice {
namespace {

using procfs::testing::ErrorOf;
using procfs::testing::RowsOf;
using procfs::testing::TreePath;
using procfs::testing::ValueOf;
using ::testing::HasSubstr;
using testing::StatusIs;

Result<std::unique_ptr<Source>> MakeSource(const OptionJson& values) {
  NodeRegistry registry;
  RegisterProcfsNodes(&registry);
  const NodeTypeInfo* info = registry.Resolve("procfs", false);
  EXPECT_NE(info, nullptr);
  return info->make_source(NodeOptions::ForTest("host", values, "procfs"));
}

TEST(ProcfsSource, ConfigErrorsNameTheOption) {
  const std::string a = TreePath("a");
  const auto error = [&](OptionJson values) {
    if (!values.contains("root")) values["root"] = a;
    auto made = MakeSource(values);
    EXPECT_FALSE(made.ok());
    return made.status();
  };
  EXPECT_THAT(error({{"root", "/no/such/proc"}}),
              StatusIs(StatusCode::kConfigError,
                       "node 'host': option 'root': '/no/such/proc': No such file or directory"));
  EXPECT_THAT(error({{"root", TreePath("README.md")}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("README.md' is not a directory")));
  EXPECT_THAT(
      error({{"interval", 5000}}),
      StatusIs(StatusCode::kConfigError, "node 'host': option 'interval': must be at least 10ms"));
  EXPECT_THAT(error({{"samples", -1}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'samples': must be >= 0")));
  EXPECT_THAT(
      error({{"collectors", {"cpu", "dsk"}}}),
      StatusIs(StatusCode::kConfigError,
               "node 'host': option 'collectors': unknown collector 'dsk' (collectors: cpu, "
               "memory, load, pressure, disk, network, filesystem, processes)"));
  EXPECT_THAT(error({{"collectors", OptionJson::array()}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("lists no collector")));
  EXPECT_THAT(
      error({{"threads", 0}}),
      StatusIs(StatusCode::kConfigError, "node 'host': option 'threads': must be between 1 and 8"));
  EXPECT_THAT(error({{"threads", 9}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("between 1 and 8")));
  EXPECT_THAT(error({{"top_processes", -1}}),
              StatusIs(StatusCode::kConfigError,
                       "node 'host': option 'top_processes': must be between 0 and 1000"));
  EXPECT_THAT(error({{"mount_points_exclude", {"/dev", "data"}}}),
              StatusIs(StatusCode::kConfigError,
                       "node 'host': option 'mount_points_exclude': 'data' is not an absolute "
                       "path"));
  EXPECT_OK(MakeSource({{"root", a + "/"}}));  // a trailing slash is fine
}

/// Drive a source as the executor does, on a fake clock.
struct Driven {
  std::vector<BatchPtr> samples;
  int empty = 0;
  std::vector<int64_t> sampled_at;  // the fake clock when each sample came
  NodeStats stats;
};

void Drive(Source* source, FakeClock* clock, Driven* out, int max_calls = 1000) {
  std::atomic<bool> cancelled{false};
  NodeContext ctx("host", "procfs", &out->stats, &cancelled, false);
  ctx.set_clock(clock);
  ASSERT_OK(source->Open(&ctx));
  for (int call = 0; call < max_calls; ++call) {
    auto next = source->Next(static_cast<uint64_t>(call));
    ASSERT_OK(next);
    if (*next == nullptr) break;
    if ((*next)->num_rows() == 0) {
      ++out->empty;
      continue;
    }
    out->samples.push_back(*next);
    out->sampled_at.push_back(clock->NowMicros());
  }
  ASSERT_OK(source->Close());
}

TEST(ProcfsSource, SamplesEveryIntervalOnTheRunsClock) {
  ASSERT_OK_AND_ASSIGN(auto source, MakeSource({{"root", TreePath("a")},
                                                {"interval", 1'000'000},
                                                {"samples", 3},
                                                {"host", "h1"},
                                                {"collectors", {"cpu", "load"}}}));
  EXPECT_FALSE(source->Unbounded());
  EXPECT_TRUE(source->HasWatermark());
  EXPECT_EQ(source->Watermark(), INT64_MIN);
  FakeClock clock(5'000'000);
  Driven d;
  const int64_t before = NowMicros();
  Drive(source.get(), &clock, &d);
  const int64_t after = NowMicros();
  ASSERT_EQ(d.samples.size(), 3u);
  // The first sample at once, then one a second: each call waits until the next is due (up
  // to a second), so no "nothing yet" comes between them.
  EXPECT_EQ(d.sampled_at, (std::vector<int64_t>{5'000'000, 6'000'000, 7'000'000}));
  EXPECT_EQ(d.empty, 0);
  for (const BatchPtr& b : d.samples) {
    EXPECT_EQ(b->schema()->ToString(), procfs::Sampler::Schema()->ToString());
    EXPECT_EQ(b->column(1).GetView(0), "h1");
    const int64_t ts = b->column(0).GetInt64(0);
    EXPECT_GE(ts, before);
    EXPECT_LE(ts, after);
    EXPECT_EQ(ValueOf(*b, "load5"), 2.74);
    EXPECT_EQ(ValueOf(*b, "cpu_seconds_total", R"({"mode":"nice"})"), 367.75);
    EXPECT_EQ(RowsOf(*b, "collector_success"), 2);
    EXPECT_EQ(RowsOf(*b, "memory_bytes"), 0);
  }
  // The same tree twice: rates exist from the second sample on, and are 0.
  EXPECT_EQ(RowsOf(*d.samples[0], "context_switches_per_second"), 0);
  EXPECT_EQ(ValueOf(*d.samples[1], "context_switches_per_second"), 0);
  EXPECT_EQ(source->Watermark(), d.samples[2]->column(0).GetInt64(0));
  const auto counters = d.stats.Counters();
  EXPECT_EQ(counters.at("samples"), 3);
  EXPECT_EQ(counters.count("collector_errors_cpu"), 0u);
  EXPECT_EQ(counters.count("missed_samples"), 0u);
  EXPECT_GT(d.stats.Phases().at("collect"), 0);
}

TEST(ProcfsSource, UnderALongIntervalAnswersNothingYetOnceASecond) {
  // The engine settles acknowledgements and counts idle time between calls: a call waits at
  // most a second for the next sample.
  ASSERT_OK_AND_ASSIGN(auto source, MakeSource({{"root", TreePath("a")},
                                                {"interval", 3'500'000},
                                                {"samples", 2},
                                                {"collectors", {"load"}}}));
  FakeClock clock;
  Driven d;
  Drive(source.get(), &clock, &d);
  EXPECT_EQ(d.sampled_at, (std::vector<int64_t>{0, 3'500'000}));
  EXPECT_EQ(d.empty, 3);  // at 1 s, 2 s and 3 s
  EXPECT_EQ(clock.sleep_calls(), 4);
  EXPECT_EQ(clock.slept_micros(), 3'500'000);
}

TEST(ProcfsSource, FailingCollectorsAreCountedNotFatal) {
  ASSERT_OK_AND_ASSIGN(auto source, MakeSource({{"root", TreePath("missing")},
                                                {"interval", 50'000},
                                                {"samples", 4},
                                                {"collectors", {"disk", "load", "pressure"}}}));
  FakeClock clock;
  Driven d;
  Drive(source.get(), &clock, &d);
  ASSERT_EQ(d.samples.size(), 4u);
  const std::string root = TreePath("missing");
  for (const BatchPtr& b : d.samples) {
    EXPECT_EQ(b->column(1).GetView(0), "recorded-host");  // <root>/sys/kernel/hostname
    EXPECT_EQ(ErrorOf(*b, "disk"), root + "/diskstats: No such file or directory");
    EXPECT_EQ(ErrorOf(*b, "load"), root + "/loadavg: line 1: the 15-minute load is missing");
    EXPECT_EQ(b->num_rows(), 4);  // success and duration of disk and load; pressure is absent
  }
  const auto counters = d.stats.Counters();
  EXPECT_EQ(counters.at("samples"), 4);
  EXPECT_EQ(counters.at("collector_errors_disk"), 4);
  EXPECT_EQ(counters.at("collector_errors_load"), 4);
  EXPECT_EQ(counters.count("collector_errors_pressure"), 0u);
}

TEST(ProcfsSource, AStalledHostDoesNotMakeUpMissedSamples) {
  ASSERT_OK_AND_ASSIGN(
      auto source,
      MakeSource({{"root", TreePath("a")}, {"interval", 1'000'000}, {"collectors", {"load"}}}));
  EXPECT_TRUE(source->Unbounded());
  FakeClock clock;
  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx("host", "procfs", &stats, &cancelled, false);
  ctx.set_clock(&clock);
  ASSERT_OK(source->Open(&ctx));
  ASSERT_OK_AND_ASSIGN(BatchPtr first, source->Next(0));
  EXPECT_GT(first->num_rows(), 0);
  clock.Advance(3'500'000);  // suspended for 3.5 intervals
  ASSERT_OK_AND_ASSIGN(BatchPtr late, source->Next(1));
  EXPECT_GT(late->num_rows(), 0);
  EXPECT_EQ(stats.Counters().at("missed_samples"), 2);  // those due at 2 s and 3 s
  // The next one is due one interval after the late one, not at once.
  ASSERT_OK_AND_ASSIGN(BatchPtr next, source->Next(2));
  EXPECT_GT(next->num_rows(), 0);
  EXPECT_EQ(clock.NowMicros(), 4'500'000);
  ASSERT_OK(source->Close());
}

/// Keeps every batch it is given.
class CaptureSink final : public Sink {
 public:
  explicit CaptureSink(std::vector<BatchPtr>* out, std::mutex* mu) : out_(out), mu_(mu) {}
  Status Write(const BatchPtr& batch, AckSet) override {
    std::lock_guard lock(*mu_);
    out_->push_back(batch);
    return Status::OK();
  }

 private:
  std::vector<BatchPtr>* out_;
  std::mutex* mu_;
};

TEST(ProcfsSource, RunsInAPipelineUnderBothExecutors) {
  for (EngineKind engine : {EngineKind::kParallel, EngineKind::kSequential}) {
    std::vector<BatchPtr> got;
    std::mutex mu;
    NodeRegistry registry;
    RegisterProcfsNodes(&registry);
    registry.AddSink("capture", "test", {}, [&](const NodeOptions&) {
      return Result<std::unique_ptr<Sink>>(std::make_unique<CaptureSink>(&got, &mu));
    });
    FakeClock clock;
    RunOptions options;
    options.clock = &clock;
    testing::TestRun run;
    ASSERT_OK(run.Run({testing::TestNode("host", "procfs", {},
                                         {{"root", TreePath("b")},
                                          {"samples", 2},
                                          {"interval", 200'000},
                                          {"collectors", {"processes", "network"}}}),
                       testing::TestNode("out", "capture", {"host"})},
                      registry, engine, options));
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(ValueOf(*got[0], "processes", R"({"state":"zombie"})"), 1);
    EXPECT_EQ(ValueOf(*got[1], "network_receive_bytes_per_second", R"({"device":"lo"})"), 0);
    EXPECT_EQ(run.Counter("host", "samples"), 2);
  }
}

}  // namespace
}  // namespace sluice
