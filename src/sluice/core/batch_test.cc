#include "sluice/core/batch.h"

#include <gtest/gtest.h>

#include <cstring>

#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

SchemaPtr TestSchema() {
  return MakeSchema({{"id", TypeId::kInt64},
                     {"name", TypeId::kString},
                     {"score", TypeId::kFloat64},
                     {"ok", TypeId::kBool},
                     {"at", TypeId::kTimestamp},
                     {"doc", TypeId::kJson}});
}

TEST(BatchTest, FromJsonRoundTripsEveryType) {
  const char* rows = R"([[1,"a",1.5,true,"2024-01-01T00:00:00Z",{"k":1}],)"
                     R"([2,null,null,false,null,null],)"
                     R"([3,"ccc",-2.0,null,"2024-01-02T00:00:00.5Z",[1,2]]])";
  ASSERT_OK_AND_ASSIGN(BatchPtr b, BatchFromJson(TestSchema(), rows));
  EXPECT_EQ(b->num_rows(), 3);
  EXPECT_EQ(b->column(1).null_count(), 1);
  EXPECT_EQ(b->column(1).GetView(2), "ccc");
  EXPECT_TRUE(b->column(3).IsNull(2));
  EXPECT_EQ(b->ToString(), R"([[1,"a",1.5,true,"2024-01-01T00:00:00Z",{"k":1}],)"
                           R"([2,null,null,false,null,null],)"
                           R"([3,"ccc",-2.0,null,"2024-01-02T00:00:00.500000Z",[1,2]]])");
}

TEST(BatchTest, FromJsonRejectsWrongTypes) {
  EXPECT_THAT(BatchFromJson(TestSchema(), R"([["x","a",1.5,true,null,null]])"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("field 'id'")));
  EXPECT_THAT(BatchFromJson(TestSchema(), R"([[1]])"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("6 values")));
}

TEST(BatchTest, SliceSharesBuffersAndCountsNulls) {
  ASSERT_OK_AND_ASSIGN(BatchPtr b, BatchFromJson(MakeSchema({{"s", TypeId::kString}}),
                                                 R"([["aa"],[null],["bbbb"],["c"],[null]])"));
  BatchPtr s = b->Slice(2, 2);
  EXPECT_EQ(s->num_rows(), 2);
  EXPECT_EQ(s->column(0).null_count(), 0);
  EXPECT_EQ(s->column(0).GetView(0), "bbbb");
  EXPECT_EQ(s->column(0).values_buffer(), b->column(0).values_buffer());
  // Two offsets' worth of rows + 3 offsets + 5 bytes; no validity since the slice has no nulls.
  EXPECT_EQ(s->ByteSize(), 3 * 4 + 5);
  EXPECT_EQ(b->Slice(1, 3)->column(0).null_count(), 1);
}

TEST(BatchTest, FilterTakeAndConcatenate) {
  ASSERT_OK_AND_ASSIGN(BatchPtr b, BatchFromJson(TestSchema(),
                                                 R"([[1,"a",1.0,true,null,null],
                                                     [2,"b",2.0,false,null,null],
                                                     [3,null,3.0,true,null,null]])"));
  const uint8_t mask[] = {1, 0, 1};
  BatchPtr f = b->Filter(mask);
  EXPECT_EQ(f->ToString(), R"([[1,"a",1.0,true,null,null],[3,null,3.0,true,null,null]])");
  BatchPtr t = b->Take({2, 0});
  EXPECT_EQ(t->column(0).GetInt64(0), 3);
  ASSERT_OK_AND_ASSIGN(BatchPtr c, Concatenate({f, b->Slice(1, 1)}));
  EXPECT_EQ(c->num_rows(), 3);
  EXPECT_EQ(c->column(1).GetView(2), "b");
  EXPECT_TRUE(c->column(1).IsNull(1));
}

TEST(BatchTest, BuilderHandlesManyNulls) {
  ColumnBuilder b(TypeId::kInt64);
  for (int i = 0; i < 1000; ++i) {
    if (i % 3 == 0) {
      b.AppendNull();
    } else {
      b.AppendInt64(i);
    }
  }
  Column c = b.Finish();
  EXPECT_EQ(c.null_count(), 334);
  EXPECT_TRUE(c.IsNull(999));
  EXPECT_EQ(c.GetInt64(998), 998);
  EXPECT_FALSE(c.IsNull(998));
}

TEST(BatchTest, MakeChecksShape) {
  ColumnBuilder b(TypeId::kString);
  b.AppendString("x");
  EXPECT_THAT(Batch::Make(MakeSchema({{"n", TypeId::kInt64}}), {b.Finish()}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("schema says int64")));
}

TEST(BatchTagsTest, SortedUniqueLastValueWins) {
  BatchTags t{{"table", "audit"}, {"database", "main"}, {"table", "audit_log"}};
  EXPECT_EQ(t.size(), 2u);
  EXPECT_EQ(t.entries()[0].first, "database");
  EXPECT_EQ(t.Get(tag::kTable), "audit_log");
  EXPECT_EQ(t.Find("date"), nullptr);
  EXPECT_EQ(t.Get("date", "none"), "none");
  BatchTags u = t.With(tag::kDate, "2026-01-02").With(tag::kTable, "other");
  EXPECT_EQ(u.Get(tag::kDate), "2026-01-02");
  EXPECT_EQ(u.Get(tag::kTable), "other");
  EXPECT_EQ(t.Get(tag::kTable), "audit_log");  // the original is unchanged
  EXPECT_TRUE(BatchTags().empty());
  EXPECT_EQ(BatchTags(), BatchTags(std::vector<BatchTags::Entry>{}));
}

