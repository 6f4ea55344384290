#include "sluice/io/csv.h"

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

std::string Encode(const BatchPtr& batch, EncodeOptions options = {}) {
  CsvEncoder enc(batch->schema(), options);
  std::string out;
  enc.Begin(&out);
  enc.Encode(*batch, &out);
  return out;
}

struct Decoded {
  std::vector<BatchPtr> batches;
  SchemaPtr schema;
  int64_t skipped = 0;
  std::string Rows() const {
    if (batches.empty()) return "[]";
    auto all = Concatenate(batches);
    return all.ok() ? (*all)->ToString() : all.status().ToString();
  }
};

Result<Decoded> Decode(std::string_view input, DecodeOptions options,
                       std::vector<size_t> splits = {}) {
  SLUICE_ASSIGN_OR_RETURN(auto dec, CsvDecoder::Make(std::move(options)));
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

TEST(CsvEncoderTest, WritesEveryTypeWithQuotingAndNulls) {
  ASSERT_OK_AND_ASSIGN(
      auto batch,
      BatchFromJson(AllTypes(),
                    R"([[true, -42, 1.5, "a,b", "00ff", "2024-05-01T12:00:00Z", "0101", {"k":"v"}],
                        [false, 7, 2.0, "say \"hi\"\nbye", "", 0, "", [1,2]],
                        [null, null, null, "", null, null, null, null]])"));
  EXPECT_EQ(Encode(batch),
            "b,i,f,s,y,t,g,j\n"
            "true,-42,1.5,\"a,b\",00ff,2024-05-01T12:00:00Z,0101,\"{\"\"k\"\":\"\"v\"\"}\"\n"
            "false,7,2.0,\"say \"\"hi\"\"\nbye\",\"\",1970-01-01T00:00:00Z,\"\",\"[1,2]\"\n"
            ",,,\"\",,,,\n");
}

TEST(CsvEncoderTest, HeaderIsOptionalAndNamesAreQuoted) {
  auto schema = MakeSchema({{"a;b", TypeId::kInt64}, {"c", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(schema, R"([[1,"x;y"]])"));
  EncodeOptions semicolon{';', true};
  EXPECT_EQ(Encode(batch, semicolon), "\"a;b\";c\n1;\"x;y\"\n");
  EncodeOptions no_header{',', false};
  EXPECT_EQ(Encode(batch, no_header), "1,x;y\n");
}

TEST(CsvEncoderTest, NonFiniteFloatsRoundTrip) {
  auto schema = MakeSchema({{"f", TypeId::kFloat64}});
  ColumnBuilder b(TypeId::kFloat64);
  b.AppendFloat64(std::numeric_limits<double>::infinity());
  b.AppendFloat64(-std::numeric_limits<double>::infinity());
  b.AppendFloat64(0.1);
  b.AppendFloat64(std::nan(""));
  b.AppendNull();
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 5);
  const std::string text = Encode(batch);
  EXPECT_EQ(text, "f\ninf\n-inf\n0.1\nnan\n\n");
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, DecodeOptions()));
  EXPECT_EQ(d.schema->ToString(), "f:float64");
  EXPECT_TRUE(std::isinf(d.batches[0]->column(0).GetFloat64(1)));
  EXPECT_TRUE(std::isnan(d.batches[0]->column(0).GetFloat64(3)));
  EXPECT_EQ(d.batches[0]->column(0).null_count(), 1);
  // PostgreSQL's and the JSON encoder's spellings read too, into a declared column.
  ASSERT_OK_AND_ASSIGN(Decoded pg, Decode("f\nNaN\nInfinity\n-Infinity\n", Declared(schema)));
  ASSERT_EQ(pg.batches.size(), 1u);
  EXPECT_TRUE(std::isnan(pg.batches[0]->column(0).GetFloat64(0)));
  EXPECT_EQ(pg.batches[0]->column(0).GetFloat64(1), std::numeric_limits<double>::infinity());
  EXPECT_EQ(pg.batches[0]->column(0).GetFloat64(2), -std::numeric_limits<double>::infinity());
}

