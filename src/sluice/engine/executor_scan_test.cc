// A source every worker of its segment reads (Source::ConcurrentNext), and a sink a segment
// writes itself (Sink::WritesInline).
#include <pthread.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>

#include "sluice/engine/executor_test_nodes.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"

namespace sluice {
namespace executor_test {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;
using testing::TestNode;

/// Set by a SeqSource made with `overlap` when, inside Next(0), another thread began a later
/// batch: only a source read by several threads at once can see that.
std::atomic<bool> g_overlapped{false};

/// Batch `seq` holds ids seq * batch .. (seq + 1) * batch - 1 (the last one shorter): it depends
/// on `seq` alone, so any thread may make any batch. With `overlap`, Next(0) waits (10 s at
/// most) for another thread to begin a later batch, and notes in g_overlapped whether one did.
class SeqSource : public JournalingSource {
 public:
  SeqSource(std::string id, int64_t rows, int64_t batch, bool overlap)
      : JournalingSource(std::move(id), rows), batch_(batch), overlap_(overlap) {}
  bool ConcurrentNext() const override { return true; }
  Result<BatchPtr> Next(uint64_t seq) override {
    if (overlap_) {
      std::unique_lock l(mu_);
      if (seq == 0) {
        g_overlapped = cv_.wait_for(l, std::chrono::seconds(10), [&] { return later_begun_; });
      } else {
        later_begun_ = true;
        cv_.notify_all();
      }
    }
    const int64_t start = static_cast<int64_t>(seq) * batch_;
    if (start >= rows_) return BatchPtr{};
    return IdBatch(start, std::min(rows_, start + batch_));
  }

 private:
  int64_t batch_;
  bool overlap_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool later_begun_ = false;  // guarded by mu_
};

std::string ThreadName() {
  char name[32] = {};
  pthread_getname_np(pthread_self(), name, sizeof(name));
  return name;
}

/// Records ids and the threads that wrote them; may fail on its `fail_at`th batch (0-based).
class InlineSink : public Sink {
 public:
  InlineSink(std::string id, int64_t fail_at) : id_(std::move(id)), fail_at_(fail_at) {}
  bool WritesInline() const override { return true; }
  Status Write(const BatchPtr& batch, AckSet) override {
    std::lock_guard l(g_journal->mu);
    threads_.insert(ThreadName());
    if (batches_++ == fail_at_) return Status::IOError("disk full (injected)");
    auto& v = g_journal->rows[id_];
    for (int64_t i = 0; i < batch->num_rows(); ++i) v.push_back(batch->column(0).GetInt64(i));
    return Status::OK();
  }
  static std::set<std::string> threads_;  // guarded by g_journal->mu

 private:
  std::string id_;
  int64_t fail_at_;
  int64_t batches_ = 0;
};
std::set<std::string> InlineSink::threads_;

NodeRegistry Registry() {
  NodeRegistry r = TestRegistry();
  for (bool overlap : {false, true}) {
    r.AddSource(overlap ? "seq_overlap" : "seq", "test", {},
                [overlap](const NodeOptions& o) -> Result<std::unique_ptr<Source>> {
                  return std::unique_ptr<Source>(
                      new SeqSource(o.id(), o.GetInt("rows"), o.GetInt("batch"), overlap));
                });
  }
  r.AddSink("inline", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(
        new InlineSink(o.id(), o.Has("fail_at") ? o.GetInt("fail_at") : -1));
  });
  return r;
}

class ScanTest : public JournalTest {
 protected:
  ScanTest() : JournalTest(Registry()) {}
  void SetUp() override {
    JournalTest::SetUp();
    InlineSink::threads_.clear();
  }