TEST(BatchTagsTest, WithTagsSharesColumnsAndRowOperationsKeepTags) {
  ASSERT_OK_AND_ASSIGN(BatchPtr b, BatchFromJson(MakeSchema({{"_meta", TypeId::kString}}),
                                                 R"([["a"],["b"],["c"]])"));
  EXPECT_TRUE(b->tags().empty());
  BatchPtr t = b->WithTags({{"database", "main"}, {"table", "audit"}});
  EXPECT_EQ(t->column(0).values_buffer(), b->column(0).values_buffer());
  EXPECT_EQ(t->num_rows(), 3);
  EXPECT_TRUE(b->tags().empty());
  const BatchTags& want = t->tags();
  EXPECT_EQ(t->Slice(1, 1)->tags(), want);
  const uint8_t keep_two[] = {1, 0, 1};
  EXPECT_EQ(t->Filter(keep_two)->tags(), want);
  const uint8_t keep_all[] = {1, 1, 1};
  EXPECT_EQ(t->Filter(keep_all)->tags(), want);
  EXPECT_EQ(t->Take({2, 0})->tags(), want);
  EXPECT_EQ(t->Take({2, 0})->ToString(), R"([["c"],["a"]])");
}

TEST(BatchTagsTest, ConcatenateKeepsTheTagsAllBatchesShare) {
  ASSERT_OK_AND_ASSIGN(BatchPtr b, BatchFromJson(MakeSchema({{"id", TypeId::kInt64}}), "[[1]]"));
  BatchPtr x = b->WithTags({{"database", "main"}, {"table", "a"}});
  BatchPtr y = b->WithTags({{"database", "main"}, {"table", "b"}});
  ASSERT_OK_AND_ASSIGN(BatchPtr both, Concatenate({x, y}));
  EXPECT_EQ(both->tags(), BatchTags({{"database", "main"}}));
  EXPECT_EQ(both->ToString(), "[[1],[1]]");
}

// The bulk appends write what the one-value appends would: after values and nulls already
// there, with nulls marked afterwards, and strings continuing the offsets.
TEST(ColumnBuilderTest, BulkAppendsEqualOneByOne) {
  ColumnBuilder bulk(TypeId::kInt64), one(TypeId::kInt64);
  for (ColumnBuilder* b : {&bulk, &one}) {
    b->AppendInt64(5);
    b->AppendNull();
  }
  bulk.AppendRepeated(7, 3);
  const int64_t values[] = {1, -2, 3};
  bulk.AppendValues(values, 3);
  int64_t* out = bulk.AppendUninitialized<int64_t>(3);
  out[0] = 10;
  out[1] = 11;
  out[2] = 12;
  bulk.SetNull(8);
  bulk.SetNull(8);  // twice: still one null
  bulk.AppendInt64(13);
  bulk.SetNull(2);  // a row among earlier ones
  for (const int64_t v : {7, 7, 7, 1, -2, 3, 10, 11, 12, 13}) one.AppendInt64(v);
  Column a = bulk.Finish();
  Column b = one.Finish();
  ASSERT_EQ(a.length(), 12);
  EXPECT_EQ(a.null_count(), 3);
  for (int64_t i = 0; i < 12; ++i) {
    const bool null = i == 1 || i == 2 || i == 8;
    EXPECT_EQ(a.IsNull(i), null) << i;
    EXPECT_EQ(a.GetInt64(i), null ? 0 : b.GetInt64(i)) << i;
  }

  ColumnBuilder strings(TypeId::kString);
  strings.AppendString("x");
  strings.AppendNull();
  const std::vector<std::string> more = {"", "meter-00042", "a string longer than sixteen bytes"};
  strings.AppendStrings(3, [&](int64_t i) { return std::string_view(more[i]); });
  strings.AppendStrings(0, [&](int64_t i) { return std::string_view(more[i]); });
  strings.AppendString("y");
  Column s = strings.Finish();
  ASSERT_EQ(s.length(), 6);
  EXPECT_EQ(s.null_count(), 1);
  EXPECT_EQ(s.GetView(0), "x");
  EXPECT_TRUE(s.IsNull(1));
  for (int64_t i = 0; i < 3; ++i) EXPECT_EQ(s.GetView(2 + i), more[static_cast<size_t>(i)]);
  EXPECT_EQ(s.GetView(5), "y");
}

// A string written in place takes the bytes it ended with, not the room it asked for (which
// outgrows the bytes so far: the room moves, the strings before it with it).
TEST(ColumnBuilderTest, StringsWrittenInPlaceKeepTheirLength) {
  ColumnBuilder b(TypeId::kString);
  b.AppendString("ab");
  char* p = b.BeginString(100);
  std::memcpy(p, "hello", 5);
  b.EndString(5);
  b.BeginString(3);
  b.EndString(0);
  b.AppendNull();
  p = b.BeginString(4);
  std::memcpy(p, "wxyz", 4);
  b.EndString(4);
  Column c = b.Finish();
  ASSERT_EQ(c.length(), 5);
  EXPECT_EQ(c.GetView(0), "ab");
  EXPECT_EQ(c.GetView(1), "hello");
  EXPECT_EQ(c.GetView(2), "");
  EXPECT_TRUE(c.IsNull(3));
  EXPECT_EQ(c.GetView(4), "wxyz");
  EXPECT_EQ(c.offsets()[5] - c.offsets()[0], 2 + 5 + 4);
}

}  // namespace
}  // namespace sluice
