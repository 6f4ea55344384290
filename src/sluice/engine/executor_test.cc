#include "sluice/engine/executor.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/engine/executor_test_nodes.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"

namespace sluice {
namespace executor_test {
namespace {

using testing::TestNode;

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::StatusIs;

class ExecutorTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override { g_journal = &journal_; }
  void TearDown() override { g_journal = nullptr; }

  Status RunSpec(PipelineSpec spec, std::unique_ptr<Pipeline>* keep = nullptr) {
    spec.settings.engine = GetParam();
    auto registry = TestRegistry();
    auto p = Pipeline::Build(std::move(spec), registry);
    if (!p.ok()) return p.status();
    PipelineRun run(p->get(), RunOptions{});
    Status st = run.Execute();
    peak_budget_ = run.budget().peak();
    if (keep) *keep = std::move(*p);
    return st;
  }

  /// Check the event order: every commit is of a batch a sink held and then flushed before it.
  /// Returns the number of flushes that made held batches durable.
  int CheckCommitsFollowFlushes() {
    std::lock_guard l(journal_.mu);
    std::set<int64_t> held;     // held by the sink, not yet flushed
    std::set<int64_t> durable;  // flushed
    int flushes = 0;
    for (size_t i = 0; i < journal_.events.size(); ++i) {
      const Event& e = journal_.events[i];
      switch (e.kind) {
        case Event::Kind::kHold:
          held.insert(e.first_id);
          break;
        case Event::Kind::kFlush:
          if (!held.empty()) ++flushes;
          durable.insert(held.begin(), held.end());
          held.clear();
          break;
        case Event::Kind::kCommit:
          EXPECT_TRUE(durable.count(e.first_id))
              << "event " << i << ": the batch starting at id " << e.first_id
              << " was committed before the sink flushed it"
              << (held.count(e.first_id) ? " (it was still held)" : " (never held)");
          break;
      }
    }
    return flushes;
  }

  std::set<uint64_t> Seqs(size_t n) {
    std::set<uint64_t> s;
    for (uint64_t i = 0; i < n; ++i) s.insert(i);
    return s;
  }

  Journal journal_;
  int64_t peak_budget_ = 0;
};

TEST_P(ExecutorTest, LinearPipelineDeliversAndCommitsEverything) {
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 1000}, {"batch", 64}}),
                TestNode("plus", "add", {"src"}, {{"add", 1}}),
                TestNode("out", "record", {"plus"})};
  ASSERT_OK(RunSpec(spec));
  auto& rows = journal_.rows["out"];
  ASSERT_EQ(rows.size(), 1000u);
  for (int64_t i = 0; i < 1000; ++i) EXPECT_EQ(rows[static_cast<size_t>(i)], i + 1);
  EXPECT_EQ(journal_.committed["src"], Seqs(16));
  EXPECT_TRUE(journal_.abandoned["src"].empty());
}

TEST_P(ExecutorTest, DiamondFanOutFanIn) {
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 500}, {"batch", 50}}),
                TestNode("a", "add", {"src"}, {{"add", 1000}}),
                TestNode("b", "add", {"src"}, {{"add", 2000}}),
                TestNode("m", "merge", {"a", "b"}),
                TestNode("out", "record", {"m"}),
                TestNode("raw", "record", {"src"})};
  ASSERT_OK(RunSpec(spec));
  auto rows = journal_.rows["out"];
  std::sort(rows.begin(), rows.end());
  ASSERT_EQ(rows.size(), 1000u);
  EXPECT_EQ(rows.front(), 1000);
  EXPECT_EQ(rows.back(), 2499);
  EXPECT_EQ(journal_.rows["raw"].size(), 500u);
  EXPECT_EQ(journal_.committed["src"], Seqs(10));
}

TEST_P(ExecutorTest, FailingSinkCommitsOnlyWhatWasWrittenBeforeIt) {
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 1000}, {"batch", 10}}),
                TestNode("out", "record", {"src"}, {{"fail_at", 7}})};
  EXPECT_THAT(RunSpec(spec), StatusIs(StatusCode::kIOError, HasSubstr("node 'out'")));
  // Batches 0..6 were written and acked; batch 7 failed; nothing after it may be committed.
  EXPECT_EQ(journal_.committed["src"], Seqs(7));
  EXPECT_EQ(journal_.rows["out"].size(), 70u);
  for (uint64_t s : journal_.abandoned["src"]) EXPECT_GE(s, 7u);
  EXPECT_TRUE(journal_.abandoned["src"].count(7));
}