TEST(CsvEncoderTest, TimestampsOutsideFourDigitYearsAreMicrosAndRoundTrip) {
  auto schema = MakeSchema({{"t", TypeId::kTimestamp}});
  ColumnBuilder b(TypeId::kTimestamp);
  b.AppendTimestamp(std::numeric_limits<int64_t>::max());
  b.AppendTimestamp(0);
  b.AppendTimestamp(std::numeric_limits<int64_t>::min());
  b.AppendTimestamp(253'402'300'800'000'000);  // 10000-01-01T00:00:00Z
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 4);
  const std::string text = Encode(batch);
  EXPECT_EQ(text, "t\ninfinity\n1970-01-01T00:00:00Z\n-infinity\n253402300800000000\n");
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(schema)));
  ASSERT_EQ(d.batches.size(), 1u);
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(0), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(1), 0);
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(2), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(d.batches[0]->column(0).GetInt64(3), 253'402'300'800'000'000);
}

TEST(CsvEncoderTest, ReportsRowEnds) {
  auto schema = MakeSchema({{"s", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(schema, R"([["a"],["b,c"]])"));
  CsvEncoder enc(schema, {});
  std::string out;
  std::vector<size_t> ends;
  enc.Encode(*batch, &out, &ends);
  EXPECT_EQ(out, "a\n\"b,c\"\n");
  EXPECT_EQ(ends, (std::vector<size_t>{2, 8}));
}

TEST(CsvRoundTripTest, EveryTypeWithDeclaredSchema) {
  const std::string rows =
      R"([[true,-42,1.5,"multi\nline, \"quoted\"","00ff","2024-05-01T12:00:00.25Z","0101000000000000000000f03f0000000000000040",{"a":[1,2.5]}],)"
      R"([false,9223372036854775807,3.0,"","","1969-12-31T23:59:59.999999Z","01020000000200000000000000000000000000000000000000000000000000f03f000000000000f03f",[]],)"
      R"([null,-9223372036854775808,1e-300,"日本 ok","ff","9999-12-31T00:00:00Z",null,"str"],)"
      R"([null,null,null,null,null,null,null,null]])";
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(AllTypes(), rows));
  const std::string text = Encode(batch);
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(AllTypes())));
  EXPECT_EQ(d.Rows(), batch->ToString());
  // Without a schema, the types that inference can see come back too.
  ASSERT_OK_AND_ASSIGN(Decoded inferred, Decode(text, DecodeOptions()));
  EXPECT_EQ(inferred.schema->ToString(),
            "b:bool, i:int64, f:float64, s:string, y:string, t:string, g:geometry, j:string");
}

TEST(CsvRoundTripTest, EverySplitPointGivesTheSameRows) {
  const std::string text =
      "id,name,score\r\n"
      "1,\"héllo, 日本\",1.5\r\n"
      "2,\"two\nlines \"\"quoted\"\"\",\n"
      "\n"
      "3,\xF0\x9F\x98\x80,-0.25\n"
      "4,\"\",7\n"
      "5,last no newline,8";
  ASSERT_OK_AND_ASSIGN(Decoded whole, Decode(text, DecodeOptions()));
  EXPECT_EQ(whole.schema->ToString(), "id:int64, name:string, score:float64");
  EXPECT_EQ(whole.Rows(),
            R"([[1,"héllo, 日本",1.5],[2,"two\nlines \"quoted\"",null],[3,"😀",-0.25],)"
            R"([4,"",7.0],[5,"last no newline",8.0]])");
  for (size_t split = 0; split <= text.size(); ++split) {
    ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, DecodeOptions(), {split}));
    EXPECT_EQ(d.Rows(), whole.Rows()) << "split at " << split;
  }
  std::vector<size_t> every_byte;
  for (size_t i = 1; i < text.size(); ++i) every_byte.push_back(i);
  ASSERT_OK_AND_ASSIGN(Decoded bytewise, Decode(text, DecodeOptions(), every_byte));
  EXPECT_EQ(bytewise.Rows(), whole.Rows());
}

