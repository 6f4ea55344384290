// The sqlite sink's mode: delete (graph scale_down on the embedded database) and its indexes
// (multicolumn, `auto` for a scale-up's tag columns, after the load).

#include <unistd.h>

#include <filesystem>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/sqlite/sqlite.h"
#include "sluice/connectors/sqlite/sqlite_test_util.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::sqlite_testing::ExecSql;
using ::sluice::sqlite_testing::QueryInt;
using ::sluice::sqlite_testing::QueryText;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;

class SqliteSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = std::filesystem::path(::testing::TempDir()) /
           fmt::format("sluice_sqlite_sink_{}_{}", info->name(), getpid());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "test.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<std::unique_ptr<Sink>> OpenSink(nlohmann::json options) {
    options["path"] = path_;
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakeSqliteSink(NodeOptions::ForTest("out", options)));
    contexts_.push_back(std::make_unique<NodeContext>("out", "sqlite", &stats_, &cancelled_,
                                                      /*dry_run=*/false));
    SLUICE_RETURN_NOT_OK(sink->Open(contexts_.back().get()));
    return sink;
  }

  Status MakeError(nlohmann::json options) {
    options["path"] = path_;
    return MakeSqliteSink(NodeOptions::ForTest("out", options)).status();
  }

  // Table t(id INTEGER PRIMARY KEY, name TEXT) with rows 1..n, name "r<id>".
  void MakeTable(int n) {
    ExecSql(path_, fmt::format("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);"
                               "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                               "WHERE x < {}) INSERT INTO t SELECT x, 'r' || x FROM c;",
                               n));
  }

  static BatchPtr Ids(const char* rows) {
    auto batch = BatchFromJson(MakeSchema({{"id", TypeId::kInt64}}), rows);
    EXPECT_TRUE(batch.ok()) << batch.status().ToString();
    return *batch;
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
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

TEST_F(SqliteSinkTest, DeleteRemovesExactlyTheRowsWhoseKeyIsInTheBatch) {
  MakeTable(10);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}, {"mode", "delete"}, {"key", "id"}}));
  auto queue = std::make_shared<AckQueue>();
  // 4 twice, 11 not in the table: two rows go.
  ASSERT_OK(
      sink->Write(Ids("[[2], [4], [4], [11]]"), AckSet(std::make_shared<AckHandle>(queue, 3))));
  EXPECT_EQ(QueryText(path_, "SELECT group_concat(id) FROM t"), "1,3,5,6,7,8,9,10\n");
  EXPECT_EQ(QueryText(path_, "SELECT name FROM t WHERE id = 5"), "r5\n");
  EXPECT_EQ(Counter("rows_deleted"), 2);
  EXPECT_GT(stats_.Phases()["delete"], 0);
  std::vector<AckQueue::Event> events;
  queue->Drain(&events, /*max_wait_ms=*/0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq, 3u);
  EXPECT_TRUE(events[0].delivered);
  ASSERT_OK(sink->Close());
}

TEST_F(SqliteSinkTest, DeletingRowsAlreadyGoneIsNoErrorAndCountsNothing) {
  MakeTable(5);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}, {"mode", "delete"}, {"key", "id"}}));
  ASSERT_OK(sink->Write(Ids("[[1], [2]]"), AckSet()));
  ASSERT_OK(sink->Write(Ids("[[1], [2]]"), AckSet()));  // a rerun
  EXPECT_EQ(Counter("rows_deleted"), 2);
  EXPECT_EQ(QueryText(path_, "SELECT group_concat(id) FROM t"), "3,4,5\n");
  ASSERT_OK(sink->Close());
}

TEST_F(SqliteSinkTest, DeleteCountsEachCommittedTransactionOfALargeBatch) {
  MakeTable(10);
  ASSERT_OK_AND_ASSIGN(
      auto sink, OpenSink({{"table", "t"}, {"mode", "delete"}, {"key", "id"}, {"batch_rows", 2}}));
  ASSERT_OK(sink->Write(Ids("[[9], [1], [5], [7], [3]]"), AckSet()));
  EXPECT_EQ(Counter("rows_deleted"), 5);
  EXPECT_EQ(QueryText(path_, "SELECT group_concat(id) FROM t"), "2,4,6,8,10\n");
}