TEST_P(ExecutorTest, SinkThatHoldsAcksCommitsOnlyAfterFlush) {
  PipelineSpec spec;
  spec.settings.memory_limit = 4096;  // far less than the held batches: must not deadlock
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 2000}, {"batch", 100}}),
                TestNode("out", "record", {"src"}, {{"hold", true}})};
  ASSERT_OK(RunSpec(spec));
  EXPECT_EQ(journal_.rows["out"].size(), 2000u);
  EXPECT_EQ(journal_.committed["src"], Seqs(20));
  // Not only the totals: no batch was committed before the flush that made it durable.
  EXPECT_GE(CheckCommitsFollowFlushes(), 1);
}

TEST_P(ExecutorTest, InFlightLimitWithAckHoldingSinkDoesNotDeadlock) {
  // The sink releases acks only when flushed; the source may have 3 batches unacknowledged.
  // The engine must ask the sink to flush early instead of waiting forever.
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 500}, {"batch", 10}, {"max_in_flight", 3}}),
                TestNode("out", "record", {"src"}, {{"hold", true}})};
  ASSERT_OK(RunSpec(spec));
  EXPECT_EQ(journal_.rows["out"].size(), 500u);
  EXPECT_EQ(journal_.committed["src"], Seqs(50));
  // At most 3 batches in flight and 50 batches: the engine asked for early flushes.
  EXPECT_GE(CheckCommitsFollowFlushes(), 50 / 3);
}

TEST_P(ExecutorTest, MemoryBudgetBoundsBytesInFlight) {
  PipelineSpec spec;
  spec.settings.memory_limit = 3 * 800;  // three batches of 100 int64s
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 20000}, {"batch", 100}}),
                TestNode("plus", "add", {"src"}, {{"add", 1}}),
                TestNode("out", "record", {"plus"})};
  ASSERT_OK(RunSpec(spec));
  EXPECT_EQ(journal_.rows["out"].size(), 20000u);
  EXPECT_LE(peak_budget_, 3 * 800);
  EXPECT_GT(peak_budget_, 0);
}

TEST_P(ExecutorTest, MaxParallelNodesOneStillCompletes) {
  PipelineSpec spec;
  spec.settings.max_parallel_nodes = 1;
  NodeSpec plus = TestNode("plus", "add", {"src"}, {{"add", 1}});
  plus.parallelism = 3;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 3000}, {"batch", 10}}), plus,
                TestNode("a", "record", {"plus"}), TestNode("b", "record", {"src"})};
  ASSERT_OK(RunSpec(spec));
  EXPECT_EQ(journal_.rows["a"].size(), 3000u);
  EXPECT_EQ(journal_.rows["b"].size(), 3000u);
  EXPECT_EQ(journal_.committed["src"], Seqs(300));
}

TEST_P(ExecutorTest, OrderedParallelTransformKeepsOrder) {
  PipelineSpec spec;
  NodeSpec plus = TestNode("plus", "add", {"src"}, {{"add", 0}});
  plus.parallelism = 4;
  plus.ordered = true;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 5000}, {"batch", 7}}), plus,
                TestNode("out", "record", {"plus"})};
  ASSERT_OK(RunSpec(spec));
  auto& rows = journal_.rows["out"];
  ASSERT_EQ(rows.size(), 5000u);
  for (int64_t i = 0; i < 5000; ++i) ASSERT_EQ(rows[static_cast<size_t>(i)], i);
}

