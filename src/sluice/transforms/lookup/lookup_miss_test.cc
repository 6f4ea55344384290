// The lookup transform's rows without a reference row (on_miss) and with a null key
// (null_key), against a SQLite reference: the check graph scale-up makes of a relationship's
// endpoints against the template's resource ids.

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/engine/registry.h"
#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/lookup/lookup.h"

namespace sluice::lookup {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using J = nlohmann::json;

class LookupMissTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           fmt::format("sluice_lookup_miss_{}_{}", info->name(), getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "template.db").string();
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db,
                           "CREATE TABLE resources (id INTEGER PRIMARY KEY, name TEXT);"
                           "INSERT INTO resources VALUES (1, 'a'), (2, 'b'), (3, 'c');",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  /// A lookup of relationships' `column` among the resources' ids, with `extra` options; the
  /// node id is the test's own, so that no two tests share a cache.
  Result<std::unique_ptr<Transform>> Make(const std::string& column, J extra) {
    static const NodeRegistry* registry = [] {
      auto* r = new NodeRegistry();
      RegisterLookupNode(r);
      return r;
    }();
    J o = {{"key", J::array({column})},
           {"from", {{"sqlite", path_}, {"query", "SELECT id FROM resources"}, {"key", "id"}}},
           {"cache", {{"ttl", 60'000'000}, {"negative_ttl", 60'000'000}, {"max_bytes", 1 << 20}}}};
    o.update(extra);
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    const std::string id = fmt::format("{}_{}", info->name(), column);
    SLUICE_ASSIGN_OR_RETURN(
        auto t, registry->Find("lookup")->make_transform(NodeOptions::ForTest(id, o, "lookup")));
    ctx_ = std::make_unique<NodeContext>(id, "lookup", &stats_, &cancelled_, /*dry_run=*/false);
    SLUICE_RETURN_NOT_OK(t->Open(ctx_.get()));
    return t;
  }

  // Relationships (id, source_id, target_id): 10 and 13 point at resources that do not exist,
  // 12 has no target.
  static BatchPtr Relationships() {
    auto batch = BatchFromJson(
        MakeSchema(
            {{"id", TypeId::kInt64}, {"source_id", TypeId::kInt64}, {"target_id", TypeId::kInt64}}),
        "[[10, 1, 99], [11, 2, 3], [12, 3, null], [13, 98, 1]]");
    EXPECT_TRUE(batch.ok()) << batch.status().ToString();
    return *batch;
  }

  static std::string Ids(const testing::CollectingEmitter& out) {
    std::string ids;
    for (const BatchPtr& b : out.rows) {
      for (int64_t r = 0; r < b->num_rows(); ++r)
        ids += fmt::format("{} ", b->column(0).GetInt64(r));
    }
    return ids;
  }

  int64_t Counter(const std::string& name) const {
    const auto counters = stats_.Counters();
    const auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }

  std::filesystem::path dir_;
  std::string path_;
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  std::unique_ptr<NodeContext> ctx_;
};

TEST_F(LookupMissTest, DeadLetterRoutesEachMissWithItsRowAndReason) {
  ASSERT_OK_AND_ASSIGN(auto t, Make("target_id", {{"on_miss", "dead_letter"}}));
  testing::CollectingEmitter out;
  ASSERT_OK(t->Process(Relationships(), 0, &out));
  // A null key is a miss too, unless null_key: pass.
  EXPECT_EQ(Ids(out), "11 13 ");
  BatchPtr dead = ctx_->dead_letters()->Take();
  ASSERT_NE(dead, nullptr);
  ASSERT_EQ(dead->num_rows(), 2);
  EXPECT_EQ(dead->column(0).GetView(0), ctx_->id());
  EXPECT_EQ(dead->column(1).GetView(0), "row 0");
  EXPECT_EQ(dead->column(2).GetView(0), "no reference row for target_id = 99");
  EXPECT_EQ(dead->column(3).GetView(0), R"({"id":10,"source_id":1,"target_id":99})");
  EXPECT_EQ(dead->column(1).GetView(1), "row 2");
  EXPECT_EQ(dead->column(2).GetView(1), "its key is null");
  EXPECT_EQ(dead->column(3).GetView(1), R"({"id":12,"source_id":3,"target_id":null})");
  EXPECT_EQ(Counter("not_found"), 2);
  // Positions count rows over the node's input: the next batch's rows follow.
  ASSERT_OK(t->Process(Relationships(), 0, &out));
  dead = ctx_->dead_letters()->Take();
  ASSERT_NE(dead, nullptr);
  EXPECT_EQ(dead->column(1).GetView(0), "row 4");
  ASSERT_OK(t->Close());
}

TEST_F(LookupMissTest, NullKeyPassLetsARowWithoutAKeyThroughUncountedAsAMiss) {
  ASSERT_OK_AND_ASSIGN(auto t,
                       Make("target_id", {{"on_miss", "dead_letter"}, {"null_key", "pass"}}));
  testing::CollectingEmitter out;
  ASSERT_OK(t->Process(Relationships(), 0, &out));
  EXPECT_EQ(Ids(out), "11 12 13 ");
  BatchPtr dead = ctx_->dead_letters()->Take();
  ASSERT_NE(dead, nullptr);
  EXPECT_EQ(dead->num_rows(), 1);
  EXPECT_EQ(dead->column(2).GetView(0), "no reference row for target_id = 99");
  EXPECT_EQ(Counter("not_found"), 1);
  EXPECT_EQ(Counter("null_keys"), 1);
  // The output's schema is the input's: the reference adds no column.
  EXPECT_EQ(*out.rows[0]->schema(), *Relationships()->schema());
  ASSERT_OK(t->Close());
}

TEST_F(LookupMissTest, SkipDropsAndCountsTheMisses) {
  ASSERT_OK_AND_ASSIGN(auto t, Make("source_id", {{"on_miss", "skip"}}));
  testing::CollectingEmitter out;
  ASSERT_OK(t->Process(Relationships(), 0, &out));
  EXPECT_EQ(Ids(out), "10 11 12 ");
  EXPECT_EQ(ctx_->dead_letters()->Take(), nullptr);
  EXPECT_EQ(Counter("rows_skipped"), 1);
  EXPECT_EQ(Counter("not_found"), 1);
  ASSERT_OK(t->Close());
}

TEST_F(LookupMissTest, FailNamesTheRowAndTheMissingKey) {
  ASSERT_OK_AND_ASSIGN(auto t, Make("source_id", {{"on_miss", "fail"}}));
  testing::CollectingEmitter out;
  EXPECT_THAT(t->Process(Relationships(), 0, &out),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("row 3: no reference row for source_id = 98"),
                             HasSubstr("on_miss: fail"))));
  EXPECT_TRUE(out.rows.empty());
  ASSERT_OK(t->Close());
}

}  // namespace
}  // namespace sluice::lookup