TEST(CsvDecoderTest, DeclaredSchemaMatchesHeaderByName) {
  auto schema = MakeSchema({{"score", TypeId::kFloat64}, {"id", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("id,extra,score\n1,x,2.5\n2,y,\n", Declared(schema)));
  EXPECT_EQ(d.Rows(), "[[2.5,1],[null,2]]");
  EXPECT_THAT(Decode("id,extra\n1,x\n", Declared(schema)),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 1: column 'score' of the schema is not in the header")));
}

TEST(CsvDecoderTest, WithoutHeaderFieldsArePositional) {
  DecodeOptions o = Declared(MakeSchema({{"a", TypeId::kInt64}, {"b", TypeId::kString}}));
  o.header = false;
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("1,x\n2,y\n", o));
  EXPECT_EQ(d.Rows(), R"([[1,"x"],[2,"y"]])");
  DecodeOptions inferred;
  inferred.header = false;
  inferred.delimiter = '\t';
  ASSERT_OK_AND_ASSIGN(Decoded e, Decode("1\tx\n2\ty\n", inferred));
  EXPECT_EQ(e.schema->ToString(), "c1:int64, c2:string");
  EXPECT_EQ(e.Rows(), R"([[1,"x"],[2,"y"]])");
}

TEST(CsvDecoderTest, RaggedRowsAreErrors) {
  EXPECT_THAT(Decode("a,b\n1,2\n3\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, "line 3: expected 2 fields, got 1"));
  EXPECT_THAT(Decode("a,b\n1,\"x\ny\"\n3,4,5\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, "line 4: expected 2 fields, got 3"));
}

TEST(CsvDecoderTest, MalformedQuotingIsAnErrorWithTheLine) {
  EXPECT_THAT(Decode("a,b\n1,ab\"c\n", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 2: quote in an unquoted")));
  EXPECT_THAT(
      Decode("a,b\n1,\"ab\"c\n", DecodeOptions()),
      StatusIs(StatusCode::kInvalidArgument, "line 2: unexpected 'c' after a closing quote"));
  EXPECT_THAT(Decode("a,b\n1,2\n3,\"open\nstill open", DecodeOptions()),
              StatusIs(StatusCode::kInvalidArgument, "line 3: unterminated quoted field"));
}

TEST(CsvDecoderTest, BadValuesNameLineColumnAndText) {
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"t", TypeId::kTimestamp}});
  DecodeOptions o = Declared(schema);
  o.source_name = "data/x.csv";
  EXPECT_THAT(
      Decode("id,t\n1,2024-01-01\n\"2\nx\",2024-01-02\nzz,bad\n", o),
      StatusIs(StatusCode::kInvalidArgument, "data/x.csv:3: expected int64 for 'id', got '2?x'"));
  // The earliest bad line is reported, whichever column it is in.
  EXPECT_THAT(Decode("id,t\n1,2024-01-01\n2,nope\nx,2024-01-02\n", o),
              StatusIs(StatusCode::kInvalidArgument,
                       "data/x.csv:3: expected timestamp for 't', got 'nope'"));
  // A conversion error before a structural one is reported first.
  EXPECT_THAT(
      Decode("id,t\nx,2024-01-01\n1,2,3\n", o),
      StatusIs(StatusCode::kInvalidArgument, "data/x.csv:2: expected int64 for 'id', got 'x'"));
}

TEST(CsvDecoderTest, SkipModeDropsAndCountsBadRecords) {
  DecodeOptions o = Declared(MakeSchema({{"a", TypeId::kInt64}, {"b", TypeId::kString}}));
  o.on_error = OnError::kSkip;
  ASSERT_OK_AND_ASSIGN(Decoded d,
                       Decode("a,b\n1,x\nbad,y\n2\n3,\"q\"q\"\"\n4,\"ok\nok\"\n5,z\n", o));
  EXPECT_EQ(d.Rows(), R"([[1,"x"],[4,"ok\nok"],[5,"z"]])");
  EXPECT_EQ(d.skipped, 3);
}

TEST(CsvDecoderTest, NullsAndEmptyStrings) {
  auto schema = MakeSchema({{"s", TypeId::kString}, {"i", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("s,i\n,\n\"\",\"\"\nx, 5 \n", Declared(schema)));
  EXPECT_EQ(d.Rows(), R"([[null,null],["",null],["x",5]])");
}

TEST(CsvDecoderTest, OneColumnBlankLinesAreNulls) {
  auto schema = MakeSchema({{"s", TypeId::kString}});
  ColumnBuilder b(TypeId::kString);
  b.AppendString("a");
  b.AppendNull();
  b.AppendString("");
  auto batch = Batch::MakeUnchecked(schema, {b.Finish()}, 3);
  const std::string text = Encode(batch);
  EXPECT_EQ(text, "s\na\n\n\"\"\n");
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, Declared(schema)));
  EXPECT_EQ(d.Rows(), R"([["a"],[null],[""]])");
}

TEST(CsvDecoderTest, InfersBoolsIntsFloatsAndStrings) {
  ASSERT_OK_AND_ASSIGN(
      Decoded d, Decode("a,b,c,d,e,f\n1,1,TRUE,x,,Nan\n2,2.5,false,3,,nan\n", DecodeOptions()));
  EXPECT_EQ(d.schema->ToString(), "a:int64, b:float64, c:bool, d:string, e:string, f:string");
  EXPECT_EQ(d.Rows(), R"([[1,1.0,true,"x",null,"Nan"],[2,2.5,false,"3",null,"nan"]])");
}

TEST(CsvDecoderTest, InferenceLooksOnlyAtInferRows) {
  DecodeOptions o;
  o.infer_rows = 2;
  EXPECT_THAT(
      Decode("a\n1\n2\nthree\n", o),
      StatusIs(StatusCode::kInvalidArgument, "line 4: expected int64 for 'a', got 'three'"));
}

TEST(CsvDecoderTest, SplitsIntoBatchesOfBatchRows) {
  DecodeOptions o;
  o.batch_rows = 2;
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("a\n1\n2\n3\n4\n5\n", o));
  ASSERT_EQ(d.batches.size(), 3u);
  EXPECT_EQ(d.batches[0]->num_rows(), 2);
  EXPECT_EQ(d.batches[2]->num_rows(), 1);
  EXPECT_EQ(d.Rows(), "[[1],[2],[3],[4],[5]]");
}

TEST(CsvDecoderTest, BlankLinesBeforeTheHeaderAreSkipped) {
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode("\n\r\na,b\n1,2\n", DecodeOptions()));
  EXPECT_EQ(d.schema->ToString(), "a:int64, b:int64");
  EXPECT_EQ(d.Rows(), "[[1,2]]");
}

TEST(CsvDecoderTest, HeaderProblems) {
  EXPECT_THAT(
      Decode("a,a\n1,2\n", DecodeOptions()),
      StatusIs(StatusCode::kInvalidArgument, "line 1: duplicate column name 'a' in the header"));
  ASSERT_OK_AND_ASSIGN(Decoded only_header, Decode("a,b\n", DecodeOptions()));
  EXPECT_EQ(only_header.schema->ToString(), "a:string, b:string");
  EXPECT_TRUE(only_header.batches.empty());
  ASSERT_OK_AND_ASSIGN(Decoded bom, Decode("\xEF\xBB\xBFx,y\n1,2\n", DecodeOptions(), {2}));
  EXPECT_EQ(bom.schema->ToString(), "x:int64, y:int64");
}

TEST(CsvDecoderTest, RejectsBadDelimiters) {
  DecodeOptions o;
  o.delimiter = '"';
  EXPECT_THAT(CsvDecoder::Make(o), StatusIs(StatusCode::kInvalidArgument, HasSubstr("delimiter")));
  o.delimiter = '-';
  EXPECT_THAT(CsvDecoder::Make(o), StatusIs(StatusCode::kInvalidArgument, HasSubstr("delimiter")));
}

TEST(CsvDecoderTest, LongRecordsAcrossManySmallChunks) {
  std::string big(300000, 'x');
  const std::string text = "a,b\n1,\"" + big + "\nmore\"\n2,y\n";
  std::vector<size_t> splits;
  for (size_t i = 1000; i < text.size(); i += 1000) splits.push_back(i);
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(text, DecodeOptions(), splits));
  ASSERT_EQ(d.batches.size(), 1u);
  EXPECT_EQ(d.batches[0]->column(1).GetView(0), big + "\nmore");
  EXPECT_EQ(d.batches[0]->column(1).GetView(1), "y");
}

}  // namespace
}  // namespace sluice::io
