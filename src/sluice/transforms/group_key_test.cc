// Group keys: DecodeKeys (a window's keys at once) gives back the encoded rows, as DecodeKey
// row by row does, for every key type, nulls and several key columns.

#include "sluice/transforms/group_key.h"

#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::transforms_internal {
namespace {

SchemaPtr KeySchema() {
  return MakeSchema({{"name", TypeId::kString},
                     {"id", TypeId::kInt64},
                     {"at", TypeId::kTimestamp},
                     {"x", TypeId::kFloat64},
                     {"ok", TypeId::kBool}});
}

/// The columns `cols` of `batch`, `times` times over, as one batch's text.
std::string Expected(const Batch& batch, const std::vector<int>& cols, int times) {
  std::vector<Field> fields;
  std::vector<ColumnBuilder> builders;
  for (const int c : cols) {
    fields.push_back(batch.schema()->field(c));
    builders.emplace_back(batch.schema()->field(c).type);
  }
  for (int t = 0; t < times; ++t) {
    for (size_t k = 0; k < cols.size(); ++k) builders[k].AppendColumn(batch.column(cols[k]));
  }
  std::vector<Column> out;
  for (auto& b : builders) out.push_back(b.Finish());
  return Batch::MakeUnchecked(MakeSchema(fields), std::move(out), times * batch.num_rows())
      ->ToString();
}

std::string Finish(const Batch& batch, const std::vector<int>& cols,
                   std::vector<ColumnBuilder>* builders, int64_t rows) {
  std::vector<Field> fields;
  for (const int c : cols) fields.push_back(batch.schema()->field(c));
  std::vector<Column> out;
  for (auto& b : *builders) out.push_back(b.Finish());
  return Batch::MakeUnchecked(MakeSchema(fields), std::move(out), rows)->ToString();
}

/// Encode the keys of `cols` for every row, decode them in bulk twice over (the second time
/// after values already in the builders) and row by row: both give the columns back.
void ExpectRoundTrip(const Batch& batch, const std::vector<int>& cols) {
  SCOPED_TRACE(::testing::PrintToString(cols));
  std::string bytes;
  std::vector<size_t> ends;
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    EncodeKey(batch, cols, r, &bytes);
    ends.push_back(bytes.size());
  }
  std::vector<std::string_view> keys;
  for (size_t r = 0; r < ends.size(); ++r) {
    const size_t begin = r == 0 ? 0 : ends[r - 1];
    keys.push_back(std::string_view(bytes).substr(begin, ends[r] - begin));
  }
  std::vector<ColumnBuilder> bulk, one_by_one;
  for (const int c : cols) {
    bulk.emplace_back(batch.schema()->field(c).type);
    one_by_one.emplace_back(batch.schema()->field(c).type);
  }
  for (int t = 0; t < 2; ++t) {
    std::vector<std::string_view> copy = keys;  // DecodeKeys may overwrite them
    DecodeKeys(&copy, &bulk);
    for (const auto key : keys) DecodeKey(key, &one_by_one);
  }
  const std::string want = Expected(batch, cols, 2);
  EXPECT_EQ(Finish(batch, cols, &bulk, 2 * batch.num_rows()), want);
  EXPECT_EQ(Finish(batch, cols, &one_by_one, 2 * batch.num_rows()), want);
}

TEST(GroupKeyTest, DecodeKeysGivesBackEveryTypeWithAndWithoutNulls) {
  ASSERT_OK_AND_ASSIGN(
      BatchPtr with_nulls,
      BatchFromJson(KeySchema(),
                    R"([["meter-1",1,"2026-01-01T00:00:00Z",1.5,true],)"
                    R"([null,null,null,null,null],)"
                    R"(["",-7,"1969-12-31T23:59:59Z",-0.0,false],)"
                    R"(["a much longer key than the others, past 16 bytes",)"
                    R"(9223372036854775807,"2026-01-01T00:00:00.000001Z",-2.25,true]])"));
  ASSERT_OK_AND_ASSIGN(
      BatchPtr no_nulls,
      BatchFromJson(KeySchema(), R"([["meter-1",1,"2026-01-01T00:00:00Z",1.5,true],)"
                                 R"(["",0,"1970-01-01T00:00:00Z",0.0,false],)"
                                 R"(["meter-2",-1,"2026-01-02T00:00:00Z",1e300,true]])"));
  for (const BatchPtr& b : {with_nulls, no_nulls}) {
    for (int c = 0; c < 5; ++c) ExpectRoundTrip(*b, {c});
    ExpectRoundTrip(*b, {0, 1});
    ExpectRoundTrip(*b, {2, 0, 3, 4});
  }
}

TEST(GroupKeyTest, DecodeKeysOfNoKeysAppendsNothing) {
  std::vector<std::string_view> keys = {"", ""};
  std::vector<ColumnBuilder> none;
  DecodeKeys(&keys, &none);
  EXPECT_TRUE(none.empty());
}

}  // namespace
}  // namespace sluice::transforms_internal
