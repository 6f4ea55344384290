// Dead-letter outputs: records a source or a transform rejects under `on_error: dead_letter`
// travel on `<id>.dead_letter` with the acks of the batch they came from.

#include "sluice/engine/dead_letter.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/engine/executor.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/pipelines.h"

namespace sluice {
namespace {

using testing::BuildTestPipeline;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using testing::StatusIs;
using testing::TestNode;

SchemaPtr IdSchema() { return MakeSchema({{"id", TypeId::kInt64}}); }

/// What the test nodes saw.
struct Seen {
  std::mutex mu;
  std::vector<int64_t> rows;                   // ids written by "rows" sinks
  std::vector<std::string> positions;          // dead letters: node/position
  std::map<std::string, std::string> records;  // position -> record
  std::set<uint64_t> committed, abandoned;     // source batches
};
Seen* g_seen = nullptr;

/// Emits ids 0..rows-1, `batch` per call; rejects every id with id % 10 == 3 (a dead letter
/// at position "id <n>"). Its last call rejects its ids and returns the end at once, so the
/// final dead letters arrive with no batch.
class RejectingSource : public Source {
 public:
  RejectingSource(int64_t rows, int64_t batch) : rows_(rows), batch_(batch) {}
  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<BatchPtr> Next(uint64_t) override {
    if (next_ >= rows_) return BatchPtr{};
    ColumnBuilder b(TypeId::kInt64);
    const int64_t end = std::min(rows_, next_ + batch_);
    int64_t kept = 0;
    for (; next_ < end; ++next_) {
      if (next_ % 10 == 3) {
        ctx_->DeadLetter(fmt::format("id {}", next_), "ends in 3",
                         fmt::format("{{\"id\":{}}}", next_));
      } else {
        b.AppendInt64(next_);
        ++kept;
      }
    }
    if (next_ >= rows_) return BatchPtr{};  // the last ids: dead letters and the end together
    return Batch::MakeUnchecked(IdSchema(), {b.Finish()}, kept);
  }
  Status Commit(uint64_t seq) override {
    std::lock_guard l(g_seen->mu);
    g_seen->committed.insert(seq);
    return Status::OK();
  }
  void Abandon(uint64_t seq) override {
    std::lock_guard l(g_seen->mu);
    g_seen->abandoned.insert(seq);
  }
  SchemaPtr schema() const override { return IdSchema(); }

 private:
  NodeContext* ctx_ = nullptr;
  int64_t rows_, batch_, next_ = 0;
};

/// Passes rows on, rejecting those with id % 10 == 7.
class RejectingTransform : public Transform {
 public:
  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }
  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& in) override { return in[0]; }
  Status Process(const BatchPtr& in, int, Emitter* out) override {
    std::vector<int32_t> keep;
    for (int64_t i = 0; i < in->num_rows(); ++i) {
      const int64_t id = in->column(0).GetInt64(i);
      if (id % 10 == 7) {
        ctx_->DeadLetter(fmt::format("id {}", id), "ends in 7", fmt::format("{{\"id\":{}}}", id));
      } else {
        keep.push_back(static_cast<int32_t>(i));
      }
    }
    return out->Emit(in->Take(keep));
  }

 private:
  NodeContext* ctx_ = nullptr;
};

/// Records ids (schema id) or dead letters (DeadLetterSchema); fails its batch `fail_at`.
class SeenSink : public Sink {
 public:
  explicit SeenSink(int64_t fail_at) : fail_at_(fail_at) {}
  Status Write(const BatchPtr& batch, AckSet) override {
    if (batches_++ == fail_at_) return Status::IOError("dead-letter table full (injected)");
    std::lock_guard l(g_seen->mu);
    if (batch->schema()->num_fields() == 1) {
      for (int64_t i = 0; i < batch->num_rows(); ++i) {
        g_seen->rows.push_back(batch->column(0).GetInt64(i));
      }
      return Status::OK();
    }
    EXPECT_EQ(*batch->schema(), *DeadLetterSchema());
    for (int64_t i = 0; i < batch->num_rows(); ++i) {
      const std::string key =
          fmt::format("{}/{}", batch->column(0).GetView(i), batch->column(1).GetView(i));
      g_seen->positions.push_back(key);
      g_seen->records[key] =
          fmt::format("{}: {}", batch->column(2).GetView(i), batch->column(3).GetView(i));
    }
    return Status::OK();
  }