TEST_P(ExecutorTest, StopDrainsFlushesAndCommitsEverythingHandedOut) {
  // An endless source into a sink that holds every ack until it flushes: a graceful stop ends
  // the source, and every batch it handed out is written, flushed and committed — none is
  // abandoned (an interrupt, below, abandons them instead).
  PipelineSpec spec;
  spec.settings.engine = GetParam();
  spec.nodes = {TestNode("src", "count", {}, {{"rows", int64_t{1} << 40}, {"batch", 100}}),
                TestNode("plus", "add", {"src"}, {{"add", 0}}),
                TestNode("out", "record", {"plus"}, {{"hold", true}})};
  auto registry = TestRegistry();
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  PipelineRun run(p->get(), RunOptions{});
  std::thread stopper([&] {
    while (run.stats(0).batches_out.load() < 30 && !run.finished()) std::this_thread::yield();
    run.Stop("test");
  });
  ASSERT_OK(run.Execute());
  stopper.join();
  EXPECT_EQ(run.stop_reason(), "test");
  const auto handed_out = static_cast<size_t>(run.stats(0).batches_out.load());
  EXPECT_GE(handed_out, 30u);
  EXPECT_EQ(journal_.committed["src"], Seqs(handed_out));
  EXPECT_TRUE(journal_.abandoned["src"].empty());
  std::vector<int64_t> want(handed_out * 100);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int64_t>(i);
  std::vector<int64_t> got = journal_.rows["out"];
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
  EXPECT_GE(CheckCommitsFollowFlushes(), 1);
}

TEST_P(ExecutorTest, UntilIdleEndsARunWhoseSourceWentQuiet) {
  // The source delivers 10 batches, then only "nothing yet": the run ends on its own once no
  // row has come for the idle time, with every row written and every batch committed.
  PipelineSpec spec;
  spec.settings.engine = GetParam();
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 1000}, {"batch", 100}, {"quiet", true}}),
                TestNode("out", "record", {"src"}, {{"hold", true}})};
  auto registry = TestRegistry();
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  PipelineRun run(p->get(), RunOptions{.until_idle_us = 100'000});
  ASSERT_OK(run.Execute());
  EXPECT_EQ(run.stop_reason(), "until-idle");
  EXPECT_EQ(journal_.committed["src"], Seqs(10));
  EXPECT_EQ(journal_.rows["out"].size(), 1000u);
  std::vector<int64_t> want(1000);
  for (size_t i = 0; i < want.size(); ++i) want[i] = static_cast<int64_t>(i);
  EXPECT_EQ(journal_.rows["out"], want) << "every id once, in order";
  EXPECT_TRUE(journal_.abandoned["src"].empty());
}

TEST_P(ExecutorTest, ARunEndsWithItsPipelineWhateverTheWatchInterval) {
  // The watcher polls the stop flag once an hour here: the run must still end when its
  // source does, not when the watcher next looks (the test would hang).
  PipelineSpec spec;
  spec.settings.engine = GetParam();
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 300}, {"batch", 100}}),
                TestNode("out", "record", {"src"})};
  auto registry = TestRegistry();
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  std::atomic<bool> stop{false};
  PipelineRun run(p->get(), RunOptions{.stop = &stop, .watch_interval_us = 3'600'000'000});
  ASSERT_OK(run.Execute());
  EXPECT_EQ(run.stop_reason(), "");
  EXPECT_EQ(journal_.committed["src"], Seqs(3));
  EXPECT_EQ(journal_.rows["out"].size(), 300u);
}

/// One row, then "nothing yet" after waiting an hour for input that never comes.
class WaitingSource final : public Source {
 public:
  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<BatchPtr> Next(uint64_t) override {
    ColumnBuilder b(TypeId::kInt64);
    if (!sent_) {
      sent_ = true;
      b.AppendInt64(7);
      return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, 1);
    }
    ctx_->WaitUnlessStopping(3'600'000'000);
    return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, 0);
  }
  SchemaPtr schema() const override { return IdSchema(); }
  int64_t EstimatedRows() const override { return -1; }
  bool Unbounded() const override { return true; }

 private:
  NodeContext* ctx_ = nullptr;
  bool sent_ = false;
};

TEST_P(ExecutorTest, AStopWakesASourceWaitingForInput) {
  // The source waits an hour between inputs: the stop must end its wait (the test would
  // hang), and the row it sent is delivered.
  auto registry = TestRegistry();
  registry.AddSource("waiter", "test", {}, [](const NodeOptions&) {
    return Result<std::unique_ptr<Source>>(std::make_unique<WaitingSource>());
  });
  PipelineSpec spec;
  spec.settings.engine = GetParam();
  spec.nodes = {TestNode("src", "waiter", {}), TestNode("out", "record", {"src"})};
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  std::atomic<bool> stop{false};
  PipelineRun run(p->get(), RunOptions{.stop = &stop});
  std::thread stopper([&] {
    while (run.stats(0).batches_out.load() < 1 && !run.finished()) std::this_thread::yield();
    stop = true;
  });
  ASSERT_OK(run.Execute());
  stopper.join();
  EXPECT_EQ(run.stop_reason(), "signal");
  EXPECT_EQ(journal_.rows["out"], (std::vector<int64_t>{7}));
}

