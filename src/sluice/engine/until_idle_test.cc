// Ending a stream run: --until-idle ends it once its sources keep finding nothing — not while a
// source is slow to produce what it has; after a stop, a source hands out what it read ahead.

#include <atomic>
#include <chrono>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/engine/executor.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"

namespace sluice {
namespace {

SchemaPtr IdSchema() { return MakeSchema({{"id", TypeId::kInt64}}); }

std::vector<int64_t>* g_written = nullptr;

/// Each call takes `call_ms` and returns the next 10 ids, `batches` times; then "nothing yet"
/// (an empty batch after 2 ms) forever, as a drained stream does.
class SlowSource : public Source {
 public:
  SlowSource(int64_t batches, int64_t call_ms) : batches_(batches), call_ms_(call_ms) {}
  Result<BatchPtr> Next(uint64_t) override {
    ColumnBuilder b(TypeId::kInt64);
    if (done_ >= batches_) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
      return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, 0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(call_ms_));
    for (int64_t i = 0; i < 10; ++i) b.AppendInt64(done_ * 10 + i);
    ++done_;
    return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, 10);
  }
  SchemaPtr schema() const override { return IdSchema(); }
  bool Unbounded() const override { return true; }

 private:
  int64_t batches_, call_ms_, done_ = 0;
};

class WriteSink : public Sink {
 public:
  Status Write(const BatchPtr& batch, AckSet) override {
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      g_written->push_back(batch->column(0).GetInt64(i));
    }
    return Status::OK();
  }
};

/// Run `source` (a registered source type) into a WriteSink with `options`; return the run's
/// status and, in `stop_reason`, why it stopped.
Status RunIntoWriter(NodeRegistry registry, EngineKind engine, RunOptions options,
                     std::string* stop_reason) {
  registry.AddSink("write", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new WriteSink());
  });
  auto p = testing::BuildTestPipeline(
      {testing::TestNode("src", "source", {}), testing::TestNode("out", "write", {"src"})},
      registry, engine);
  if (!p.ok()) return p.status();
  PipelineRun run(p->get(), options);
  Status st = run.Execute();
  *stop_reason = run.stop_reason();
  return st;
}

class UntilIdleTest : public ::testing::TestWithParam<EngineKind> {};