 private:
  int64_t fail_at_;
  int64_t batches_ = 0;
};

NodeRegistry Registry() {
  NodeRegistry r;
  r.AddSource("rejecting", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Source>> {
    return std::unique_ptr<Source>(new RejectingSource(o.GetInt("rows"), o.GetInt("batch")));
  });
  r.AddTransform(
      "reject7", "test", {},
      [](const NodeOptions&) -> Result<std::unique_ptr<Transform>> {
        return std::unique_ptr<Transform>(new RejectingTransform());
      },
      /*stateless=*/true);
  r.AddSink("seen", "test", {}, [](const NodeOptions& o) -> Result<std::unique_ptr<Sink>> {
    return std::unique_ptr<Sink>(new SeenSink(o.Has("fail_at") ? o.GetInt("fail_at") : -1));
  });
  return r;
}

nlohmann::json DeadLetterOpts(nlohmann::json o = nlohmann::json::object()) {
  o["on_error"] = "dead_letter";
  return o;
}

class DeadLetterTest : public ::testing::TestWithParam<EngineKind> {
 protected:
  void SetUp() override { g_seen = &seen_; }
  void TearDown() override { g_seen = nullptr; }

  Status Run(std::vector<NodeSpec> nodes) {
    return run_.Run(std::move(nodes), registry_, GetParam());
  }
  int64_t Counter(const std::string& node, const std::string& name) const {
    return run_.Counter(node, name);
  }

  Seen seen_;
  NodeRegistry registry_ = Registry();  // outlives the pipeline, which points into it
  ::sluice::testing::TestRun run_;
};

TEST_P(DeadLetterTest, RejectedRecordsReachTheDeadLetterSinkAndTheRestGoOn) {
  // 1,000 ids in batches of 100: the source rejects x3, the transform (4 instances) x7.
  ASSERT_OK(
      Run({TestNode("src", "rejecting", {}, DeadLetterOpts({{"rows", 1000}, {"batch", 100}})),
           TestNode("t", "reject7", {"src"}, DeadLetterOpts(), 4), TestNode("rows", "seen", {"t"}),
           TestNode("dead", "seen", {"src.dead_letter", "t.dead_letter"})}));
  std::vector<int64_t> want_rows;
  std::vector<std::string> want_dead;
  for (int64_t id = 0; id < 900; ++id) {  // the last batch of ids ends with the source
    if (id % 10 == 3) {
      want_dead.push_back(fmt::format("src/id {}", id));
    } else if (id % 10 == 7) {
      want_dead.push_back(fmt::format("t/id {}", id));
    } else {
      want_rows.push_back(id);
    }
  }
  for (int64_t id = 903; id < 1000; id += 10) want_dead.push_back(fmt::format("src/id {}", id));
  // The transform's 4 instances keep input order (ordered: true): its rows, and its dead
  // letters among themselves, arrive in id order.
  EXPECT_TRUE(std::is_sorted(seen_.rows.begin(), seen_.rows.end()));
  std::vector<int64_t> t_dead;
  for (const auto& p : seen_.positions) {
    if (p.starts_with("t/id ")) t_dead.push_back(std::stoll(p.substr(5)));
  }
  EXPECT_EQ(t_dead.size(), 90u);
  EXPECT_TRUE(std::is_sorted(t_dead.begin(), t_dead.end()));
  std::sort(seen_.rows.begin(), seen_.rows.end());
  std::sort(seen_.positions.begin(), seen_.positions.end());
  std::sort(want_dead.begin(), want_dead.end());
  EXPECT_THAT(seen_.rows, ElementsAreArray(want_rows));
  EXPECT_THAT(seen_.positions, ElementsAreArray(want_dead));
  EXPECT_EQ(seen_.records["src/id 13"], "ends in 3: {\"id\":13}");
  EXPECT_EQ(seen_.records["t/id 17"], "ends in 7: {\"id\":17}");
  // Every source batch — the last one of dead letters only too — committed, none abandoned.
  EXPECT_EQ(seen_.committed.size(), 10u);
  EXPECT_TRUE(seen_.abandoned.empty());
  EXPECT_EQ(Counter("src", "dead_letter_records"), 100);
  EXPECT_EQ(Counter("t", "dead_letter_records"), 90);
}