TEST_P(ExecutorTest, TimersFireByTheRunsClockWithoutInput) {
  // A source with nothing to say, a transform that emits a row every 100 ms of the run's clock
  // and a sink that ticks every 250 ms. The clock moves only when the test moves it: each step
  // of 50 ms is waited for until its ticks arrived, so the exact sequence is known.
  PipelineSpec spec;
  spec.settings.engine = GetParam();
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 0}, {"batch", 1}, {"quiet", true}}),
                TestNode("clock", "tick", {"src"}), TestNode("out", "tick_sink", {"clock"})};
  auto registry = TestRegistry();
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  FakeClock clock(1'000'000);
  PipelineRun run(p->get(), RunOptions{.clock = &clock});
  std::vector<int64_t> want_rows, want_ticks;
  std::thread driver([&] {
    auto count = [&](const std::string& key) {
      std::lock_guard l(journal_.mu);
      return journal_.rows[key].size();
    };
    // Both nodes set their timers at t = 1 s (in Open) before the clock moves.
    for (int i = 0; i < 2000 && count("opened") < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    for (int step = 1; step <= 12; ++step) {
      clock.Advance(50'000);
      const int64_t now = 1'000'000 + step * 50'000;
      if (step % 2 == 0) want_rows.push_back(now);
      if (step % 5 == 0) want_ticks.push_back(now);
      for (int i = 0; i < 2000 && !run.finished() &&
                      (count("out") < want_rows.size() || count("out.ticks") < want_ticks.size());
           ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    run.Stop("test");
  });
  ASSERT_OK(run.Execute());
  driver.join();
  EXPECT_EQ(journal_.rows["out"], want_rows);
  EXPECT_EQ(journal_.rows["out.ticks"], want_ticks);
}

TEST_P(ExecutorTest, KeyedInstancesEachOwnTheirKeysInOrder) {
  // A stateful transform on 4 instances, rows partitioned by id % 7: every key is seen by one
  // instance only, in the order the source produced it, and every row arrives once.
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 10000}, {"batch", 100}}),
                TestNode("own", "own", {"src"}, nlohmann::json::object(), 4, "id % 7"),
                TestNode("out", "record", {"own"})};
  ASSERT_OK(RunSpec(std::move(spec)));
  std::vector<int64_t> got = journal_.rows["out"];
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got.size(), 10000u);
  for (int64_t i = 0; i < 10000; ++i) ASSERT_EQ(got[static_cast<size_t>(i)], i);
  ASSERT_EQ(journal_.owners.size(), 7u);
  std::set<int> used;
  for (const auto& [key, instances] : journal_.owners) {
    EXPECT_EQ(instances.size(), 1u) << "key " << key << " went to several instances";
    used.insert(instances.begin(), instances.end());
    const auto& ids = journal_.key_order[key];
    EXPECT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "key " << key << " out of order";
    EXPECT_EQ(ids.size(), key < 10000 % 7 ? 1429u : 1428u);
  }
  if (GetParam() == EngineKind::kParallel) {
    EXPECT_GE(used.size(), 2u) << "every key on one instance";
  }
  EXPECT_EQ(journal_.committed["src"], Seqs(100));
}

TEST(PipelineBuildTest, AStatefulTransformRunsInParallelOnlyWithPartitionBy) {
  auto registry = TestRegistry();
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 10}, {"batch", 1}}),
                TestNode("own", "own", {"src"}, nlohmann::json::object(), 4),
                TestNode("out", "record", {"own"})};
  EXPECT_THAT(Pipeline::Build(std::move(spec), registry).status(),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("test.yaml:1:1"), HasSubstr("partition_by"))));
  PipelineSpec bad;
  bad.nodes = {TestNode("src", "count", {}, {{"rows", 10}, {"batch", 1}}),
               TestNode("own", "own", {"src"}, nlohmann::json::object(), 4, "id %"),
               TestNode("out", "record", {"own"})};
  EXPECT_THAT(Pipeline::Build(std::move(bad), registry).status(),
              StatusIs(StatusCode::kConfigError, HasSubstr("partition_by: expression 'id %'")));
}

