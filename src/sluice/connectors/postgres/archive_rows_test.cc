#include "sluice/connectors/postgres/archive_rows.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::pg_archive {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::StatusIs;

TEST(ArchiveRowsTest, TextArrayLiteralRoundTripsNullsQuotesAndBackslashes) {
  const std::vector<std::optional<std::string>> keys = {
      "1", std::nullopt, "NULL", R"(a"b)", R"(c\d)", "", "x,y", "{}", "ünï"};
  const std::string literal = TextArrayLiteral(keys);
  EXPECT_EQ(literal, R"({"1",NULL,"NULL","a\"b","c\\d","","x,y","{}","ünï"})");
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseArrayLiteral(literal));
  EXPECT_EQ(parsed, keys);  // the string "NULL" stays distinct from SQL NULL
}

TEST(ArchiveRowsTest, ParsesPlainArraysOfOlderStateRecords) {
  ASSERT_OK_AND_ASSIGN(auto parsed, ParseArrayLiteral("{1,22,NULL,333}"));
  EXPECT_THAT(parsed, ElementsAre("1", "22", std::nullopt, "333"));
  ASSERT_OK_AND_ASSIGN(auto empty, ParseArrayLiteral("{}"));
  EXPECT_TRUE(empty.empty());
  EXPECT_THAT(ParseArrayLiteral("1,2"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("array")));
  EXPECT_THAT(ParseArrayLiteral(R"x({"open})x"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unterminated")));
}

TEST(ArchiveRowsTest, TidArrayQuotesEachCtid) {
  EXPECT_EQ(TidArrayLiteral({"(0,1)", "(12,7)"}), R"x({"(0,1)","(12,7)"})x");
  EXPECT_EQ(TidArrayLiteral({}), "{}");
}

TEST(ArchiveRowsTest, BatchIdIsTheFirstRowsTimestampCtidAndRun) {
  RowsRead rows;
  rows.first_ts = "2025-01-01 10:30:00.123456+00";
  rows.ctids = {"(412,7)", "(412,8)"};
  EXPECT_EQ(BatchId(rows, "a1b2c3"), "2025010110300012345600-412.7-a1b2c3");
}

Intent RecordOf(const std::vector<std::string>& ctids,
                const std::vector<std::optional<std::string>>& keys) {
  Intent intent;
  intent.ctids = TidArrayLiteral(ctids);
  intent.keys = TextArrayLiteral(keys);
  intent.rows = static_cast<int64_t>(ctids.size());
  return intent;
}

RowsRead Rows(std::vector<std::string> ctids, std::vector<std::optional<std::string>> keys) {
  RowsRead rows;
  auto schema = MakeSchema({{"n", TypeId::kInt64}});
  std::string json = "[";
  for (size_t i = 0; i < ctids.size(); ++i) json += (i ? ",[" : "[") + std::to_string(i) + "]";
  rows.batch = BatchFromJson(schema, json + "]").ValueOrDie();
  rows.ctids = std::move(ctids);
  rows.keys = std::move(keys);
  return rows;
}

TEST(ArchiveRowsTest, RecoveryKeepsOnlyRowsWhoseRecordedKeyIsStillAtTheirCtid) {
  // (0,2) now holds another row (its slot was reused): it is left out, NULL keys match NULL.
  const Intent intent = RecordOf({"(0,1)", "(0,2)", "(0,3)"}, {"7", "8", std::nullopt});
  RowsRead rows = Rows({"(0,1)", "(0,2)", "(0,3)"}, {"7", "99", std::nullopt});
  bool identical = true;
  ASSERT_OK_AND_ASSIGN(int64_t kept, KeepRecordedRows(intent, &rows, &identical));
  EXPECT_EQ(kept, 2);
  EXPECT_FALSE(identical);  // it goes out under a new id
  EXPECT_THAT(rows.ctids, ElementsAre("(0,1)", "(0,3)"));
  EXPECT_EQ(rows.batch->ToString(), "[[0],[2]]");
}

TEST(ArchiveRowsTest, RecoveryOfAnOlderRecordKeepsWhatTheKeysSelected) {
  Intent intent;
  intent.keys = "{7,8}";
  intent.rows = 2;
  RowsRead rows = Rows({"(0,1)", "(0,2)"}, {"7", "8"});
  bool identical = false;
  ASSERT_OK_AND_ASSIGN(int64_t kept, KeepRecordedRows(intent, &rows, &identical));
  EXPECT_EQ(kept, 2);
  EXPECT_TRUE(identical);
}

TEST(ArchiveRowsTest, AnUnreadableRecordIsAnErrorNotAnEmptyBatch) {
  // Taking it for "no rows left" would forget the record and archive its rows again.
  Intent intent = RecordOf({"(0,1)", "(0,2)"}, {"7", "8"});
  intent.keys = "{\"7\"";  // truncated
  RowsRead rows = Rows({"(0,1)", "(0,2)"}, {"7", "8"});
  bool identical = false;
  EXPECT_THAT(KeepRecordedRows(intent, &rows, &identical),
              StatusIs(StatusCode::kDataLoss, HasSubstr("cannot be read")));
}

