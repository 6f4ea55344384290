// The window transform inside real pipeline runs (both executors): watermarks from a source
// fire windows, keyed instances (partition_by) each own their meters, late rows reach the
// `<id>.late` input, and every source batch is committed once its windows' rows are written.

#include <map>
#include <mutex>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/engine/executor.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"
#include "sluice/transforms/transforms.h"

namespace sluice {
namespace {

using ::sluice::testing::BuildTestPipeline;
using ::sluice::testing::TestNode;
using ::testing::HasSubstr;

constexpr int64_t kMin = 60'000'000;
constexpr int kMeters = 10;
constexpr int kBatches = 30;  // one per minute: 6 windows of 5 minutes

struct Seen {
  std::mutex mu;
  std::map<std::string, std::vector<std::string>> rows;  // by sink id: "meter@start=count"
  std::vector<uint64_t> committed;
  std::vector<uint64_t> abandoned;
};
Seen* g_seen = nullptr;

SchemaPtr ReadingSchema() {
  return MakeSchema({{"meter", TypeId::kString}, {"ts", TypeId::kTimestamp}});
}

/// Minute b: one reading per meter at b minutes + meter seconds; batch 20 also carries a row
/// from minute 2, long after its window fired. Watermark: the start of the current minute.
class MinuteSource final : public Source {
 public:
  Result<BatchPtr> Next(uint64_t seq) override {
    if (batch_ == kBatches) return BatchPtr();
    ColumnBuilder m(TypeId::kString), t(TypeId::kTimestamp);
    for (int i = 0; i < kMeters; ++i) {
      m.AppendString(fmt::format("m{}", i));
      t.AppendTimestamp(batch_ * kMin + i * 1'000'000);
    }
    if (batch_ == 20) {
      m.AppendString("late");
      t.AppendTimestamp(2 * kMin);
    }
    watermark_ = batch_ * kMin;
    ++batch_;
    return Batch::MakeUnchecked(ReadingSchema(), {m.Finish(), t.Finish()}, m.length());
  }
  int64_t Watermark() const override { return watermark_; }
  Status Commit(uint64_t seq) override {
    std::lock_guard l(g_seen->mu);
    g_seen->committed.push_back(seq);
    return Status::OK();
  }
  void Abandon(uint64_t seq) override {
    std::lock_guard l(g_seen->mu);
    g_seen->abandoned.push_back(seq);
  }
  SchemaPtr schema() const override { return ReadingSchema(); }
  int MaxInFlight() const override { return max_in_flight_; }
  bool Unbounded() const override { return unbounded_; }
  bool HasWatermark() const override { return true; }
  int max_in_flight_ = 0;
  bool unbounded_ = false;

 private:
  int batch_ = 0;
  int64_t watermark_ = INT64_MIN;
};

class CollectSink final : public Sink {
 public:
  explicit CollectSink(std::string id) : id_(std::move(id)) {}
  Status Write(const BatchPtr& batch, AckSet) override {
    std::lock_guard l(g_seen->mu);
    for (int64_t r = 0; r < batch->num_rows(); ++r) {
      const int count_col = batch->schema()->FieldIndex("n");
      g_seen->rows[id_].push_back(count_col < 0
                                      ? fmt::format("{}@{}", batch->column(0).GetView(r),
                                                    batch->column(1).GetInt64(r) / kMin)
                                      : fmt::format("{}@{}={}", batch->column(0).GetView(r),
                                                    batch->column(1).GetInt64(r) / kMin,
                                                    batch->column(count_col).GetInt64(r)));
    }
    return Status::OK();
  }

 private:
  std::string id_;
};

NodeRegistry Registry() {
  NodeRegistry r;
  RegisterTransformNodes(&r);
  r.AddSource("minutes", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new MinuteSource());
  });
  r.AddSource("leased", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    auto s = std::make_unique<MinuteSource>();
    s->max_in_flight_ = 4;  // like postgres_archive's transactions
    return std::unique_ptr<Source>(std::move(s));
  });
  r.AddSource("stream", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    // Endless and without a watermark: a window behind it would never fire.
    class NoTime final : public Source {
     public:
      Result<BatchPtr> Next(uint64_t) override { return BatchPtr(); }
      bool Unbounded() const override { return true; }
      SchemaPtr schema() const override { return ReadingSchema(); }
    };
    return std::unique_ptr<Source>(new NoTime());
  });
  r.AddSink("collect", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new CollectSink(o.id()));
  });
  return r;
}

nlohmann::json WindowOptions(nlohmann::json extra = nlohmann::json::object()) {
  nlohmann::json o = {
      {"time", "ts"}, {"group_by", {"meter"}}, {"size", "5m"}, {"aggregates", {{"n", "count()"}}}};
  o.update(extra);
  return o;
}

class WindowPipelineTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override { g_seen = &seen_; }
  void TearDown() override { g_seen = nullptr; }

  Status Run(std::vector<NodeSpec> nodes) {
    return run_.Run(std::move(nodes), registry_, GetParam());
  }

  Seen seen_;
  NodeRegistry registry_ = Registry();  // outlives the pipeline, which points into it
  ::sluice::testing::TestRun run_;
};

TEST_P(WindowPipelineTest, KeyedInstancesFireOnWatermarksAndRouteLateRows) {
  const int parallelism = GetParam() == EngineKind::kSequential ? 1 : 2;
  ASSERT_OK(Run({TestNode("src", "minutes", {}),
                 TestNode("win", "window", {"src"}, WindowOptions({{"late", "output"}}),
                          parallelism, parallelism > 1 ? "meter" : ""),
                 TestNode("out", "collect", {"win"}), TestNode("late", "collect", {"win.late"})}));
  std::vector<std::string> want;
  for (int w = 0; w < 6; ++w) {
    for (int i = 0; i < kMeters; ++i) want.push_back(fmt::format("m{}@{}=5", i, w * 5));
  }
  auto got = seen_.rows["out"];
  std::sort(got.begin(), got.end());
  std::sort(want.begin(), want.end());
  EXPECT_EQ(got, want);
  EXPECT_EQ(seen_.rows["late"], std::vector<std::string>{"late@2"});
  // Every batch committed once its windows were written; none abandoned.
  std::sort(seen_.committed.begin(), seen_.committed.end());
  ASSERT_EQ(seen_.committed.size(), static_cast<size_t>(kBatches));
  for (uint64_t s = 0; s < kBatches; ++s) EXPECT_EQ(seen_.committed[s], s);
  EXPECT_TRUE(seen_.abandoned.empty());
}

INSTANTIATE_TEST_SUITE_P(BothEngines, WindowPipelineTest,
                         ::testing::Values(EngineKind::kParallel, EngineKind::kSequential),
                         [](const auto& info) {
                           return info.param == EngineKind::kParallel ? "Parallel" : "Sequential";
                         });

TEST(WindowPipelineBuildTest, LateOutputMustBeWiredAndAskedFor) {
  const NodeRegistry registry = Registry();
  auto build = [&](nlohmann::json window, std::vector<std::string> late_inputs) {
    std::vector<NodeSpec> nodes = {TestNode("src", "minutes", {}),
                                   TestNode("win", "window", {"src"}, std::move(window)),
                                   TestNode("out", "collect", {"win"})};
    if (!late_inputs.empty()) nodes.push_back(TestNode("late", "collect", late_inputs));
    return BuildTestPipeline(std::move(nodes), registry, EngineKind::kParallel).status();
  };
  EXPECT_THAT(build(WindowOptions({{"late", "output"}}), {}).ToString(),
              HasSubstr("no node takes 'win.late' as input"));
  EXPECT_THAT(build(WindowOptions(), {"win.late"}).ToString(),
              HasSubstr("only with `late: output`"));
  EXPECT_THAT(build(WindowOptions(), {"win.lates"}).ToString(), HasSubstr("has no output 'lates'"));
  EXPECT_TRUE(build(WindowOptions({{"late", "output"}}), {"win.late"}).ok());
}

TEST(WindowPipelineBuildTest, RefusesASourceThatStopsAtMaxInFlight) {
  const NodeRegistry registry = Registry();
  // The window would hold the acks of every batch of its open windows; the source would stop
  // after 4 of them waiting for acks: refused before anything runs.
  auto st =
      BuildTestPipeline(
          {TestNode("src", "leased", {}), TestNode("f", "filter", {"src"}, {{"where", "true"}}),
           TestNode("win", "window", {"f"}, WindowOptions()), TestNode("out", "collect", {"win"})},
          registry, EngineKind::kParallel)
          .status();
  EXPECT_THAT(st.ToString(), HasSubstr("source 'src' hands out at most 4 batches"));
}

TEST(WindowPipelineBuildTest, RefusesAStreamWithoutAWatermark) {
  const NodeRegistry registry = Registry();
  auto st = BuildTestPipeline(
                {TestNode("src", "stream", {}), TestNode("win", "window", {"src"}, WindowOptions()),
                 TestNode("out", "collect", {"win"})},
                registry, EngineKind::kParallel)
                .status();
  EXPECT_THAT(st.ToString(), HasSubstr("never ends and sets no watermark"));
}

}  // namespace
}  // namespace sluice