  // src -> a -> {b, c} -> m -> out, the transforms pausing at random so that batches finish
  // out of order.
  static std::vector<NodeSpec> Diamond(const std::string& source, const std::string& sink,
                                       int64_t rows, int64_t fail_at = -1) {
    std::vector<NodeSpec> nodes = {
        TestNode("src", source, {}, {{"rows", rows}, {"batch", 50}}),
        TestNode("a", "local_add", {"src"}, {{"add", 0}, {"jitter_us", 300}}),
        TestNode("b", "local_add", {"a"}, {{"add", 1'000'000}, {"jitter_us", 300}}),
        TestNode("c", "local_add", {"a"}, {{"add", 2'000'000}}),
        TestNode("m", "local_add", {"b", "c"}, {{"jitter_us", 300}})};
    nodes.push_back(sink == "inline" ? TestNode("out", "inline", {"m"}, {{"fail_at", fail_at}})
                                     : TestNode("out", "record", {"m"}, {{"hold", false}}));
    return nodes;
  }
};

TEST_F(ScanTest, ASourceReadByEveryWorkerOnlyWhereItFeedsOneSegmentOnSeveralWorkers) {
  ASSERT_OK_AND_ASSIGN(auto p, Build(Diamond("seq", "record", 100), 2));
  EXPECT_TRUE(p->segments()[0].source_reads);
  ASSERT_OK_AND_ASSIGN(p, Build(Diamond("seq", "record", 100), 1));
  EXPECT_FALSE(p->segments()[0].source_reads);  // one worker: the source's thread alone
  ASSERT_OK_AND_ASSIGN(p, Build(Diamond("count", "record", 100), 2));
  EXPECT_FALSE(p->segments()[0].source_reads);  // not ConcurrentNext
  // A source that also feeds a node outside the segment is read by its own thread.
  auto nodes = Diamond("seq", "record", 100);
  nodes.push_back(TestNode("tap", "record", {"src"}, {{"hold", false}}));
  ASSERT_OK_AND_ASSIGN(p, Build(std::move(nodes), 2));
  EXPECT_FALSE(p->segments()[0].source_reads);
}

TEST_F(ScanTest, EveryWorkerReadingGivesTheSequentialExecutorsRowsInItsOrder) {
  ASSERT_OK(Run(Diamond("seq", "record", 6000), 1, EngineKind::kSequential));
  const std::vector<int64_t> sequential = journal_.rows["out"];
  ASSERT_EQ(sequential.size(), 12000u);
  for (int workers : {2, 3}) {
    journal_.rows.clear();
    journal_.committed.clear();
    g_overlapped = false;
    ASSERT_OK(Run(Diamond("seq_overlap", "record", 6000), workers, EngineKind::kParallel));
    // Batch 0 was still being read when another thread began a later one.
    EXPECT_TRUE(g_overlapped) << workers << " workers";
    EXPECT_EQ(journal_.rows["out"], sequential) << workers << " workers";
    EXPECT_EQ(journal_.committed["src"], Seqs(120)) << workers << " workers";
    EXPECT_TRUE(journal_.abandoned["src"].empty());
    EXPECT_EQ(Stats("src").rows_out.load(), 6000);
    EXPECT_EQ(Stats("out").rows_in.load(), 12000);
  }
}

TEST_F(ScanTest, AnInlineSinkIsWrittenInOrderOnTheSegmentsThreadsAndCounted) {
  ASSERT_OK(Run(Diamond("count", "record", 4000), 1, EngineKind::kSequential));
  const std::vector<int64_t> sequential = journal_.rows["out"];
  ASSERT_EQ(sequential.size(), 8000u);
  for (const char* source : {"count", "seq"}) {
    journal_.rows.clear();
    InlineSink::threads_.clear();
    ASSERT_OK(Run(Diamond(source, "inline", 4000), 2, EngineKind::kParallel));
    EXPECT_EQ(journal_.rows["out"], sequential) << source;
    // Written by the segment's workers (the source's thread among them), never on the sink's
    // own thread, which is named after the sink.
    EXPECT_FALSE(InlineSink::threads_.empty());
    EXPECT_EQ(InlineSink::threads_.count("out"), 0u) << source;
    EXPECT_EQ(Stats("out").rows_in.load(), 8000) << source;
    EXPECT_EQ(Stats("out").batches_in.load(), 160) << source;
  }
}

TEST_F(ScanTest, AFailedInlineWriteFailsTheRunAndItsBatchIsNotCommitted) {
  // The sink's 5th batch (batch 2 of the source: two outputs a batch) fails.
  for (const char* source : {"count", "seq"}) {
    journal_.rows.clear();
    journal_.committed.clear();
    journal_.abandoned.clear();
    const Status st = Run(Diamond(source, "inline", 4000, /*fail_at=*/4), 2, EngineKind::kParallel);
    EXPECT_THAT(st, StatusIs(StatusCode::kIOError, HasSubstr("disk full (injected)"))) << source;
    EXPECT_EQ(journal_.committed["src"].count(2), 0u) << source;
    // Whatever was committed was written in full: both outputs of each committed batch.
    const std::vector<int64_t>& written = journal_.rows["out"];
    const std::set<int64_t> rows(written.begin(), written.end());
    for (uint64_t seq : journal_.committed["src"]) {
      for (int64_t id = static_cast<int64_t>(seq) * 50; id < static_cast<int64_t>(seq + 1) * 50;
           ++id) {
        EXPECT_EQ(rows.count(id + 1'000'000), 1u) << source << " batch " << seq;
        EXPECT_EQ(rows.count(id + 2'000'000), 1u) << source << " batch " << seq;
      }
    }
  }
}

}  // namespace
}  // namespace executor_test
}  // namespace sluice
