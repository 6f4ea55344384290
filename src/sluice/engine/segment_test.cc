// Segments: chains of batch-local transforms the parallel executor runs fused on every worker.
#include "sluice/engine/segment.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "sluice/core/cpus.h"
#include "sluice/engine/executor_test_nodes.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"

namespace sluice {
namespace executor_test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::StatusIs;
using testing::TestNode;

/// Writes the `record` column of dead letters into the journal (ids as text).
class DeadLetterSink : public Sink {
 public:
  explicit DeadLetterSink(std::string id) : id_(std::move(id)) {}
  Status Write(const BatchPtr& batch, AckSet) override {
    std::lock_guard l(g_journal->mu);
    auto& v = g_journal->rows[id_];
    const int record = batch->schema()->FieldIndex("record");
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      v.push_back(std::stoll(std::string(batch->column(record).GetView(i))));
    }
    return Status::OK();
  }

 private:
  std::string id_;
};

NodeRegistry Registry() {
  NodeRegistry r = TestRegistry();
  r.AddSink("dead_letters", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new DeadLetterSink(o.id()));
  });
  return r;
}

std::vector<int64_t> Range(int64_t from, int64_t to) {
  std::vector<int64_t> v;
  for (int64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

class SegmentTest : public JournalTest {
 protected:
  SegmentTest() : JournalTest(Registry()) {}

  const PipelineNode& Node(const Pipeline& p, const std::string& id) {
    for (const auto& n : p.nodes()) {
      if (n.spec.id == id) return n;
    }
    ADD_FAILURE() << "no node " << id;
    return p.nodes().front();
  }
  std::vector<std::string> Members(const Pipeline& p, size_t segment) {
    std::vector<std::string> ids;
    for (int m : p.segments()[segment].members) {
      ids.push_back(p.nodes()[static_cast<size_t>(m)].spec.id);
    }
    return ids;
  }
  // src -> a -> {b, c} -> m -> out: a diamond of batch-local transforms.
  // With `head_queue` 1 the source finds the segment full often and runs batches itself.
  std::vector<NodeSpec> Diamond(int64_t rows, int64_t jitter_us, int64_t head_queue = 8) {
    std::vector<NodeSpec> nodes = {
        TestNode("src", "count", {}, {{"rows", rows}, {"batch", 50}}),
        TestNode("a", "local_add", {"src"}, {{"add", 0}, {"jitter_us", jitter_us}}),
        TestNode("b", "local_add", {"a"}, {{"add", 1'000'000}, {"jitter_us", jitter_us}}),
        TestNode("c", "local_add", {"a"}, {{"add", 2'000'000}}),
        TestNode("m", "local_add", {"b", "c"}, {{"jitter_us", jitter_us}}),
        TestNode("out", "record", {"m"}, {{"hold", false}})};
    nodes[1].queue_batches = head_queue;
    return nodes;
  }
};

TEST_F(SegmentTest, ADiamondOfBatchLocalTransformsIsOneSegmentWithAnInstancePerWorker) {
  ASSERT_OK_AND_ASSIGN(auto p, Build(Diamond(10, 0), 3));
  ASSERT_EQ(p->segments().size(), 1u);
  EXPECT_THAT(Members(*p, 0), ElementsAre("a", "b", "c", "m"));
  EXPECT_EQ(p->nodes()[static_cast<size_t>(p->segments()[0].head)].spec.id, "a");
  EXPECT_EQ(p->workers(), 3);
  // Fed by one source: the source's thread is one of the 3 (it may run batches itself).
  EXPECT_TRUE(p->segments()[0].source_runs);
  EXPECT_EQ(p->segments()[0].Threads(3), 2);
  for (const char* id : {"a", "b", "c", "m"}) {
    EXPECT_EQ(Node(*p, id).instances(), 3) << id;
    EXPECT_EQ(Node(*p, id).segment, 0) << id;
  }
  EXPECT_EQ(Node(*p, "src").segment, -1);
  EXPECT_EQ(Node(*p, "out").segment, -1);
  EXPECT_THAT(p->ToDot(), HasSubstr("(local_add) x3"));
}

TEST_F(SegmentTest, SegmentsEndWhereATransformIsNotBatchLocalOrTakesInputFromOutside) {
  ASSERT_OK_AND_ASSIGN(
      auto p, Build({TestNode("s1", "count", {}, {{"rows", 10}, {"batch", 5}}),
                     TestNode("s2", "count", {}, {{"rows", 10}, {"batch", 5}}),
                     TestNode("a", "local_add", {"s1"}),
                     TestNode("own", "own", {"a"}),            // stateful: in no segment
                     TestNode("b", "local_add", {"own"}),      // after it: a new segment
                     TestNode("c", "local_add", {"b", "s2"}),  // an input from outside: new
                     TestNode("d", "local_add", {"a", "c"}),   // inputs from two segments: new
                     TestNode("e", "local_add", {"d"}, nlohmann::json::object(), 2),  // declared
                     TestNode("out", "record", {"e"}), TestNode("out2", "record", {"own"})},
                    2));
  ASSERT_EQ(p->segments().size(), 4u);
  EXPECT_THAT(Members(*p, 0), ElementsAre("a"));
  EXPECT_THAT(Members(*p, 1), ElementsAre("b"));
  EXPECT_THAT(Members(*p, 2), ElementsAre("c"));
  EXPECT_THAT(Members(*p, 3), ElementsAre("d"));
  EXPECT_TRUE(p->segments()[0].source_runs);  // a: fed by s1 alone
  EXPECT_EQ(p->segments()[0].Threads(2), 1);
  for (size_t k = 1; k < 4; ++k) EXPECT_FALSE(p->segments()[k].source_runs) << k;
  EXPECT_EQ(p->segments()[1].Threads(2), 2);
  EXPECT_EQ(Node(*p, "a").instances(), 2);
  EXPECT_EQ(Node(*p, "c").instances(), 2);
  EXPECT_EQ(Node(*p, "own").segment, -1);
  EXPECT_EQ(Node(*p, "own").instances(), 1);
  // `parallelism: 2` keeps its own instances and threads.
  EXPECT_EQ(Node(*p, "e").segment, -1);
  EXPECT_EQ(Node(*p, "e").instances(), 2);
}

TEST_F(SegmentTest, WithOneWorkerTheSourceIsTheSegmentsOnlyWorker) {
  // One CPU: handing a batch to another thread buys nothing, so the segment starts none and
  // the source takes each batch through as it makes it (while the batch is in its cache).
  ASSERT_OK_AND_ASSIGN(auto p, Build(Diamond(10, 0), 1));
  ASSERT_EQ(p->segments().size(), 1u);
  EXPECT_TRUE(p->segments()[0].source_runs);
  EXPECT_EQ(p->segments()[0].Threads(1), 0);
  EXPECT_EQ(Node(*p, "m").instances(), 1);
}

TEST_F(SegmentTest, AHeadItsSourceFeedsAloneQueuesOneBatchPerWorkerUnlessGiven) {
  // The source runs a batch itself when it finds the head's queue full, so the queue needs
  // only a batch for each worker; a queue_batches given is kept, and other nodes have 8.
  ASSERT_OK_AND_ASSIGN(auto p, Build(Diamond(10, 0, /*head_queue=*/0), 3));
  EXPECT_EQ(Node(*p, "a").spec.queue_batches, 3);
  EXPECT_EQ(Node(*p, "out").spec.queue_batches, kDefaultQueueBatches);
  ASSERT_OK_AND_ASSIGN(p, Build(Diamond(10, 0, /*head_queue=*/5), 3));
  EXPECT_EQ(Node(*p, "a").spec.queue_batches, 5);
  // Not fed by a source alone: the default.
  std::vector<NodeSpec> two = Diamond(10, 0, /*head_queue=*/0);
  two.push_back(TestNode("src2", "count", {}, {{"rows", 10}}));
  two[1].inputs.push_back("src2");
  ASSERT_OK_AND_ASSIGN(p, Build(two, 3));
  EXPECT_FALSE(p->segments()[0].source_runs);
  EXPECT_EQ(Node(*p, "a").spec.queue_batches, kDefaultQueueBatches);
}

TEST_F(SegmentTest, TheSequentialExecutorHasNoSegments) {
  ASSERT_OK_AND_ASSIGN(auto p, Build(Diamond(10, 0), 3, EngineKind::kSequential));
  EXPECT_TRUE(p->segments().empty());
  EXPECT_EQ(Node(*p, "a").instances(), 1);
  EXPECT_EQ(Node(*p, "a").segment, -1);
}

TEST_F(SegmentTest, ByDefaultASegmentHasAWorkerPerCpuThisProcessMayUse) {
  ASSERT_OK_AND_ASSIGN(auto p, Build(Diamond(10, 0), 0));
  EXPECT_EQ(p->workers(), AvailableCpus());
  EXPECT_EQ(Node(*p, "b").instances(), AvailableCpus());
  // The source is one of the workers; on one CPU, the only one.
  EXPECT_TRUE(p->segments()[0].source_runs);
  EXPECT_EQ(p->segments()[0].Threads(p->workers()), AvailableCpus() - 1);
}

TEST_F(SegmentTest, WorkersGiveTheSequentialExecutorsRowsInItsOrder) {
  // Workers pause at random, so batches finish out of order; what leaves the segment must
  // still be in the order of its input, each batch's outputs as depth-first delivery makes them
  // (b's rows, then c's), which is exactly the sequential executor's output.
  ASSERT_OK(Run(Diamond(4000, 400), 1, EngineKind::kSequential));
  const std::vector<int64_t> sequential = journal_.rows["out"];
  ASSERT_EQ(sequential.size(), 8000u);
  for (auto [workers, head_queue] : {std::pair{1, 8}, {3, 8}, {4, 8}, {2, 1}}) {
    journal_.rows.clear();
    journal_.committed.clear();
    ASSERT_OK(Run(Diamond(4000, 400, head_queue), workers));
    EXPECT_EQ(journal_.rows["out"], sequential) << workers << " workers";
    if (head_queue == 1) {
      // The source ran some batches itself, numbered in line with those the workers took.
      EXPECT_GT(Stats("a").Counters()["batches_run_by_source"], 0);
    }
    if (workers == 1) {
      // One worker, the source's: the segment has no threads, and the source ran every batch.
      EXPECT_EQ(pipeline_->segments()[0].Threads(1), 0);
      EXPECT_EQ(Stats("a").Counters()["batches_run_by_source"], 80);
    }
    EXPECT_EQ(journal_.committed["src"], Seqs(80));
    EXPECT_TRUE(journal_.abandoned["src"].empty());
    // Each node counts its own rows, whichever worker ran it.
    EXPECT_EQ(Stats("a").rows_in.load(), 4000);
    EXPECT_EQ(Stats("m").rows_in.load(), 8000);
    EXPECT_EQ(Stats("m").rows_out.load(), 8000);
    EXPECT_EQ(Stats("m").batches_out.load(), 160);
  }
}

/// The same on 3 workers with the head's queue at 8 batches (the default) and at 1, where the
/// source finds it full most of the time and takes its batches through the segment itself; and
/// on 1 worker, where the segment has no threads and the source takes every batch through.
class SegmentQueueTest : public SegmentTest,
                         public ::testing::WithParamInterface<std::pair<int, int64_t>> {
 protected:
  int Workers() const { return GetParam().first; }
  int64_t HeadQueue() const { return GetParam().second; }
};

TEST_P(SegmentQueueTest, ARejectedRecordLeavesTheSegmentOnTheDeadLetterOutput) {
  // b rejects the multiples of 7 (of its input: a's output, ids + 0); they reach the
  // dead-letter sink, the other rows go on, and every source batch commits once both sinks
  // have its rows.
  std::vector<NodeSpec> nodes = {
      TestNode("src", "count", {}, {{"rows", 3000}, {"batch", 50}}),
      TestNode("a", "local_add", {"src"}, {{"jitter_us", 300}}),
      TestNode("b", "local_add", {"a"},
               {{"add", 1}, {"reject_mod", 7}, {"jitter_us", 300}, {"on_error", "dead_letter"}}),
      TestNode("out", "record", {"b"}, {{"hold", false}}),
      TestNode("rejected", "dead_letters", {"b.dead_letter"})};
  nodes[1].queue_batches = HeadQueue();
  ASSERT_OK(Run(nodes, Workers()));
  std::vector<int64_t> kept, rejected;
  for (int64_t id = 0; id < 3000; ++id) (id % 7 == 0 ? rejected : kept).push_back(id);
  for (auto& id : kept) id += 1;
  EXPECT_EQ(journal_.rows["out"], kept);
  EXPECT_EQ(journal_.rows["rejected"], rejected);
  EXPECT_EQ(Stats("b").Counters().at("dead_letter_records"), static_cast<int64_t>(rejected.size()));
  EXPECT_EQ(journal_.committed["src"], Seqs(60));
}

TEST_P(SegmentQueueTest, AFailingMemberFailsTheRunAndLosesNoRow) {
  // b fails on id 1234 (batch 24 of 50-row batches): the run fails naming it; the sink wrote
  // exactly the batches before it, in order (later batches finished by other workers are
  // dropped, not written out of turn), and every batch is committed or abandoned, none both.
  std::vector<NodeSpec> nodes = {
      TestNode("src", "count", {}, {{"rows", 5000}, {"batch", 50}}),
      TestNode("a", "local_add", {"src"}, {{"jitter_us", 300}}),
      TestNode("b", "local_add", {"a"}, {{"fail_at", 1234}, {"jitter_us", 300}}),
      TestNode("out", "record", {"b"}, {{"hold", false}})};
  nodes[1].queue_batches = HeadQueue();
  Status st = Run(nodes, Workers());
  EXPECT_THAT(st, StatusIs(StatusCode::kIOError, HasSubstr("node 'b' (local_add)")));
  EXPECT_THAT(st.message(), HasSubstr("id 1234 is cursed"));
  // What the sink wrote is whole batches from the start, in order, and none from the failed
  // batch on (those queued for it when the run failed are dropped: their sources abandon them).
  const std::vector<int64_t>& out = journal_.rows["out"];
  EXPECT_EQ(out, Range(0, static_cast<int64_t>(out.size())));
  EXPECT_LE(out.size(), 1200u);
  EXPECT_EQ(out.size() % 50, 0u);
  for (uint64_t seq : journal_.committed["src"]) {
    EXPECT_LT(seq * 50, out.size()) << "batch " << seq << " committed but not written";
    EXPECT_FALSE(journal_.abandoned["src"].count(seq)) << seq;
  }
  EXPECT_TRUE(journal_.abandoned["src"].count(24));
}

TEST_P(SegmentQueueTest, AWatermarkLeavesTheSegmentBehindTheRowsBeforeIt) {
  // The source's watermark is the next id: no row may reach the check after a watermark above
  // it, however the workers interleave.
  std::vector<NodeSpec> nodes = {
      TestNode("src", "count", {}, {{"rows", 4000}, {"batch", 40}, {"watermarks", true}}),
      TestNode("a", "local_add", {"src"}, {{"jitter_us", 300}}),
      TestNode("b", "local_add", {"a"}, {{"jitter_us", 300}}), TestNode("check", "wmcheck", {"b"}),
      TestNode("out", "record", {"check"})};
  nodes[1].queue_batches = HeadQueue();
  ASSERT_OK(Run(nodes, Workers()));
  EXPECT_TRUE(journal_.rows["check.late"].empty());
  const auto& wm = journal_.rows["check.wm"];
  ASSERT_GE(wm.size(), 10u);
  EXPECT_TRUE(std::adjacent_find(wm.begin(), wm.end(), std::greater_equal<>()) == wm.end())
      << "watermarks must rise";
  EXPECT_GE(wm.back(), 3960);  // the last batch's may be replaced by the end-of-input marker
  // b passed on at least what the check got (its last marker may meet the end of the input in
  // the check's queue and be folded into it).
  EXPECT_GE(Stats("b").watermark_us.load(), wm.back());
  EXPECT_EQ(journal_.rows["out"], Range(0, 4000));
}

INSTANTIATE_TEST_SUITE_P(WorkersAndHeadQueues, SegmentQueueTest,
                         ::testing::Values(std::pair{3, int64_t{8}}, std::pair{3, int64_t{1}},
                                           std::pair{1, int64_t{8}}));

TEST_F(SegmentTest, ANodeFeedingBothAMemberAndAnOutsideNodeKeepsTheSequentialOrder) {
  // a's rows go to b (inside) and straight to `out`, which also takes b's: the sequential
  // executor delivers in the order of a's outputs, and so must what leaves the segment.
  const auto nodes = [] {
    return std::vector<NodeSpec>{
        TestNode("src", "count", {}, {{"rows", 2000}, {"batch", 50}}),
        TestNode("a", "local_add", {"src"}, {{"jitter_us", 300}}),
        TestNode("b", "local_add", {"a"}, {{"add", 1'000'000}, {"jitter_us", 300}}),
        TestNode("out", "record", {"b", "a"}, {{"hold", false}})};
  };
  ASSERT_OK(Run(nodes(), 1, EngineKind::kSequential));
  const std::vector<int64_t> sequential = journal_.rows["out"];
  ASSERT_EQ(sequential.size(), 4000u);
  journal_.rows.clear();
  ASSERT_OK(Run(nodes(), 3));
  EXPECT_EQ(journal_.rows["out"], sequential);
}

TEST_F(SegmentTest, ABatchInItsTurnPassesOnWhatItEmitsAtOnce) {
  // a's rows go to `early` (outside) before b (inside) takes them, and b waits until `early`
  // has written them: a batch whose turn it is (always, with one worker) passes its outputs on
  // as they come, as the sequential executor does, instead of holding them to its end.
  const auto nodes = [] {
    return std::vector<NodeSpec>{
        TestNode("src", "count", {}, {{"rows", 300}, {"batch", 50}}),
        TestNode("a", "local_add", {"src"}), TestNode("early", "record", {"a"}, {{"hold", false}}),
        TestNode("b", "local_add", {"a"}, {{"add", 1'000'000}, {"await", "early"}}),
        TestNode("out", "record", {"b"}, {{"hold", false}})};
  };
  ASSERT_OK(Run(nodes(), 1, EngineKind::kSequential));
  const std::vector<int64_t> sequential = journal_.rows["out"];
  ASSERT_EQ(sequential.size(), 300u);
  journal_.rows.clear();
  ASSERT_OK(Run(nodes(), 1));
  EXPECT_EQ(journal_.rows["out"], sequential);
  EXPECT_EQ(journal_.rows["early"], Range(0, 300));
}

TEST_F(SegmentTest, ABatchFailingAfterSomeOfItsOutputsLeftIsNotCommitted) {
  // a's rows go to `early` (outside) before b, which fails on the batch holding id 1234: that
  // batch's rows may have reached `early` (its turn had come, as in the sequential executor), but
  // the batch is abandoned, not committed, and every committed batch is in both sinks whole.
  for (const int workers : {1, 3}) {
    journal_.rows.clear();
    journal_.committed.clear();
    journal_.abandoned.clear();
    const std::vector<NodeSpec> nodes = {
        TestNode("src", "count", {}, {{"rows", 5000}, {"batch", 50}}),
        TestNode("a", "local_add", {"src"}, {{"jitter_us", 200}}),
        TestNode("early", "record", {"a"}, {{"hold", false}}),
        TestNode("b", "local_add", {"a"}, {{"fail_at", 1234}, {"jitter_us", 200}}),
        TestNode("out", "record", {"b"}, {{"hold", false}})};
    EXPECT_THAT(Run(nodes, workers), StatusIs(StatusCode::kIOError, HasSubstr("cursed")));
    EXPECT_TRUE(journal_.abandoned["src"].count(24)) << workers;
    EXPECT_FALSE(journal_.committed["src"].count(24)) << workers;
    const std::set<int64_t> early(journal_.rows["early"].begin(), journal_.rows["early"].end());
    const std::set<int64_t> out(journal_.rows["out"].begin(), journal_.rows["out"].end());
    for (uint64_t seq : journal_.committed["src"]) {
      for (int64_t id = static_cast<int64_t>(seq) * 50; id < static_cast<int64_t>(seq + 1) * 50;
           ++id) {
        ASSERT_TRUE(early.count(id) && out.count(id))
            << "committed batch " << seq << " lacks " << id << " (workers " << workers << ")";
      }
    }
    EXPECT_FALSE(out.count(1234)) << workers;
  }
}

TEST_F(SegmentTest, TheSourceRunningBatchesStaysWithinTheDrainsBound) {
  // The one pool worker stalls on the first batch; the source, finding the queue full, runs
  // the next ones itself, and their outputs wait for the first to drain. It must stop at the
  // bound (4 x workers + the head's queue) rather than read the whole input into the drain.
  std::vector<NodeSpec> nodes = {
      TestNode("src", "count", {}, {{"rows", 10000}, {"batch", 50}}),
      TestNode("a", "local_add", {"src"}, {{"stall_at", 0}, {"stall_ms", 300}}),
      TestNode("out", "record", {"a"}, {{"hold", false}})};
  nodes[1].queue_batches = 1;
  nodes[2].queue_batches = 1;
  ASSERT_OK(Run(nodes, 2));
  EXPECT_EQ(journal_.rows["out"], Range(0, 10000));
  EXPECT_GT(Stats("a").Counters()["batches_run_by_source"], 0);
  // A batch of 50 int64 ids is 400 bytes: at most 4 x 2 + 1 parked, one in each queue and a
  // few in hand (without the bound: most of the 200).
  EXPECT_LE(run_->budget().peak(), 16 * 400)
      << "batches in flight: " << run_->budget().peak() / 400;
}

TEST_F(SegmentTest, AKeyedConsumerWhoseKeyFailsEndsTheRunWithoutHanging) {
  // The segment's drain splits batches for a keyed consumer; its partition_by failing cancels
  // the run from inside the drain (which holds the segment's lock), and every worker ends.
  std::vector<NodeSpec> nodes = {
      TestNode("src", "count", {}, {{"rows", 5000}, {"batch", 10}}),
      TestNode("a", "local_add", {"src"}, {{"jitter_us", 200}}),
      TestNode("own", "own", {"a"}, nlohmann::json::object(), 2, "meter_id"),
      TestNode("out", "record", {"own"})};
  EXPECT_THAT(Run(nodes, 3),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("node 'own' (own): partition_by")));
  EXPECT_TRUE(journal_.rows["out"].empty());
  EXPECT_TRUE(journal_.committed["src"].empty());
}

TEST_F(SegmentTest, AnInterruptCommitsOnlyWhatTheSinkWrote) {
  // Interrupted while workers and the source (1-batch head queue) are taking batches through
  // the segment — or, on one worker, the source alone — and batch 100 is in `b` (it stalls
  // there until the run is cancelled): every batch the source committed is in the sink, batch
  // 100 is abandoned, and none is both committed and abandoned.
  for (int workers : {3, 1}) {
    SCOPED_TRACE(::testing::Message() << workers << " workers");
    journal_.rows.clear();
    journal_.committed.clear();
    journal_.abandoned.clear();
    std::vector<NodeSpec> nodes = {
        TestNode("src", "count", {}, {{"rows", int64_t{1} << 40}, {"batch", 50}}),
        TestNode("a", "local_add", {"src"}, {{"jitter_us", 200}}),
        TestNode("b", "local_add", {"a"},
                 {{"jitter_us", 200}, {"stall_at", 5000}, {"stall_ms", 60'000}}),
        TestNode("out", "record", {"b"}, {{"hold", false}})};
    nodes[1].queue_batches = 1;
    PipelineSpec spec;
    spec.name = "test";
    spec.file = "test.yaml";
    spec.settings.workers = workers;
    spec.nodes = std::move(nodes);
    ASSERT_OK_AND_ASSIGN(auto p, Pipeline::Build(std::move(spec), registry_));
    std::atomic<bool> interrupt{false};
    PipelineRun run(p.get(), RunOptions{.dry_run = false, .interrupt = &interrupt});
    std::thread stopper([&] {
      // Batches 0-99 are in the sink; batch 100 cannot leave `b` before the interrupt.
      while (run.stats(3).rows_in.load() < 5000) std::this_thread::yield();
      interrupt = true;
    });
    EXPECT_THAT(run.Execute(), StatusIs(StatusCode::kCancelled, HasSubstr("interrupted")));
    stopper.join();
    const std::vector<int64_t>& out = journal_.rows["out"];
    ASSERT_GE(out.size(), 5000u);
    EXPECT_EQ(out, Range(0, static_cast<int64_t>(out.size())));
    ASSERT_FALSE(journal_.committed["src"].empty());
    for (uint64_t seq : journal_.committed["src"]) {
      EXPECT_LT(seq * 50 + 49, out.size()) << "batch " << seq << " committed but not written";
      EXPECT_FALSE(journal_.abandoned["src"].count(seq)) << seq;
    }
    EXPECT_TRUE(journal_.abandoned["src"].count(100)) << "the batch in flight at the interrupt";
    EXPECT_FALSE(journal_.committed["src"].count(100));
  }
}

TEST_F(SegmentTest, ASourceFeedingTwoSegmentsRunsBatchesInBoth) {
  // One source, two segments it alone feeds (as the geo workload's two buffer branches): its
  // thread is a worker of both, and drains both once it ends.
  std::vector<NodeSpec> nodes = {
      TestNode("src", "count", {}, {{"rows", 5000}, {"batch", 50}}),
      TestNode("a", "local_add", {"src"}, {{"jitter_us", 300}}),
      TestNode("b", "local_add", {"src"}, {{"add", 1'000'000}, {"jitter_us", 300}}),
      TestNode("out_a", "record", {"a"}, {{"hold", false}}),
      TestNode("out_b", "record", {"b"}, {{"hold", false}})};
  nodes[1].queue_batches = 1;
  nodes[2].queue_batches = 1;
  ASSERT_OK(Run(nodes, 2));
  ASSERT_EQ(pipeline_->segments().size(), 2u);
  EXPECT_TRUE(pipeline_->segments()[0].source_runs);
  EXPECT_TRUE(pipeline_->segments()[1].source_runs);
  EXPECT_EQ(journal_.rows["out_a"], Range(0, 5000));
  EXPECT_EQ(journal_.rows["out_b"], Range(1'000'000, 1'005'000));
  EXPECT_EQ(journal_.committed["src"], Seqs(100));
  EXPECT_GT(Stats("a").Counters()["batches_run_by_source"] +
                Stats("b").Counters()["batches_run_by_source"],
            0);
}

TEST_F(SegmentTest, OneNodeAtATimeStillCompletes) {
  // max_parallel_nodes: 1 admits one batch walk through a segment at a time (not one per
  // member, which would deadlock on the nested calls).
  ASSERT_OK(Run(Diamond(1000, 0), 3, EngineKind::kParallel, /*max_parallel_nodes=*/1));
  EXPECT_EQ(journal_.rows["out"].size(), 2000u);
  EXPECT_EQ(journal_.committed["src"], Seqs(20));
}

}  // namespace
}  // namespace executor_test
}  // namespace sluice