TEST(ArchiveRowsTest, AllRowsRecordedIdenticallyGoOutUnderTheirId) {
  const Intent intent = RecordOf({"(0,1)", "(0,2)"}, {"7", std::nullopt});
  RowsRead rows = Rows({"(0,1)", "(0,2)"}, {"7", std::nullopt});
  bool identical = false;
  ASSERT_OK_AND_ASSIGN(int64_t kept, KeepRecordedRows(intent, &rows, &identical));
  EXPECT_EQ(kept, 2);
  EXPECT_TRUE(identical);
}

TEST(ArchiveRowsTest, CtidDigestDependsOnEveryCtidAndTheirOrder) {
  const uint64_t a = CtidDigest({(1ull << 16) | 1, (1ull << 16) | 2});
  EXPECT_EQ(a, CtidDigest({(1ull << 16) | 1, (1ull << 16) | 2}));
  EXPECT_NE(a, CtidDigest({(1ull << 16) | 2, (1ull << 16) | 1}));
  EXPECT_NE(a, CtidDigest({(1ull << 16) | 1}));
  EXPECT_NE(a, CtidDigest({(1ull << 16) | 1, (2ull << 16) | 2}));
  EXPECT_NE(CtidDigest({}), CtidDigest({0}));
}

Intent BlockRecord(int64_t rows, uint64_t digest) {
  Intent intent;
  intent.keys = "{}";
  intent.rows = rows;
  intent.blocks = "10-20";
  intent.cutoff = "2026-01-01T00:00:00Z";
  intent.digest = fmt::format("{:016x}", digest);
  return intent;
}

TEST(ArchiveRowsTest, ABatchReadByBlocksIsRedoneUnderItsIdOnlyWithTheSameRows) {
  RowsRead rows = Rows({"(10,1)", "(12,3)"}, {});
  rows.ctid_digest = CtidDigest({(10ull << 16) | 1, (12ull << 16) | 3});
  bool identical = false;
  ASSERT_OK_AND_ASSIGN(int64_t kept,
                       KeepRecordedRows(BlockRecord(2, rows.ctid_digest), &rows, &identical));
  EXPECT_EQ(kept, 2);
  EXPECT_TRUE(identical);
  // The same count at other places (a row deleted, another written there since): a new id.
  ASSERT_OK_AND_ASSIGN(kept,
                       KeepRecordedRows(BlockRecord(2, rows.ctid_digest ^ 1), &rows, &identical));
  EXPECT_EQ(kept, 2);
  EXPECT_FALSE(identical);
  ASSERT_OK_AND_ASSIGN(kept, KeepRecordedRows(BlockRecord(3, rows.ctid_digest), &rows, &identical));
  EXPECT_FALSE(identical);
}

TEST(ArchiveRowsTest, BatchIdOfAPageReadByBlocksNamesItsBlocks) {
  RowsRead rows;
  rows.ctids = {"(100,1)"};
  rows.first_block = 100;
  rows.end_block = 2600;
  EXPECT_EQ(BatchId(rows, "a1b2c3"), "blocks100-2600-a1b2c3");
}

TablePlan TwoColumnPlan() {
  TablePlan plan;
  plan.select_list = "src.\"id\", src.\"created_at\"";
  plan.quoted_ts = "\"created_at\"";
  plan.quoted_key = "\"id\"";
  return plan;
}

TEST(ArchiveRowsTest, BlockDeleteTakesTheOldRowsOfItsBlocksOnly) {
  TableSettings settings;
  settings.cutoff_us = 0;  // 1970-01-01
  const std::string sql = BlockDeleteQuery(TwoColumnPlan(), settings, "\"t\"", 5, 9);
  EXPECT_EQ(sql,
            "DELETE FROM \"t\" AS src WHERE src.ctid >= '(5,0)'::tid AND src.ctid < '(9,0)'::tid "
            "AND src.\"created_at\" < '1970-01-01T00:00:00Z'::timestamptz RETURNING src.ctid, "
            "src.\"id\", src.\"created_at\"");
}

TEST(ArchiveRowsTest, RedoOfABlockBatchLocksItsBlocksUnderTheEarlierCutoff) {
  TableSettings settings;
  settings.cutoff_us = 0;
  pg::PgParams params;
  RowsPrefix prefix = RowsPrefix::kKeyset;
  const std::string sql =
      RecoveryQuery(TwoColumnPlan(), settings, "\"t\"", BlockRecord(2, 7), &params, &prefix);
  EXPECT_EQ(prefix, RowsPrefix::kCtid);
  EXPECT_THAT(sql, HasSubstr("src.ctid >= '(10,0)'::tid AND src.ctid < '(20,0)'::tid"));
  EXPECT_THAT(sql,
              HasSubstr("least($1::timestamptz, $2::timestamptz) ORDER BY src.ctid FOR UPDATE"));
  EXPECT_THAT(params, ElementsAre("2026-01-01T00:00:00Z", "1970-01-01T00:00:00Z"));
  // A record made row by row is locked by its ctids.
  const std::string by_rows = RecoveryQuery(TwoColumnPlan(), settings, "\"t\"",
                                            RecordOf({"(0,1)"}, {"7"}), &params, &prefix);
  EXPECT_EQ(prefix, RowsPrefix::kKeyset);
  EXPECT_THAT(by_rows, HasSubstr("src.ctid = ANY($1::tid[])"));
}

}  // namespace
}  // namespace sluice::pg_archive