TEST(ExecutorKeyedTest, AnUnknownKeyFieldFailsTheRunNamingTheNode) {
  Journal journal;
  g_journal = &journal;
  auto registry = TestRegistry();
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 100}, {"batch", 10}}),
                TestNode("own", "own", {"src"}, nlohmann::json::object(), 2, "meter_id"),
                TestNode("out", "record", {"own"})};
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  PipelineRun run(p->get(), RunOptions{});
  EXPECT_THAT(run.Execute(), StatusIs(StatusCode::kInvalidArgument,
                                      AllOf(HasSubstr("node 'own' (own): partition_by"),
                                            HasSubstr("unknown field 'meter_id'"))));
  g_journal = nullptr;
}

class WatermarkTest : public ExecutorTest {
 protected:
  /// Check that "check" saw rising watermarks reaching past `beyond` (and at most `last`), and
  /// no row behind one. (The very last ones may be folded into the end of the input.)
  void ExpectWatermarksHeld(int64_t last, int64_t beyond) {
    const auto& wm = journal_.rows["check.wm"];
    EXPECT_GE(wm.size(), 5u) << "too few watermarks to show anything";
    EXPECT_TRUE(std::is_sorted(wm.begin(), wm.end()));
    EXPECT_EQ(std::adjacent_find(wm.begin(), wm.end()), wm.end()) << "a watermark repeated";
    ASSERT_FALSE(wm.empty());
    EXPECT_LE(wm.back(), last);
    EXPECT_GT(wm.back(), beyond);
    EXPECT_TRUE(journal_.rows["check.late"].empty())
        << journal_.rows["check.late"].size() << " rows came after a watermark that passed them";
  }
};

TEST_P(WatermarkTest, AWatermarkNeverOvertakesRowsThroughUnorderedParallelInstances) {
  PipelineSpec spec;
  spec.nodes = {
      TestNode("src", "count", {}, {{"rows", 20000}, {"batch", 100}, {"watermarks", true}}),
      TestNode("plus", "add", {"src"}, {{"add", 0}}, 4), TestNode("check", "wmcheck", {"plus"}),
      TestNode("out", "record", {"check"})};
  spec.nodes[1].ordered = false;
  ASSERT_OK(RunSpec(std::move(spec)));
  ExpectWatermarksHeld(20000, 10000);
  EXPECT_EQ(journal_.rows["out"].size(), 20000u);
  std::vector<int64_t> got = journal_.rows["out"];
  std::sort(got.begin(), got.end());
  for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], static_cast<int64_t>(i));
}

TEST_P(WatermarkTest, KeyedInstancesPassOnTheSlowestInstancesWatermark) {
  PipelineSpec spec;
  spec.nodes = {
      TestNode("src", "count", {}, {{"rows", 20000}, {"batch", 100}, {"watermarks", true}}),
      TestNode("own", "own", {"src"}, nlohmann::json::object(), 4, "id % 7"),
      TestNode("check", "wmcheck", {"own"}), TestNode("out", "record", {"check"})};
  ASSERT_OK(RunSpec(std::move(spec)));
  ExpectWatermarksHeld(20000, 10000);
}

TEST_P(WatermarkTest, ANodesWatermarkIsTheSmallestOfItsInputs) {
  // Two sources at different batch sizes into one check: it may never pass a watermark the
  // slower input has not reached.
  PipelineSpec spec;
  spec.nodes = {
      TestNode("fast", "count", {}, {{"rows", 20000}, {"batch", 1000}, {"watermarks", true}}),
      TestNode("slow", "count", {}, {{"rows", 20000}, {"batch", 100}, {"watermarks", true}}),
      TestNode("check", "wmcheck", {"fast", "slow"}), TestNode("out", "record", {"check"})};
  ASSERT_OK(RunSpec(std::move(spec)));
  ExpectWatermarksHeld(20000, 10000);
  EXPECT_EQ(journal_.rows["out"].size(), 40000u);
  std::vector<int64_t> got = journal_.rows["out"];
  std::sort(got.begin(), got.end());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], static_cast<int64_t>(i / 2)) << "each id once from each source";
  }
}

