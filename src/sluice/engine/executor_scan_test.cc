// A source every worker of its segment reads (Source::ConcurrentNext), and a sink a segment
// writes itself (Sink::WritesInline).
#include <pthread.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

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

/// Batch `seq` holds ids seq * batch .. (seq + 1) * batch - 1 (the last one shorter): it depends
/// on `seq` alone, so any thread may make any batch.
class SeqSource : public Source {
 public:
  SeqSource(std::string id, int64_t rows, int64_t batch)
      : id_(std::move(id)), rows_(rows), batch_(batch) {}
  bool ConcurrentNext() const override { return true; }
  Result<BatchPtr> Next(uint64_t seq) override {
    const int64_t start = static_cast<int64_t>(seq) * batch_;
    if (start >= rows_) return BatchPtr{};
    const int64_t end = std::min(rows_, start + batch_);
    ColumnBuilder b(TypeId::kInt64);
    for (int64_t i = start; i < end; ++i) b.AppendInt64(i);
    return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, end - start);
  }
  Status Commit(uint64_t seq) override {
    std::lock_guard l(g_journal->mu);
    g_journal->committed[id_].insert(seq);
    return Status::OK();
  }
  void Abandon(uint64_t seq) override {
    std::lock_guard l(g_journal->mu);
    g_journal->abandoned[id_].insert(seq);
  }
  SchemaPtr schema() const override { return IdSchema(); }
  int64_t EstimatedRows() const override { return rows_; }

 private:
  std::string id_;
  int64_t rows_, batch_;
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
  r.AddSource("seq", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new SeqSource(o.id(), o.GetInt("rows"), o.GetInt("batch")));
  });
  r.AddSink("inline", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(
        new InlineSink(o.id(), o.Has("fail_at") ? o.GetInt("fail_at") : -1));
  });
  return r;
}

class ScanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_journal = &journal_;
    InlineSink::threads_.clear();
  }
  void TearDown() override { g_journal = nullptr; }

  Result<std::unique_ptr<Pipeline>> Build(std::vector<NodeSpec> nodes, int workers) {
    PipelineSpec spec;
    spec.name = "test";
    spec.file = "test.yaml";
    spec.settings.workers = workers;
    spec.nodes = std::move(nodes);
    return Pipeline::Build(std::move(spec), registry_);
  }
  Status Run(std::vector<NodeSpec> nodes, int workers, EngineKind engine) {
    PipelineSpec spec;
    spec.name = "test";
    spec.file = "test.yaml";
    spec.settings.engine = engine;
    spec.settings.workers = workers;
    spec.nodes = std::move(nodes);
    auto p = Pipeline::Build(std::move(spec), registry_);
    if (!p.ok()) return p.status();
    pipeline_ = std::move(*p);
    run_ = std::make_unique<PipelineRun>(pipeline_.get(), RunOptions{});
    return run_->Execute();
  }
  NodeStats& Stats(const std::string& id) {
    const auto& nodes = pipeline_->nodes();
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (nodes[i].spec.id == id) return run_->stats(i);
    }
    ADD_FAILURE() << "no node " << id;
    return run_->stats(0);
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

  std::set<uint64_t> Seqs(uint64_t n) {
    std::set<uint64_t> s;
    for (uint64_t i = 0; i < n; ++i) s.insert(i);
    return s;
  }

  Journal journal_;
  NodeRegistry registry_ = Registry();
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<PipelineRun> run_;
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
    ASSERT_OK(Run(Diamond("seq", "record", 6000), workers, EngineKind::kParallel));
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
