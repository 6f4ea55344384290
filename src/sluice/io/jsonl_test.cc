#include "sluice/io/jsonl.h"

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::io {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

SchemaPtr AllTypes() {
  return MakeSchema({{"b", TypeId::kBool},
                     {"i", TypeId::kInt64},
                     {"f", TypeId::kFloat64},
                     {"s", TypeId::kString},
                     {"y", TypeId::kBytes},
                     {"t", TypeId::kTimestamp},
                     {"g", TypeId::kGeometry},
                     {"j", TypeId::kJson}});
}

std::string Encode(const BatchPtr& batch) {
  JsonlEncoder enc(batch->schema());
  std::string out;
  enc.Encode(*batch, &out);
  return out;
}

struct Decoded {
  std::vector<BatchPtr> batches;
  SchemaPtr schema;
  int64_t skipped = 0;
  // Return every row as one JSON array of arrays.
  std::string Rows() const {
    if (batches.empty()) return "[]";
    auto all = Concatenate(batches);
    return all.ok() ? (*all)->ToString() : all.status().ToString();
  }
};

// Decodes `input` fed in pieces split at `splits` (ascending offsets).
Result<Decoded> Decode(std::string_view input, DecodeOptions options,
                       std::vector<size_t> splits = {}) {
  SLUICE_ASSIGN_OR_RETURN(auto dec, JsonlDecoder::Make(std::move(options)));
  Decoded d;
  size_t pos = 0;
  splits.push_back(input.size());
  for (size_t s : splits) {
    SLUICE_RETURN_NOT_OK(dec->Feed(input.substr(pos, s - pos), &d.batches));
    pos = s;
  }
  SLUICE_RETURN_NOT_OK(dec->Finish(&d.batches));
  d.schema = dec->schema();
  d.skipped = dec->skipped_rows();
  return d;
}

DecodeOptions Declared(SchemaPtr schema) {
  DecodeOptions o;
  o.schema = std::move(schema);
  return o;
}

TEST(JsonlEncoderTest, WritesEveryType) {
  ASSERT_OK_AND_ASSIGN(
      auto batch,
      BatchFromJson(AllTypes(),
                    R"([[true, -42, 1.5, "hi", "00ff", "2024-05-01T12:00:00.25Z", "0101",
                         {"a": [1, 2]}],
                        [false, 9223372036854775807, 3.0, "", "", 0, "", null],
                        [null, null, null, null, null, null, null, null]])"));
  EXPECT_EQ(
      Encode(batch),
      R"({"b":true,"i":-42,"f":1.5,"s":"hi","y":"00ff","t":"2024-05-01T12:00:00.250000Z","g":"0101","j":{"a":[1,2]}})"
      "\n"
      R"({"b":false,"i":9223372036854775807,"f":3.0,"s":"","y":"","t":"1970-01-01T00:00:00Z","g":"","j":null})"
      "\n"
      R"({"b":null,"i":null,"f":null,"s":null,"y":null,"t":null,"g":null,"j":null})"
      "\n");
}

TEST(JsonlEncoderTest, EscapesStringsAndKeys) {
  auto schema = MakeSchema({{"we\"ird\\key", TypeId::kString}});
  ColumnBuilder b(TypeId::kString);
  b.AppendString("quote\" back\\ nl\n cr\r tab\t bell\x07 nul" + std::string(1, '\0') + " end");
  b.AppendString("héllo 日本 \xF0\x9F\x98\x80");  // UTF-8 passes through unescaped
  b.AppendString("a long clean run of bytes without anything to escape at all, ok");
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 3);
  EXPECT_EQ(Encode(batch),
            "{\"we\\\"ird\\\\key\":\"quote\\\" back\\\\ nl\\n cr\\r tab\\t bell\\u0007 "
            "nul\\u0000 end\"}\n"
            "{\"we\\\"ird\\\\key\":\"héllo 日本 \xF0\x9F\x98\x80\"}\n"
            "{\"we\\\"ird\\\\key\":\"a long clean run of bytes without anything to escape at "
            "all, ok\"}\n");
}

