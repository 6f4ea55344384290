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
  ASSERT_OK_AND_ASSIGN(int64_t kept, KeepRecordedRows(intent, &rows));
  EXPECT_EQ(kept, 2);
  EXPECT_THAT(rows.ctids, ElementsAre("(0,1)", "(0,3)"));
  EXPECT_EQ(rows.batch->ToString(), "[[0],[2]]");
}

TEST(ArchiveRowsTest, RecoveryOfAnOlderRecordKeepsWhatTheKeysSelected) {
  Intent intent;
  intent.keys = "{7,8}";
  RowsRead rows = Rows({"(0,1)", "(0,2)"}, {"7", "8"});
  ASSERT_OK_AND_ASSIGN(int64_t kept, KeepRecordedRows(intent, &rows));
  EXPECT_EQ(kept, 2);
}

TEST(ArchiveRowsTest, AnUnreadableRecordIsAnErrorNotAnEmptyBatch) {
  // Taking it for "no rows left" would forget the record and archive its rows again.
  Intent intent = RecordOf({"(0,1)", "(0,2)"}, {"7", "8"});
  intent.keys = "{\"7\"";  // truncated
  RowsRead rows = Rows({"(0,1)", "(0,2)"}, {"7", "8"});
  EXPECT_THAT(KeepRecordedRows(intent, &rows),
              StatusIs(StatusCode::kDataLoss, HasSubstr("cannot be read")));
}

}  // namespace
}  // namespace sluice::pg_archive