TEST_P(UntilIdleTest, AStreamThatOnlyWaitsIsNotBusy) {
  // Every call answers "nothing yet" after a wait: none of that is the source's work, so the
  // summary must not show it busy (nor name it the bottleneck).
  std::vector<int64_t> written;
  g_written = &written;
  NodeRegistry registry;
  registry.AddSource("source", "test", {},
                     [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
                       return std::unique_ptr<Source>(new SlowSource(0, 0));
                     });
  registry.AddSink("write", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new WriteSink());
  });
  testing::TestRun test;
  ASSERT_OK(
      test.Run({testing::TestNode("src", "source", {}), testing::TestNode("out", "write", {"src"})},
               registry, GetParam(), RunOptions{.until_idle_us = 30'000}));
  EXPECT_EQ(test.run().stop_reason(), "until-idle");
  EXPECT_EQ(test.run().stats(0).busy_ns.load(), 0);
  EXPECT_TRUE(written.empty());
  g_written = nullptr;
}

TEST_P(UntilIdleTest, ASourceSlowerThanTheIdleTimeIsNotIdle) {
  // Every call of the source takes 3x the idle time yet returns rows: the run must read all 5
  // batches before it ends (it used to end after the first, counting from the last rows).
  std::vector<int64_t> written;
  g_written = &written;
  NodeRegistry r;
  r.AddSource("source", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new SlowSource(5, 150));
  });
  std::string stop_reason;
  ASSERT_OK(
      RunIntoWriter(std::move(r), GetParam(), RunOptions{.until_idle_us = 50'000}, &stop_reason));
  EXPECT_EQ(stop_reason, "until-idle");
  std::vector<int64_t> want(50);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int64_t>(i);
  EXPECT_EQ(written, want);
  g_written = nullptr;
}

/// Reads ahead like a stream consumer: each call hands out the 10 ids read by the call before
/// and reads the next 10 — unless the run is stopping. It asks for the stop itself after 3
/// batches. `read` is every id it took from its "stream".
class ReadAheadSource : public Source {
 public:
  ReadAheadSource(std::atomic<bool>* stop, std::vector<int64_t>* read) : stop_(stop), read_(read) {}
  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<BatchPtr> Next(uint64_t) override {
    if (ahead_.empty() && !ctx_->stopping()) ReadTen();  // the first call
    ColumnBuilder b(TypeId::kInt64);
    for (int64_t id : ahead_) b.AppendInt64(id);
    const auto n = static_cast<int64_t>(ahead_.size());
    ahead_.clear();
    if (!ctx_->stopping()) ReadTen();
    if (++calls_ == 3) stop_->store(true);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, n);
  }
  bool Buffered() const override { return !ahead_.empty(); }
  SchemaPtr schema() const override { return IdSchema(); }
  bool Unbounded() const override { return true; }

 private:
  void ReadTen() {
    for (int64_t i = 0; i < 10; ++i) ahead_.push_back(next_++);
    read_->insert(read_->end(), ahead_.end() - 10, ahead_.end());
  }
  std::atomic<bool>* stop_;
  std::vector<int64_t>* read_;
  NodeContext* ctx_ = nullptr;
  std::vector<int64_t> ahead_;
  int64_t next_ = 0;
  int calls_ = 0;
};

TEST_P(UntilIdleTest, AfterAStopASourceHandsOutWhatItReadAhead) {
  std::vector<int64_t> written, read;
  g_written = &written;
  std::atomic<bool> stop{false};
  NodeRegistry r;
  r.AddSource("source", "test", {}, [&](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new ReadAheadSource(&stop, &read));
  });
  std::string stop_reason;
  ASSERT_OK(RunIntoWriter(std::move(r), GetParam(), RunOptions{.stop = &stop}, &stop_reason));
  EXPECT_EQ(stop_reason, "signal");
  ASSERT_GE(read.size(), 30u);
  EXPECT_EQ(written, read) << "every id read, the ones read ahead too, written once in order";
  g_written = nullptr;
}

TEST(UnboundedSources, TheSequentialEngineRefusesAStreamBesideAnotherSource) {
  // It runs sources one after another: the second would never start.
  NodeRegistry r;
  r.AddSource("stream", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new SlowSource(1, 1));
  });
  r.AddSink("write", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new WriteSink());
  });
  const auto nodes = [] {
    return std::vector<NodeSpec>{testing::TestNode("a", "stream", {}),
                                 testing::TestNode("b", "stream", {}),
                                 testing::TestNode("out", "write", {"a", "b"})};
  };
  EXPECT_THAT(testing::BuildTestPipeline(nodes(), r, EngineKind::kSequential).status(),
              testing::StatusIs(StatusCode::kConfigError,
                                ::testing::AllOf(::testing::HasSubstr("node 'a'"),
                                                 ::testing::HasSubstr("never ends by itself"),
                                                 ::testing::HasSubstr("parallel"))));
  EXPECT_OK(testing::BuildTestPipeline(nodes(), r, EngineKind::kParallel).status());
  // Alone, a stream is fine for the sequential engine.
  EXPECT_OK(testing::BuildTestPipeline(
                {testing::TestNode("a", "stream", {}), testing::TestNode("out", "write", {"a"})}, r,
                EngineKind::kSequential)
                .status());
}

INSTANTIATE_TEST_SUITE_P(BothExecutors, UntilIdleTest,
                         ::testing::Values(EngineKind::kParallel, EngineKind::kSequential));

}  // namespace
}  // namespace sluice