TEST(JsonlEncoderTest, FloatsUseShortestRoundTripAndNonFiniteAreStrings) {
  auto schema = MakeSchema({{"f", TypeId::kFloat64}});
  ColumnBuilder b(TypeId::kFloat64);
  for (double v : {0.1, 1e300, -2.0, 5e-324, std::nan(""), std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity(), -0.0}) {
    b.AppendFloat64(v);
  }
  b.AppendNull();
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 9);
  const std::string text = Encode(batch);
  EXPECT_EQ(text,
            "{\"f\":0.1}\n{\"f\":1e+300}\n{\"f\":-2.0}\n{\"f\":5e-324}\n{\"f\":\"NaN\"}\n"
            "{\"f\":\"Infinity\"}\n{\"f\":\"-Infinity\"}\n{\"f\":-0.0}\n{\"f\":null}\n");
  // A declared float64 column reads them back as the same values (NaN a value, not a null).
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(schema)));
  ASSERT_EQ(d.batches.size(), 1u);
  const Column& col = d.batches[0]->column(0);
  EXPECT_EQ(col.null_count(), 1);
  EXPECT_TRUE(std::isnan(col.GetFloat64(4)));
  EXPECT_EQ(col.GetFloat64(5), std::numeric_limits<double>::infinity());
  EXPECT_EQ(col.GetFloat64(6), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::signbit(col.GetFloat64(7)));
  EXPECT_EQ(Encode(d.batches[0]), text);
  EXPECT_THAT(Decode("{\"f\":\"many\"}\n", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: expected float64 for 'f', got \"many\"")));
}

TEST(JsonlEncoderTest, InfiniteTimestampsAreWordsAndRoundTrip) {
  auto schema = MakeSchema({{"t", TypeId::kTimestamp}});
  ColumnBuilder b(TypeId::kTimestamp);
  b.AppendTimestamp(std::numeric_limits<int64_t>::max());
  b.AppendTimestamp(std::numeric_limits<int64_t>::min());
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 2);
  const std::string text = Encode(batch);
  EXPECT_EQ(text, "{\"t\":\"infinity\"}\n{\"t\":\"-infinity\"}\n");
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(schema)));
  ASSERT_EQ(d.batches.size(), 1u);
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(0), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(1), std::numeric_limits<int64_t>::min());
}

TEST(JsonlRoundTripTest, ExactStringsKeepJsonTextAndNullApart) {
  // PostgreSQL json and numeric arrive as strings: their text, 'null' included, survives.
  auto schema = MakeSchema({{"j", TypeId::kString}, {"n", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(
      BatchPtr batch,
      BatchFromJson(schema, R"([["{\"a\" :  1,\n \"a\": 2.50}", "12345678901234567890.1234567890"],
                                                 ["null", "NaN"], [null, null]])"));
  const std::string text = Encode(batch);
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(schema)));
  ASSERT_EQ(d.batches.size(), 1u);
  EXPECT_EQ(d.batches[0]->ToString(), batch->ToString());
  EXPECT_EQ(d.batches[0]->column(0).GetView(0), "{\"a\" :  1,\n \"a\": 2.50}");
  EXPECT_EQ(d.batches[0]->column(0).null_count(), 1);
}

TEST(JsonlEncoderTest, TimestampsOutsideFourDigitYearsAreMicrosAndRoundTrip) {
  auto schema = MakeSchema({{"t", TypeId::kTimestamp}});
  ColumnBuilder b(TypeId::kTimestamp);
  b.AppendTimestamp(std::numeric_limits<int64_t>::min() + 1);
  b.AppendTimestamp(-62'167'219'200'000'000);  // 0000-01-01T00:00:00Z
  b.AppendTimestamp(253'402'300'800'000'000);  // 10000-01-01T00:00:00Z
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 3);
  const std::string text = Encode(batch);
  EXPECT_EQ(text,
            "{\"t\":-9223372036854775807}\n{\"t\":\"0000-01-01T00:00:00Z\"}\n"
            "{\"t\":253402300800000000}\n");
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(schema)));
  ASSERT_EQ(d.batches.size(), 1u);
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(0), std::numeric_limits<int64_t>::min() + 1);
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(2), 253'402'300'800'000'000);
}

TEST(JsonlEncoderTest, JsonWithLineBreaksStaysOnOneLine) {
  auto schema = MakeSchema({{"j", TypeId::kJson}});
  ColumnBuilder b(TypeId::kJson);
  b.AppendString("{\n  \"a\": 1\r\n}");
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 1);
  EXPECT_EQ(Encode(batch), "{\"j\":{   \"a\": 1  }}\n");
}

