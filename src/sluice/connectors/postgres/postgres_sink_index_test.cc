// The postgres sink's `indexes: [auto]` — a graph scale-up's tag columns — against the server of
// `scripts/services start`: with the table, after the load, counted once.

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/postgres/pg_test_util.h"
#include "sluice/connectors/postgres/postgres.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::IsOk;

class PostgresSinkIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = pg::TestDsn();
    ASSERT_FALSE(dsn_.empty());
    ASSERT_OK_AND_ASSIGN(admin_, pg::PgConnection::Connect(dsn_));
  }
  void TearDown() override {
    for (const auto& t : tables_) (void)admin_->Exec("DROP TABLE IF EXISTS " + t);
  }

  std::string NewName() {
    tables_.push_back(pg::UniqueTableName("idx"));
    return tables_.back();
  }

  Result<std::unique_ptr<Sink>> OpenSink(OptionJson options) {
    options["dsn"] = dsn_;
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakePostgresSink(NodeOptions::ForTest("out", options)));
    contexts_.push_back(std::make_unique<NodeContext>("out", "postgres", &stats_, &cancelled_,
                                                      /*dry_run=*/false));
    SLUICE_RETURN_NOT_OK(sink->Open(contexts_.back().get()));
    return sink;
  }

  /// The table's indexes but its primary key's, "name(columns)" in name order.
  std::string Indexes(const std::string& table) {
    return pg::QueryText(
        admin_.get(),
        "SELECT string_agg(c.relname || '(' || (SELECT string_agg(a.attname, ',' ORDER BY k.n) "
        "FROM unnest(i.indkey) WITH ORDINALITY k(attnum, n) JOIN pg_attribute a ON "
        "a.attrelid = i.indrelid AND a.attnum = k.attnum) || ')', ' ' ORDER BY c.relname) "
        "FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '" +
            table + "'::regclass AND NOT i.indisprimary");
  }

  int64_t Counter(const std::string& name) const {
    const auto counters = stats_.Counters();
    const auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }

  // A scale-up's copies: the template's columns and the four replicate adds.
  static BatchPtr Copies() {
    auto batch = BatchFromJson(MakeSchema({{"id", TypeId::kInt64},
                                           {"tenant_id", TypeId::kString},
                                           {"synthetic", TypeId::kBool},
                                           {"scale_operation_id", TypeId::kString},
                                           {"template_source_id", TypeId::kInt64},
                                           {"copy_number", TypeId::kInt64}}),
                               R"([[11, "t", true, "op", 1, 1], [12, "t", true, "op", 1, 2]])");
    EXPECT_TRUE(batch.ok()) << batch.status().ToString();
    return *batch;
  }

  std::string dsn_;
  std::unique_ptr<pg::PgConnection> admin_;
  std::vector<std::string> tables_;
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

TEST_F(PostgresSinkIndexTest, AutoWithTheTableIndexesTheTagColumnsOnce) {
  const std::string table = NewName();
  ASSERT_OK_AND_ASSIGN(
      auto sink,
      OpenSink({{"table", table}, {"create_table", true}, {"key", {"id"}}, {"indexes", {"auto"}}}));
  ASSERT_THAT(sink->Write(Copies(), AckSet()), IsOk());
  ASSERT_THAT(sink->Close(), IsOk());
  // One index per tag column but `synthetic`, which leads the two-column index.
  EXPECT_EQ(Indexes(table), fmt::format("{0}_scale_operation_id_idx(scale_operation_id) "
                                        "{0}_synthetic_scale_operation_id_idx(synthetic,"
                                        "scale_operation_id) "
                                        "{0}_template_source_id_idx(template_source_id) "
                                        "{0}_tenant_id_idx(tenant_id)",
                                        table));
  EXPECT_EQ(Counter("indexes_created"), 4);
  // A rerun (the table and its indexes there): none made, none counted.
  ASSERT_OK_AND_ASSIGN(auto again, OpenSink({{"table", table},
                                             {"mode", "upsert"},
                                             {"key", {"id"}},
                                             {"indexes", {"auto"}},
                                             {"index_after_load", true}}));
  ASSERT_THAT(again->Write(Copies(), AckSet()), IsOk());
  ASSERT_THAT(again->Close(), IsOk());
  EXPECT_EQ(Counter("indexes_created"), 4);
}

TEST_F(PostgresSinkIndexTest, AutoAfterTheLoadIndexesAnExistingTableByItsOwnColumns) {
  // No tenant_id: three indexes, made at Close.
  const std::string table = NewName();
  ASSERT_THAT(admin_->Exec("CREATE TABLE " + table +
                           " (id bigint PRIMARY KEY, synthetic bool, scale_operation_id text, "
                           "template_source_id bigint, copy_number bigint)"),
              IsOk());
  auto schema = MakeSchema({{"id", TypeId::kInt64},
                            {"synthetic", TypeId::kBool},
                            {"scale_operation_id", TypeId::kString},
                            {"template_source_id", TypeId::kInt64},
                            {"copy_number", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, R"([[1, true, "op", 7, 1]])"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table},
                                            {"indexes", {"auto", "copy_number, id"}},
                                            {"index_after_load", true}}));
  ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
  EXPECT_EQ(Indexes(table), "");
  ASSERT_THAT(sink->Close(), IsOk());
  EXPECT_EQ(Indexes(table), fmt::format("{0}_copy_number_id_idx(copy_number,id) "
                                        "{0}_scale_operation_id_idx(scale_operation_id) "
                                        "{0}_synthetic_scale_operation_id_idx(synthetic,"
                                        "scale_operation_id) "
                                        "{0}_template_source_id_idx(template_source_id)",
                                        table));
  EXPECT_EQ(Counter("indexes_created"), 4);
}

}  // namespace
}  // namespace sluice