TEST_P(DeadLetterTest, AFailingDeadLetterSinkKeepsTheSourceBatchesUncommitted) {
  // The dead-letter sink fails its first batch: the batch it came from must not be committed,
  // although its good rows were written (their source data would be lost otherwise).
  Status st =
      Run({TestNode("src", "rejecting", {}, DeadLetterOpts({{"rows", 1000}, {"batch", 100}})),
           TestNode("rows", "seen", {"src"}),
           TestNode("dead", "seen", {"src.dead_letter"}, {{"fail_at", 0}})});
  EXPECT_THAT(st, StatusIs(StatusCode::kIOError, HasSubstr("dead-letter table full")));
  EXPECT_EQ(seen_.committed.count(0), 0u);
  EXPECT_GE(seen_.abandoned.count(0), 1u);
}

INSTANTIATE_TEST_SUITE_P(BothExecutors, DeadLetterTest,
                         ::testing::Values(EngineKind::kParallel, EngineKind::kSequential));

// --- the graph: which configurations are refused -------------------------------------------

Status BuildOnly(std::vector<NodeSpec> nodes) {
  const NodeRegistry registry = Registry();
  return BuildTestPipeline(std::move(nodes), registry, EngineKind::kParallel).status();
}

TEST(DeadLetterGraph, RoutingWithoutAConsumerIsRefused) {
  EXPECT_THAT(
      BuildOnly({TestNode("src", "rejecting", {}, DeadLetterOpts({{"rows", 1}, {"batch", 1}})),
                 TestNode("rows", "seen", {"src"})}),
      StatusIs(StatusCode::kConfigError, HasSubstr("no node takes 'src.dead_letter' as input")));
}

TEST(DeadLetterGraph, ADeadLetterInputNeedsOnErrorDeadLetter) {
  EXPECT_THAT(
      BuildOnly({TestNode("src", "rejecting", {}, {{"rows", 1}, {"batch", 1}}),
                 TestNode("rows", "seen", {"src"}), TestNode("dead", "seen", {"src.dead_letter"})}),
      StatusIs(StatusCode::kConfigError, HasSubstr("only with `on_error: dead_letter`")));
}

TEST(DeadLetterGraph, AnUnknownOutputIsRefused) {
  EXPECT_THAT(
      BuildOnly({TestNode("src", "rejecting", {}, DeadLetterOpts({{"rows", 1}, {"batch", 1}})),
                 TestNode("rows", "seen", {"src"}), TestNode("dead", "seen", {"src.dead_lettr"})}),
      StatusIs(StatusCode::kConfigError, HasSubstr("node 'src' has no output 'dead_lettr'")));
}

TEST(DeadLetterGraph, OnlyDeadLettersUsedLeavesTheRowsUnused) {
  EXPECT_THAT(
      BuildOnly({TestNode("src", "rejecting", {}, DeadLetterOpts({{"rows", 1}, {"batch", 1}})),
                 TestNode("dead", "seen", {"src.dead_letter"})}),
      StatusIs(StatusCode::kConfigError, HasSubstr("its output is not used")));
}

TEST(DeadLetterGraph, RowsAndDeadLettersOfOneNodeMayFeedOneSink) {
  EXPECT_OK(
      BuildOnly({TestNode("src", "rejecting", {}, DeadLetterOpts({{"rows", 1}, {"batch", 1}})),
                 TestNode("both", "seen", {"src", "src.dead_letter"})}));
}

}  // namespace
}  // namespace sluice