TEST_F(SqliteSinkTest, DeleteMatchesEveryColumnOfACompositeKey) {
  ExecSql(path_,
          "CREATE TABLE t (tenant TEXT, id INTEGER, v TEXT, PRIMARY KEY (tenant, id));"
          "INSERT INTO t VALUES ('a', 1, 'x'), ('a', 2, 'y'), ('b', 1, 'z');");
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"},
                                            {"mode", "delete"},
                                            {"key", nlohmann::json::array({"tenant", "id"})}}));
  // Extra input columns are not part of the key and change nothing.
  auto schema =
      MakeSchema({{"v", TypeId::kString}, {"id", TypeId::kInt64}, {"tenant", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(schema, R"([["ignored", 1, "a"], ["ignored", 2, "b"]])"));
  ASSERT_OK(sink->Write(batch, AckSet()));
  EXPECT_EQ(QueryText(path_, "SELECT tenant, id, v FROM t ORDER BY tenant, id"), "a|2|y\nb|1|z\n");
  EXPECT_EQ(Counter("rows_deleted"), 1);
}

TEST_F(SqliteSinkTest, ANullKeyFailsTheBatchAndDeletesNoneOfIt) {
  MakeTable(5);
  ASSERT_OK_AND_ASSIGN(
      auto sink, OpenSink({{"table", "t"}, {"mode", "delete"}, {"key", "id"}, {"batch_rows", 1}}));
  EXPECT_THAT(sink->Write(Ids("[[1], [null], [3], [null]]"), AckSet()),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("node 'out'"), HasSubstr("2 of the batch's 4 rows"),
                             HasSubstr("NULL key (column 'id', first at row 1)"),
                             HasSubstr("nothing of the batch was deleted"))));
  EXPECT_EQ(QueryInt(path_, "SELECT count(*) FROM t"), 5);
  EXPECT_EQ(Counter("rows_deleted"), 0);
}