TEST_P(WatermarkTest, AnInputThatEndedNoLongerHoldsBackTheWatermark) {
  // The short source ends at 1,000; the long one goes on to 20,000, and so does the watermark
  // (held at 1,000 if the ended input still counted).
  PipelineSpec spec;
  spec.nodes = {
      TestNode("short", "count", {}, {{"rows", 1000}, {"batch", 100}, {"watermarks", true}}),
      TestNode("long", "count", {}, {{"rows", 20000}, {"batch", 100}, {"watermarks", true}}),
      TestNode("check", "wmcheck", {"short", "long"}), TestNode("out", "record", {"check"})};
  ASSERT_OK(RunSpec(std::move(spec)));
  ExpectWatermarksHeld(20000, 10000);
}

TEST_P(WatermarkTest, SourcesWithoutWatermarksSendNone) {
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", 1000}, {"batch", 100}}),
                TestNode("check", "wmcheck", {"src"}), TestNode("out", "record", {"check"})};
  ASSERT_OK(RunSpec(std::move(spec)));
  EXPECT_TRUE(journal_.rows["check.wm"].empty());
}

INSTANTIATE_TEST_SUITE_P(Engines, WatermarkTest,
                         ::testing::Values(EngineKind::kParallel, EngineKind::kSequential),
                         [](const auto& info) {
                           return info.param == EngineKind::kParallel ? "Parallel" : "Sequential";
                         });

INSTANTIATE_TEST_SUITE_P(Engines, ExecutorTest,
                         ::testing::Values(EngineKind::kParallel, EngineKind::kSequential),
                         [](const auto& info) {
                           return info.param == EngineKind::kParallel ? "Parallel" : "Sequential";
                         });

TEST(PipelineBuildTest, ReportsGraphErrorsWithLocations) {
  auto registry = TestRegistry();
  auto build = [&](std::vector<NodeSpec> nodes) {
    PipelineSpec spec;
    spec.file = "test.yaml";
    spec.nodes = std::move(nodes);
    return Pipeline::Build(std::move(spec), registry).status();
  };
  EXPECT_THAT(build({TestNode("src", "count", {}), TestNode("out", "recrod", {"src"})}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("test.yaml:1:1: node 'out': unknown node type 'recrod' — did "
                                 "you mean 'record'?")));
  EXPECT_THAT(build({TestNode("source", "count", {}), TestNode("out", "record", {"sorce"})}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("unknown input 'sorce' — did you mean 'source'?")));
  EXPECT_THAT(build({TestNode("src", "count", {}), TestNode("a", "add", {"b"}),
                     TestNode("b", "merge", {"a", "src"}), TestNode("out", "record", {"b"})}),
              StatusIs(StatusCode::kConfigError, HasSubstr("cycle through nodes 'a', 'b'")));
  EXPECT_THAT(build({TestNode("src", "count", {}), TestNode("a", "add", {"src"}),
                     TestNode("out", "record", {"src"})}),
              StatusIs(StatusCode::kConfigError, HasSubstr("node 'a': its output is not used")));
  EXPECT_THAT(build({TestNode("src", "count", {}), TestNode("out", "record", {})}),
              StatusIs(StatusCode::kConfigError, HasSubstr("needs 1 input")));
  EXPECT_THAT(build({TestNode("src", "count", {}), TestNode("src", "record", {"src"})}),
              StatusIs(StatusCode::kConfigError, HasSubstr("duplicate node id")));
}

TEST(ExecutorInterruptTest, InterruptStopsTheRunAndAbandonsInFlightBatches) {
  Journal journal;
  g_journal = &journal;
  auto registry = TestRegistry();
  PipelineSpec spec;
  spec.nodes = {TestNode("src", "count", {}, {{"rows", int64_t{1} << 40}, {"batch", 100}}),
                TestNode("out", "record", {"src"}, {{"hold", true}})};
  auto p = Pipeline::Build(std::move(spec), registry);
  ASSERT_OK(p.status());
  std::atomic<bool> interrupt{false};
  PipelineRun run(p->get(), RunOptions{.dry_run = false, .interrupt = &interrupt});
  std::thread stopper([&] {
    while (run.stats(0).batches_out.load() < 50) std::this_thread::yield();
    interrupt = true;
  });
  EXPECT_THAT(run.Execute(), StatusIs(StatusCode::kCancelled, HasSubstr("interrupted")));
  stopper.join();
  // The sink held every ack (never flushed): nothing may be committed.
  EXPECT_TRUE(journal.committed["src"].empty());
  EXPECT_GE(journal.abandoned["src"].size(), 50u);
  g_journal = nullptr;
}

}  // namespace
}  // namespace executor_test
}  // namespace sluice
