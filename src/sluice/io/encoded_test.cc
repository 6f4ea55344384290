#include "sluice/io/encoded.h"

#include <set>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::io {
namespace {

TEST(KeyTextTest, EscapesEveryUnsafeByteAndKeepsSafeText) {
  EXPECT_EQ(EscapeKeyText("audit_log-2024.v1"), "audit_log-2024.v1");
  EXPECT_EQ(EscapeKeyText("a/b c"), "a%2Fb%20c");
  EXPECT_EQ(EscapeKeyText("100%"), "100%25");
  EXPECT_EQ(EscapeKeyText("é"), "%C3%A9");
  EXPECT_EQ(EscapeKeyText(std::string_view("\0x", 2)), "%00x");
  EXPECT_EQ(EscapeKeyText(""), "%empty");
  EXPECT_EQ(EscapeKeyText("."), "%2E");
  EXPECT_EQ(EscapeKeyText(".."), "%2E%2E");
  EXPECT_EQ(EscapeKeyText("..."), "...");
  for (const char* s : {"a/b c", "100%", "", ".", "x"}) {
    EXPECT_TRUE(IsEscapedKeyText(EscapeKeyText(s))) << s;
  }
  EXPECT_FALSE(IsEscapedKeyText("a/b"));
  EXPECT_FALSE(IsEscapedKeyText("50%"));
  EXPECT_FALSE(IsEscapedKeyText("%2f"));
  EXPECT_FALSE(IsEscapedKeyText(".."));
  EXPECT_FALSE(IsEscapedKeyText(""));
}

TEST(KeyTextTest, DifferentTextsNeverEscapeAlike) {
  // Texts that a replace-by-'_' scheme folded together, and near misses of the escapes.
  const std::vector<std::string> texts = {
      "a/b",  "a_b",  "a b",  "a%2Fb", "a%b",    "%",    "%25",   "",     "%empty", "empty",
      ".",    "..",   "%2E",  "_",     "-",      "null", "%null", "a\nb", "a\tb",   "A/B",
      "a//b", "a/ b", "a /b", "ä",     "%C3%A4", "...",  "./",    "/.",   "é/",     "e/"};
  std::set<std::string> escaped;
  for (const auto& t : texts) EXPECT_TRUE(escaped.insert(EscapeKeyText(t)).second) << t;
}

TEST(KeyTextTest, FormatsKeyValuesOfEveryType) {
  ASSERT_OK_AND_ASSIGN(BatchPtr b,
                       BatchFromJson(MakeSchema({{"i", TypeId::kInt64},
                                                 {"s", TypeId::kString},
                                                 {"t", TypeId::kTimestamp},
                                                 {"b", TypeId::kBytes},
                                                 {"f", TypeId::kFloat64},
                                                 {"o", TypeId::kBool}}),
                                     R"([[-5, "a/b c", "2024-05-01T12:00:00Z", "00ff", 1.5, true],
                        [null, null, null, null, null, null],
                        [7, "null", "2024-05-01T12:00:00.25Z", "", -2.5e300, false]])"));
  EXPECT_EQ(FormatKeyValue(b->column(0), 0), "-5");
  EXPECT_EQ(FormatKeyValue(b->column(1), 0), "a%2Fb%20c");
  EXPECT_EQ(FormatKeyValue(b->column(2), 0), "20240501T120000Z");
  EXPECT_EQ(FormatKeyValue(b->column(3), 0), "00ff");
  EXPECT_EQ(FormatKeyValue(b->column(4), 0), "1.5");
  EXPECT_EQ(FormatKeyValue(b->column(5), 0), "true");
  for (int c = 0; c < 6; ++c) EXPECT_EQ(FormatKeyValue(b->column(c), 1), "%null") << c;
  EXPECT_EQ(FormatKeyValue(b->column(1), 2), "null") << "the string, unlike a null";
  EXPECT_EQ(FormatKeyValue(b->column(2), 2), "20240501T120000.250000Z");
  EXPECT_EQ(FormatKeyValue(b->column(3), 2), "%empty");
  EXPECT_EQ(FormatKeyValue(b->column(4), 2), "-2.5e%2B300");
  for (int c = 0; c < 6; ++c) {
    for (int64_t r = 0; r < 3; ++r) EXPECT_TRUE(IsEscapedKeyText(FormatKeyValue(b->column(c), r)));
  }
}

TEST(ObjectEncoderTest, EncodesEveryColumnAndRecordsKeysRangeAndTypes) {
  ASSERT_OK_AND_ASSIGN(
      BatchPtr b, BatchFromJson(MakeSchema({{"id", TypeId::kInt64}, {"_meta", TypeId::kString}}),
                                R"([[5, "x"], [null, null], [3, "y"]])"));
  ObjectEncoder encoder(ObjectEncoding{Format::kCsv, Codec::kNone, kDefaultLevel, "id"});
  EncodedObject o;
  ASSERT_OK(encoder.Encode(*b->WithTags({{"pg_types", R"({"id":"bigint"})"}}), &o));
  EXPECT_EQ(o.bytes, "id,_meta\n5,x\n,\n3,y\n");
  EXPECT_EQ(o.rows, 3);
  EXPECT_EQ(o.raw_bytes, static_cast<int64_t>(o.bytes.size()));
  EXPECT_TRUE(o.has_keys);
  EXPECT_EQ(o.first_key, "5");
  EXPECT_EQ(o.last_key, "3");
  EXPECT_EQ(o.min_key, 3);
  EXPECT_EQ(o.max_key, 5);
  EXPECT_EQ(o.ext, ".csv");
  EXPECT_EQ(
      o.columns.dump(),
      R"([{"name":"id","pg_type":"bigint","type":"int64"},{"name":"_meta","type":"string"}])");

  // Without the key column the object has no keys; the caller decides whether that is an error.
  ObjectEncoder no_key(ObjectEncoding{Format::kJsonl, Codec::kGzip, kDefaultLevel, "event_id"});
  ASSERT_OK(no_key.Encode(*b, &o));
  EXPECT_FALSE(o.has_keys);
  EXPECT_TRUE(o.min_key.is_null());
  ASSERT_OK_AND_ASSIGN(std::string raw, Decompress(Codec::kGzip, o.bytes));
  EXPECT_EQ(
      raw,
      "{\"id\":5,\"_meta\":\"x\"}\n{\"id\":null,\"_meta\":null}\n{\"id\":3,\"_meta\":\"y\"}\n");
  EXPECT_EQ(o.ext, ".jsonl.gz");
}

TEST(ObjectEncoderTest, EncodedBatchesRoundTripAnObject) {
  EncodedObject o;
  o.bytes = "payload";
  o.rows = 2;
  o.raw_bytes = 40;
  o.has_keys = true;
  o.first_key = "a%2Fb";
  o.last_key = "%null";
  o.min_key = "a/b";
  o.max_key = "z";
  o.ext = ".jsonl.zst";
  o.columns = nlohmann::json::parse(R"([{"name":"k","type":"string"}])");
  BatchPtr b = encoded::ToBatch(o, BatchTags{{"table", "t"}});
  EXPECT_TRUE(encoded::IsEncoded(*b->schema()));
  EXPECT_EQ(b->tags().Get("table"), "t");
  EXPECT_EQ(encoded::PayloadAt(*b, 0), "payload");
  ASSERT_OK_AND_ASSIGN(EncodedObject back, encoded::ObjectAt(*b, 0));
  EXPECT_EQ(back.rows, 2);
  EXPECT_EQ(back.raw_bytes, 40);
  EXPECT_EQ(back.first_key, "a%2Fb");
  EXPECT_EQ(back.last_key, "%null");
  EXPECT_EQ(back.min_key, "a/b");
  EXPECT_EQ(back.ext, ".jsonl.zst");
  EXPECT_EQ(back.columns, o.columns);

  o.first_key = "a/b";  // not escaped: refused rather than put into a key
  EXPECT_THAT(encoded::ObjectAt(*encoded::ToBatch(o, {}), 0),
              testing::StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr("not escaped")));
}

TEST(ColumnRangeTest, SkipsNulls) {
  ASSERT_OK_AND_ASSIGN(
      BatchPtr b,
      BatchFromJson(
          MakeSchema({{"i", TypeId::kInt64}, {"s", TypeId::kString}, {"t", TypeId::kTimestamp}}),
          R"([[5, "m", "2024-05-02T00:00:00Z"], [null, null, null], [-3, "z", "2024-05-01T00:00:00Z"],
              [9, "a", null]])"));
  EXPECT_EQ(ColumnRange(b->column(0)), std::make_pair(nlohmann::json(-3), nlohmann::json(9)));
  EXPECT_EQ(ColumnRange(b->column(1)), std::make_pair(nlohmann::json("a"), nlohmann::json("z")));
  EXPECT_EQ(ColumnRange(b->column(2)), std::make_pair(nlohmann::json("2024-05-01T00:00:00Z"),
                                                      nlohmann::json("2024-05-02T00:00:00Z")));
  EXPECT_EQ(ColumnRange(b->Slice(1, 1)->column(0)),
            std::make_pair(nlohmann::json(nullptr), nlohmann::json(nullptr)));
}

}  // namespace
}  // namespace sluice::io