TEST_F(SqliteSinkTest, DeleteReportsAMissingTableOrKeyColumnAsAConfigError) {
  MakeTable(1);
  ASSERT_OK_AND_ASSIGN(auto gone,
                       OpenSink({{"table", "missing"}, {"mode", "delete"}, {"key", "id"}}));
  EXPECT_THAT(gone->Write(Ids("[[1]]"), AckSet()),
              StatusIs(StatusCode::kConfigError, HasSubstr("no such table: missing")));
  // The delete makes no table, whatever create_table's default.
  EXPECT_EQ(QueryInt(path_, "SELECT count(*) FROM sqlite_master WHERE name = 'missing'"), 0);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "t"}, {"mode", "delete"}, {"key", "uid"}}));
  EXPECT_THAT(sink->Write(Ids("[[1]]"), AckSet()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'key': 'uid' is not a column of the input")));
  EXPECT_EQ(QueryInt(path_, "SELECT count(*) FROM t"), 1);
}

TEST_F(SqliteSinkTest, DeleteOptionsAreChecked) {
  EXPECT_THAT(MakeError({{"table", "t"}, {"mode", "delete"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("option 'key'"), HasSubstr("delete needs 'key'"))));
  EXPECT_THAT(MakeError({{"table", "t"}, {"mode", "delete"}, {"key", "id"}, {"indexes", "id"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'indexes'")));
  EXPECT_THAT(MakeError({{"table", "t"}, {"key", "id"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("option 'key'"), HasSubstr("only mode delete uses it"))));
  EXPECT_THAT(MakeError({{"table", "t"}, {"mode", "truncate"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("insert, replace or delete")));
}

// A scale-up's copies: the template's columns and the four replicate adds.
BatchPtr Copies() {
  auto batch =
      BatchFromJson(MakeSchema({{"id", TypeId::kInt64},
                                {"tenant_id", TypeId::kString},
                                {"name", TypeId::kString},
                                {"synthetic", TypeId::kBool},
                                {"scale_operation_id", TypeId::kString},
                                {"template_source_id", TypeId::kInt64},
                                {"copy_number", TypeId::kInt64}}),
                    R"([[11, "t", "a", true, "op", 1, 1], [12, "t", "a", true, "op", 1, 2]])");
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *batch;
}

TEST_F(SqliteSinkTest, AutoIndexesTheTagColumnsTheTableHasOnce) {
  ASSERT_OK_AND_ASSIGN(auto sink,
                       OpenSink({{"table", "r"}, {"primary_key", "id"}, {"indexes", "auto"}}));
  ASSERT_OK(sink->Write(Copies(), AckSet()));
  ASSERT_OK(sink->Close());
  // One index per tag column but `synthetic`, which leads the two-column index.
  EXPECT_EQ(QueryText(path_,
                      "SELECT m.name, group_concat(i.name, ',') FROM sqlite_master m, "
                      "pragma_index_info(m.name) i WHERE m.type = 'index' AND m.tbl_name = 'r' "
                      "GROUP BY m.name ORDER BY m.name"),
            "r_scale_operation_id|scale_operation_id\n"
            "r_synthetic_scale_operation_id|synthetic,scale_operation_id\n"
            "r_template_source_id|template_source_id\n"
            "r_tenant_id|tenant_id\n");
  EXPECT_EQ(Counter("indexes_created"), 4);
  EXPECT_GT(stats_.Phases()["index"], 0);
  // A rerun finds them: none made, none counted.
  ASSERT_OK_AND_ASSIGN(auto again,
                       OpenSink({{"table", "r"}, {"mode", "replace"}, {"indexes", "auto"}}));
  ASSERT_OK(again->Write(Copies(), AckSet()));
  ASSERT_OK(again->Close());
  EXPECT_EQ(Counter("indexes_created"), 4);
  EXPECT_EQ(QueryInt(path_, "SELECT count(*) FROM r"), 2);
}

TEST_F(SqliteSinkTest, AutoSkipsTagColumnsTheTableLacks) {
  // No tenant_id, no synthetic: two indexes.
  auto schema = MakeSchema({{"id", TypeId::kInt64},
                            {"scale_operation_id", TypeId::kString},
                            {"template_source_id", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, R"([[1, "op", 7]])"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "r"}, {"indexes", "auto"}}));
  ASSERT_OK(sink->Write(batch, AckSet()));
  EXPECT_EQ(QueryText(path_,
                      "SELECT group_concat(name, ',') FROM (SELECT name FROM sqlite_master WHERE "
                      "type = 'index' ORDER BY name)"),
            "r_scale_operation_id,r_template_source_id\n");
  EXPECT_EQ(Counter("indexes_created"), 2);
}

TEST_F(SqliteSinkTest, AMulticolumnEntryMakesOneIndexOnItsColumnsInOrder) {
  ASSERT_OK_AND_ASSIGN(
      auto sink,
      OpenSink({{"table", "r"}, {"indexes", nlohmann::json::array({"copy_number , id", "name"})}}));
  ASSERT_OK(sink->Write(Copies(), AckSet()));
  EXPECT_EQ(
      QueryText(path_, "SELECT group_concat(name, ',') FROM pragma_index_info('r_copy_number_id')"),
      "copy_number,id\n");
  EXPECT_EQ(QueryInt(path_, "SELECT count(*) FROM sqlite_master WHERE name = 'r_name'"), 1);
  ASSERT_OK_AND_ASSIGN(auto bad, OpenSink({{"table", "r"}, {"indexes", "name, size"}}));
  EXPECT_THAT(bad->Write(Copies(), AckSet()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'indexes': table 'r' has no column 'size'")));
  EXPECT_THAT(MakeError({{"table", "r"}, {"indexes", "name,,id"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("option 'indexes'"), HasSubstr("an empty column name"))));
  EXPECT_THAT(MakeError({{"table", "r"}, {"index_after_load", true}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'index_after_load'")));
}

TEST_F(SqliteSinkTest, IndexAfterLoadIndexesAtCloseOfARunThatWasNotCancelled) {
  auto count_indexes = [&] {
    return QueryInt(path_, "SELECT count(*) FROM sqlite_master WHERE type = 'index'");
  };
  ASSERT_OK_AND_ASSIGN(auto sink,
                       OpenSink({{"table", "r"}, {"indexes", "auto"}, {"index_after_load", true}}));
  ASSERT_OK(sink->Write(Copies(), AckSet()));
  EXPECT_EQ(count_indexes(), 0);
  ASSERT_OK(sink->Close());
  EXPECT_EQ(count_indexes(), 4);
  EXPECT_EQ(Counter("indexes_created"), 4);

  // A cancelled (or failed) run loaded part of its rows: the rerun indexes.
  ExecSql(path_, "DROP TABLE r");
  ASSERT_OK_AND_ASSIGN(auto cut,
                       OpenSink({{"table", "r"}, {"indexes", "auto"}, {"index_after_load", true}}));
  ASSERT_OK(cut->Write(Copies(), AckSet()));
  cancelled_ = true;
  ASSERT_OK(cut->Close());
  EXPECT_EQ(count_indexes(), 0);
}

}  // namespace
}  // namespace sluice