TEST(JsonlEncoderTest, ReportsRowEndsAndAppends) {
  auto schema = MakeSchema({{"i", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(schema, "[[1],[22],[333]]"));
  JsonlEncoder enc(schema);
  std::string out = "prefix";
  std::vector<size_t> ends;
  enc.Encode(*batch, &out, &ends);
  EXPECT_EQ(out, "prefix{\"i\":1}\n{\"i\":22}\n{\"i\":333}\n");
  EXPECT_EQ(ends, (std::vector<size_t>{14, 23, 33}));
}

TEST(JsonlEncoderTest, EmptySchemaWritesEmptyObjects) {
  auto batch = Batch::MakeUnchecked(MakeSchema({}), {}, 2);
  EXPECT_EQ(Encode(batch), "{}\n{}\n");
}

TEST(JsonlRoundTripTest, EveryTypeWithDeclaredSchema) {
  const std::string rows =
      R"([[true,-42,1.5,"hi \"there\"\n","00ff","2024-05-01T12:00:00.25Z","0101000000000000000000f03f0000000000000040",{"a":[1,2.5,"x"]}],)"
      R"([false,9223372036854775807,3.0,"","","1969-12-31T23:59:59.999999Z","01020000000200000000000000000000000000000000000000000000000000f03f000000000000f03f",[]],)"
      R"([null,-9223372036854775808,1e-300,"日本","ff","9999-12-31T00:00:00Z",null,"str"],)"
      R"([null,null,null,null,null,null,null,null]])";
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(AllTypes(), rows));
  const std::string text = Encode(batch);
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(AllTypes())));
  EXPECT_EQ(d.Rows(), batch->ToString());
  ASSERT_EQ(d.batches.size(), 1u);
  EXPECT_EQ(*d.batches[0]->schema(), *AllTypes());
}

TEST(JsonlRoundTripTest, EverySplitPointGivesTheSameRows) {
  // Includes multi-byte UTF-8 so that some splits fall inside a sequence.
  const std::string text =
      "{\"id\":1,\"name\":\"héllo 日本\",\"v\":1.5}\n"
      "{\"id\":2,\"name\":\"\xF0\x9F\x98\x80 emoji\",\"v\":null}\r\n"
      "\n"
      "{\"name\":\"x\\ny\",\"id\":3}\n"
      "{\"id\":4,\"name\":\"last, no newline\",\"v\":-0.25}";
  ASSERT_OK_AND_ASSIGN(Decoded whole, Decode(text, DecodeOptions()));
  EXPECT_EQ(whole.Rows(), R"([[1,"héllo 日本",1.5],[2,"😀 emoji",null],[3,"x\ny",null],)"
                          R"([4,"last, no newline",-0.25]])");
  EXPECT_EQ(whole.schema->ToString(), "id:int64, name:string, v:float64");
  for (size_t split = 0; split <= text.size(); ++split) {
    ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, DecodeOptions(), {split}));
    EXPECT_EQ(d.Rows(), whole.Rows()) << "split at " << split;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < text.size(); ++i) every_byte.push_back(i);
  ASSERT_OK_AND_ASSIGN(Decoded bytewise, Decode(text, DecodeOptions(), every_byte));
  EXPECT_EQ(bytewise.Rows(), whole.Rows());
}

TEST(JsonlDecoderTest, MissingKeysAreNullAndUnknownKeysIgnored) {
  auto schema = MakeSchema({{"a", TypeId::kInt64}, {"b", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(
      Decoded d, Decode("{\"b\":\"x\",\"zzz\":[1,{\"q\":2}]}\n{\"a\":7}\n{}\n", Declared(schema)));
  EXPECT_EQ(d.Rows(), R"([[null,"x"],[7,null],[null,null]])");
}

TEST(JsonlDecoderTest, InfersTypesFromTheFirstRows) {
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("{\"n\":1,\"x\":1,\"b\":true,\"o\":{\"k\":1},\"z\":null}\n"
                                         "{\"n\":2.5,\"x\":\"s\",\"b\":false,\"o\":[1],\"z\":null,"
                                         "\"late\":1}\n",
                                         DecodeOptions()));
  EXPECT_EQ(d.schema->ToString(), "n:float64, x:json, b:bool, o:json, z:string, late:int64");
  EXPECT_EQ(d.Rows(), R"([[1.0,1,true,{"k":1},null,null],[2.5,"s",false,[1],null,1]])");
}

TEST(JsonlDecoderTest, InferenceLooksOnlyAtInferRows) {
  DecodeOptions o;
  o.infer_rows = 2;
  auto d = Decode("{\"a\":1}\n{\"a\":2}\n{\"a\":\"three\"}\n", o);
  EXPECT_THAT(d, StatusIs(StatusCode::kInvalidArgument,
                          HasSubstr("line 3: expected int64 for 'a', got string")));
}

TEST(JsonlDecoderTest, InferenceWaitsForObjectsPastBadLines) {
  DecodeOptions o;
  o.infer_rows = 2;
  o.on_error = OnError::kSkip;
  const std::string text = "garbage\n\n[1]\n{\"a\":1}\n{\"a\":2.5,\"b\":\"x\"}\n";
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, o, {8, 12}));
  EXPECT_EQ(d.schema->ToString(), "a:float64, b:string");
  EXPECT_EQ(d.Rows(), R"([[1.0,null],[2.5,"x"]])");
  EXPECT_EQ(d.skipped, 2);
  o.on_error = OnError::kFail;
  EXPECT_THAT(Decode(text, o, {8}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 1: invalid JSON")));
}

TEST(JsonlDecoderTest, NoObjectsMeansNoSchema) {
  DecodeOptions o;
  o.on_error = OnError::kSkip;
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("\n  \nnot json\n", o));
  EXPECT_EQ(d.schema, nullptr);
  EXPECT_TRUE(d.batches.empty());
  EXPECT_EQ(d.skipped, 1);
}

TEST(JsonlDecoderTest, SplitsIntoBatchesOfBatchRows) {
  DecodeOptions o = Declared(MakeSchema({{"a", TypeId::kInt64}}));
  o.batch_rows = 2;
  ASSERT_OK_AND_ASSIGN(Decoded d,
                       Decode("{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n{\"a\":4}\n{\"a\":5}\n", o));
  ASSERT_EQ(d.batches.size(), 3u);
  EXPECT_EQ(d.batches[0]->num_rows(), 2);
  EXPECT_EQ(d.batches[2]->num_rows(), 1);
  EXPECT_EQ(d.Rows(), "[[1],[2],[3],[4],[5]]");
}

TEST(JsonlDecoderTest, WrongTypeNamesLineFieldAndTypes) {
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}});
  const std::string text = "{\"id\":1}\n\n{\"id\":2}\n{\"id\":\"x\"}\n";
  EXPECT_THAT(Decode(text, Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 4: expected int64 for 'id', got string")));
  EXPECT_THAT(Decode("{\"id\":1.5}", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: expected int64 for 'id', got float64")));
  EXPECT_THAT(Decode("{\"name\":[1]}", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: expected string for 'name', got array")));
}

TEST(JsonlDecoderTest, MalformedLinesAreErrorsWithLineNumbers) {
  EXPECT_THAT(Decode("{\"a\":1}\n{\"a\":\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 2: invalid JSON")));
  EXPECT_THAT(Decode("{\"a\":1}\n[1,2]\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 2: expected a JSON object, got array")));
  EXPECT_THAT(Decode("{\"a\":1} {\"a\":2}\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 1: invalid JSON")));
  EXPECT_THAT(Decode("{\"a\":\"\xff\"}\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 1: invalid JSON")));
}

TEST(JsonlDecoderTest, SourceNamePrefixesErrors) {
  DecodeOptions o = Declared(MakeSchema({{"a", TypeId::kBool}}));
  o.source_name = "data/x.jsonl";
  EXPECT_THAT(
      Decode("{\"a\":true}\n{\"a\":1}\n", o),
      StatusIs(StatusCode::kInvalidArgument, "data/x.jsonl:2: expected bool for 'a', got int64"));
}

TEST(JsonlDecoderTest, SkipModeDropsAndCountsBadLines) {
  DecodeOptions o = Declared(MakeSchema({{"a", TypeId::kInt64}}));
  o.on_error = OnError::kSkip;
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("{\"a\":1}\nnot json\n{\"a\":\"x\"}\n{\"a\":4}\n", o));
  EXPECT_EQ(d.Rows(), "[[1],[4]]");
  EXPECT_EQ(d.skipped, 2);
}

TEST(JsonlDecoderTest, TimestampsBytesAndNonNullableFields) {
  auto schema = MakeSchema({{"t", TypeId::kTimestamp}, {"y", TypeId::kBytes, false}});
  ASSERT_OK_AND_ASSIGN(
      Decoded d, Decode("{\"t\":1000000,\"y\":\"\\\\xABcd\"}\n{\"t\":\"2024-01-02 03:04:05+01:00\","
                        "\"y\":\"\"}\n",
                        Declared(schema)));
  EXPECT_EQ(d.Rows(), R"([["1970-01-01T00:00:01Z","abcd"],["2024-01-02T02:04:05Z",""]])");
  EXPECT_THAT(Decode("{\"t\":\"yesterday\",\"y\":\"\"}", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: invalid timestamp for 't': 'yesterday' is not a "
                                 "timestamp")));
  EXPECT_THAT(Decode("{\"y\":\"zz\"}", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: expected a hex string for 'y', got \"zz\"")));
  EXPECT_THAT(Decode("{\"t\":1}", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: missing value for non-nullable 'y'")));
}

TEST(JsonlDecoderTest, ByteOrderMarkAndEmptyInput) {
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("\xEF\xBB\xBF{\"a\":1}\n", DecodeOptions(), {1, 2}));
  EXPECT_EQ(d.Rows(), "[[1]]");
  ASSERT_OK_AND_ASSIGN(Decoded empty, Decode("", DecodeOptions()));
  EXPECT_TRUE(empty.batches.empty());
  ASSERT_OK_AND_ASSIGN(Decoded declared,
                       Decode("\n\n", Declared(MakeSchema({{"a", TypeId::kInt64}}))));
  EXPECT_TRUE(declared.batches.empty());
}

}  // namespace
}  // namespace sluice::io
