#include "sluice/connectors/postgres/pg_types.h"

#include <cmath>
#include <cstring>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/core/time.h"
#include "sluice/testing/matchers.h"

namespace sluice::pg {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

std::string Hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string Unhex(std::string_view hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// Encode `batch` as a whole binary COPY stream with `targets`.
std::string EncodeStream(const BatchPtr& batch, std::vector<PgCodec> targets) {
  auto encoder = CopyBinaryEncoder::Make(batch->schema(), std::move(targets));
  EXPECT_THAT(encoder, IsOk());
  std::string out;
  CopyBinaryEncoder::AppendHeader(&out);
  EXPECT_THAT(encoder->AppendRows(*batch, 0, batch->num_rows(), &out), IsOk());
  CopyBinaryEncoder::AppendTrailer(&out);
  return out;
}

// Decode a binary COPY stream fed in chunks of `chunk` bytes into a batch of `schema`.
Result<BatchPtr> DecodeStream(const SchemaPtr& schema, std::vector<PgCodec> codecs,
                              std::string_view stream, size_t chunk = SIZE_MAX) {
  CopyBinaryDecoder decoder(schema, std::move(codecs));
  std::vector<ColumnBuilder> builders;
  for (const Field& f : schema->fields()) builders.emplace_back(f.type);
  int64_t rows = 0;
  for (size_t pos = 0; pos < stream.size(); pos += chunk) {
    SLUICE_RETURN_NOT_OK(decoder.Consume(stream.substr(pos, chunk), &builders, &rows));
  }
  if (!decoder.finished()) return Status::Invalid("no trailer");
  std::vector<Column> columns;
  columns.reserve(builders.size());
  for (auto& b : builders) columns.push_back(b.Finish());
  return Batch::Make(schema, std::move(columns));
}

// A point at (1, 2) with SRID 4326, as PostGIS sends it (EWKB, little-endian).
constexpr const char* kEwkbPoint = "0101000020e6100000000000000000f03f0000000000000040";

SchemaPtr EveryTypeSchema() {
  return MakeSchema({{"b", TypeId::kBool},
                     {"i8", TypeId::kInt64},
                     {"i4", TypeId::kInt64},
                     {"i2", TypeId::kInt64},
                     {"f8", TypeId::kFloat64},
                     {"f4", TypeId::kFloat64},
                     {"num", TypeId::kString},
                     {"numf", TypeId::kFloat64},
                     {"t", TypeId::kString},
                     {"y", TypeId::kBytes},
                     {"tstz", TypeId::kTimestamp},
                     {"ts", TypeId::kTimestamp},
                     {"d", TypeId::kTimestamp},
                     {"jb", TypeId::kJson},
                     {"j", TypeId::kJson},
                     {"u", TypeId::kString},
                     {"g", TypeId::kGeometry}});
}

const std::vector<PgCodec>& EveryTypeCodecs() {
  static const std::vector<PgCodec> kCodecs = {
      PgCodec::kBool,    PgCodec::kInt8,   PgCodec::kInt4,        PgCodec::kInt2,
      PgCodec::kFloat8,  PgCodec::kFloat4, PgCodec::kNumeric,     PgCodec::kNumeric,
      PgCodec::kText,    PgCodec::kBytea,  PgCodec::kTimestampTz, PgCodec::kTimestamp,
      PgCodec::kDate,    PgCodec::kJsonb,  PgCodec::kJson,        PgCodec::kUuid,
      PgCodec::kGeometry};
  return kCodecs;
}

TEST(PgTypesTest, EveryTypeRoundTripsThroughBinaryCopyIncludingNulls) {
  const std::string rows = std::string(R"([
    [true, 9223372036854775807, 2147483647, 32767, 1.5, 0.25, "12345.678", 2.5, "héllo ✓",
     "00ff10", "2024-02-29T23:59:59.999999Z", "2024-01-02T03:04:05Z", "2024-01-02T00:00:00Z",
     {"k": [1, 2]}, {"a": "b"}, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", ")") +
                           kEwkbPoint + R"("],
    [false, -9223372036854775808, -2147483648, -32768, -1e300, -3.5, "-0.001", -1e-7, "",
     "", "1969-12-31T23:59:59.999999Z", "1900-01-01T00:00:00Z", "1969-12-31T00:00:00Z",
     [], "null", "00000000-0000-0000-0000-000000000000", "00"],
    [null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
     null, null]
  ])";
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(EveryTypeSchema(), rows));
  const std::string stream = EncodeStream(batch, EveryTypeCodecs());
  ASSERT_OK_AND_ASSIGN(BatchPtr decoded,
                       DecodeStream(EveryTypeSchema(), EveryTypeCodecs(), stream));
  EXPECT_EQ(decoded->ToString(), batch->ToString());
  EXPECT_EQ(decoded->column(0).null_count(), 1);
  EXPECT_EQ(decoded->column(16).GetView(0), Unhex(kEwkbPoint));  // EWKB passes through as is
}

TEST(PgTypesTest, StreamSplitAtEveryByteDecodesTheSameRows) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"i", TypeId::kInt64}, {"s", TypeId::kString}}),
                                     R"([[1, "one"], [null, "two"], [3, null], [-4, "four"]])"));
  const std::vector<PgCodec> codecs = {PgCodec::kInt8, PgCodec::kText};
  const std::string stream = EncodeStream(batch, codecs);
  for (size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    ASSERT_OK_AND_ASSIGN(BatchPtr decoded, DecodeStream(batch->schema(), codecs, stream, chunk));
    EXPECT_EQ(decoded->ToString(), batch->ToString()) << "chunk " << chunk;
  }
}

TEST(PgTypesTest, HeaderTupleAndTrailerBytesFollowTheCopyFormat) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"i", TypeId::kInt64}, {"s", TypeId::kString}}),
                                     R"([[258, null]])"));
  const std::string stream = EncodeStream(batch, {PgCodec::kInt4, PgCodec::kText});
  EXPECT_EQ(Hex(stream),
            "5047434f50590aff0d0a00"  // PGCOPY\n\377\r\n\0
            "00000000"                // flags
            "00000000"                // header extension length
            "0002"                    // two fields
            "00000004"
            "00000102"  // int4 258
            "ffffffff"  // NULL
            "ffff");    // trailer
}

TEST(PgTypesTest, ValuesHaveThePostgresSendFormat) {
  auto one = [](TypeId type, PgCodec codec, const std::string& json) {
    auto batch = BatchFromJson(MakeSchema({{"c", type}}), "[[" + json + "]]");
    EXPECT_THAT(batch, IsOk());
    const std::string stream = EncodeStream(*batch, {codec});
    // Skip the header (19), field count (2) and length (4); drop the trailer (2).
    return Hex(stream.substr(25, stream.size() - 27));
  };
  EXPECT_EQ(one(TypeId::kJson, PgCodec::kJsonb, R"({"a":1})"), "01" + Hex(R"({"a":1})"));
  EXPECT_EQ(one(TypeId::kJson, PgCodec::kJson, R"({"a":1})"), Hex(R"({"a":1})"));
  EXPECT_EQ(one(TypeId::kTimestamp, PgCodec::kTimestampTz, R"("2000-01-01T00:00:00Z")"),
            "0000000000000000");
  // 1970-01-01 is 946684800 s before PostgreSQL's epoch.
  EXPECT_EQ(one(TypeId::kTimestamp, PgCodec::kTimestampTz, "0"), "fffca2fec4c82000");
  EXPECT_EQ(one(TypeId::kTimestamp, PgCodec::kDate, R"("1999-12-31T12:00:00Z")"), "ffffffff");
  EXPECT_EQ(one(TypeId::kString, PgCodec::kUuid, R"("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}")"),
            "a0eebc999c0b4ef8bb6d6bb9bd380a11");
  EXPECT_EQ(one(TypeId::kFloat64, PgCodec::kFloat8, "1.0"), "3ff0000000000000");
  EXPECT_EQ(one(TypeId::kBool, PgCodec::kBool, "true"), "01");
  // 12345.678: digits 1 2345 6780 (base 10000), weight 1, positive, display scale 3.
  EXPECT_EQ(one(TypeId::kString, PgCodec::kNumeric, R"("12345.678")"),
            "0003"
            "0001"
            "0000"
            "0003"
            "0001"
            "0929"
            "1a7c");
  EXPECT_EQ(one(TypeId::kGeometry, PgCodec::kGeometry, std::string("\"") + kEwkbPoint + "\""),
            kEwkbPoint);
}

TEST(PgTypesTest, NumericTextRoundTripsAtItsDisplayScale) {
  for (const std::string text :
       {"0", "0.00", "1", "-1", "10000", "9999", "0.0001", "-0.5", "12345.678",
        "123456789012345678901234567890.123456789", "0.000000000100", "-9223372036854775808", "NaN",
        "Infinity", "-Infinity"}) {
    std::string bytes;
    ASSERT_THAT(EncodeNumeric(text, &bytes), IsOk()) << text;
    std::string back;
    ASSERT_THAT(NumericToText(bytes, &back), IsOk()) << text;
    EXPECT_EQ(back, text);
  }
}

TEST(PgTypesTest, NumericAcceptsExponentsAndRejectsGarbage) {
  auto text_of = [](std::string_view in) {
    std::string bytes;
    std::string out;
    EXPECT_THAT(EncodeNumeric(in, &bytes), IsOk()) << in;
    EXPECT_THAT(NumericToText(bytes, &out), IsOk()) << in;
    return out;
  };
  EXPECT_EQ(text_of("1.5e3"), "1500");
  EXPECT_EQ(text_of("1e-10"), "0.0000000001");
  EXPECT_EQ(text_of("+007.50"), "7.50");
  EXPECT_EQ(text_of("2.5E+2"), "250");
  for (std::string_view bad : {"", "-", "abc", "1..2", "1e", "1e+", "1.5x", "0x10"}) {
    std::string bytes;
    EXPECT_THAT(EncodeNumeric(bad, &bytes),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a valid numeric")))
        << bad;
  }
}

TEST(PgTypesTest, NumericFromNumbersAndToDouble) {
  std::string scratch;
  auto roundtrip_double = [&](double d) {
    std::string bytes;
    EncodeNumeric(d, &bytes);
    auto back = NumericToDouble(bytes, &scratch);
    EXPECT_THAT(back, IsOk());
    return back.ValueOr(0);
  };
  EXPECT_EQ(roundtrip_double(0.1), 0.1);
  EXPECT_EQ(roundtrip_double(-1e300), -1e300);
  EXPECT_EQ(roundtrip_double(5e-324), 5e-324);
  EXPECT_TRUE(std::isnan(roundtrip_double(std::nan(""))));
  EXPECT_EQ(roundtrip_double(-std::numeric_limits<double>::infinity()),
            -std::numeric_limits<double>::infinity());
  std::string bytes;
  EncodeNumeric(std::numeric_limits<int64_t>::min(), &bytes);
  std::string text;
  ASSERT_THAT(NumericToText(bytes, &text), IsOk());
  EXPECT_EQ(text, "-9223372036854775808");
  // Beyond double's range: infinity, like numeric::float8.
  bytes.clear();
  ASSERT_THAT(EncodeNumeric("1e400", &bytes), IsOk());
  EXPECT_EQ(NumericToDouble(bytes, &scratch).ValueOr(0), std::numeric_limits<double>::infinity());
}

TEST(PgTypesTest, TimestampsMapBetweenEpochsKeepingInfinity) {
  EXPECT_EQ(PgMicrosToUnix(0), kPgEpochOffsetMicros);
  EXPECT_EQ(UnixMicrosToPg(0), -kPgEpochOffsetMicros);
  EXPECT_EQ(UnixMicrosToPg(-1), -kPgEpochOffsetMicros - 1);  // before 1970 stays exact
  EXPECT_EQ(PgMicrosToUnix(UnixMicrosToPg(-12'345'678'901'234'567)), -12'345'678'901'234'567);
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  EXPECT_EQ(PgMicrosToUnix(kMax), kMax);
  EXPECT_EQ(UnixMicrosToPg(kMin), kMin);
  // Too early for PostgreSQL: not silently turned into -infinity.
  EXPECT_EQ(UnixMicrosToPg(kMin + 1), kMin + 1);
}

TEST(PgTypesTest, DateDecodesToMidnightUtcAndInfinity) {
  ColumnBuilder b(TypeId::kTimestamp);
  std::string scratch;
  ASSERT_THAT(DecodeValue(PgCodec::kDate, Unhex("ffffffff"), &b, &scratch), IsOk());
  ASSERT_THAT(DecodeValue(PgCodec::kDate, Unhex("7fffffff"), &b, &scratch), IsOk());
  const Column c = b.Finish();
  EXPECT_EQ(c.GetInt64(0), (kPgEpochOffsetDays - 1) * kMicrosPerDay);
  EXPECT_EQ(c.GetInt64(1), std::numeric_limits<int64_t>::max());
}

TEST(PgTypesTest, JsonbWithAnotherVersionByteIsAnError) {
  ColumnBuilder b(TypeId::kJson);
  std::string scratch;
  EXPECT_THAT(DecodeValue(PgCodec::kJsonb, "\x02{}", &b, &scratch),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("jsonb version 2")));
  ASSERT_THAT(DecodeValue(PgCodec::kJsonb, "\x01{}", &b, &scratch), IsOk());
  EXPECT_EQ(b.Finish().GetView(0), "{}");
}

TEST(PgTypesTest, WrongSizedFixedValuesAreErrors) {
  ColumnBuilder b(TypeId::kInt64);
  std::string scratch;
  EXPECT_THAT(DecodeValue(PgCodec::kInt8, "1234", &b, &scratch),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("int8 value of 4 bytes")));
}

TEST(PgTypesTest, UuidParsesTheFormsPostgresAcceptsAndFormatsLowerCase) {
  uint8_t bytes[16];
  for (std::string_view text :
       {"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "A0EEBC999C0B4EF8BB6D6BB9BD380A11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}", "a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11"}) {
    ASSERT_THAT(ParseUuid(text, bytes), IsOk()) << text;
    char out[36];
    FormatUuid(bytes, out);
    EXPECT_EQ(std::string_view(out, 36), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
  }
  for (std::string_view bad :
       {"", "a0eebc99", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", "-a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a0eebc99--9c0b4ef8bb6d6bb9bd380a11", "a0eebc999c0b4ef8bb6d6bb9bd380a1100"}) {
    EXPECT_THAT(ParseUuid(bad, bytes),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("not a valid uuid")))
        << bad;
  }
}

TEST(PgTypesTest, ValuesOutsideTheTargetTypeNameRowAndColumn) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"n", TypeId::kInt64}}), "[[1], [2147483648]]"));
  ASSERT_OK_AND_ASSIGN(CopyBinaryEncoder encoder,
                       CopyBinaryEncoder::Make(batch->schema(), {PgCodec::kInt4}));
  std::string out = "keep";
  EXPECT_THAT(encoder.AppendRows(*batch, 0, 2, &out),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("row 1, column 'n': 2147483648 does not fit in int4")));
  EXPECT_EQ(out, "keep");

  ASSERT_OK_AND_ASSIGN(BatchPtr text,
                       BatchFromJson(MakeSchema({{"u", TypeId::kString}}), R"([["not-a-uuid"]])"));
  ASSERT_OK_AND_ASSIGN(CopyBinaryEncoder uuid,
                       CopyBinaryEncoder::Make(text->schema(), {PgCodec::kUuid}));
  EXPECT_THAT(uuid.AppendRows(*text, 0, 1, &out),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("row 0, column 'u'")));
}

TEST(PgTypesTest, EncoderRefusesTypePairsThatDoNotConvert) {
  EXPECT_THAT(CopyBinaryEncoder::Make(MakeSchema({{"flag", TypeId::kBool}}), {PgCodec::kInt8}),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("column 'flag': cannot write bool values to a PostgreSQL int8")));
}

TEST(PgTypesTest, EncodesASliceOfABatch) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(MakeSchema({{"s", TypeId::kString}}),
                                                     R"([["a"], [null], ["c"], ["d"]])"));
  BatchPtr slice = batch->Slice(1, 2);
  const std::string stream = EncodeStream(slice, {PgCodec::kText});
  ASSERT_OK_AND_ASSIGN(BatchPtr decoded, DecodeStream(slice->schema(), {PgCodec::kText}, stream));
  EXPECT_EQ(decoded->ToString(), R"([[null],["c"]])");
}

TEST(PgTypesTest, CodecsForTypesByOidAndByName) {
  EXPECT_EQ(CodecForType(oids::kVarchar), PgCodec::kText);
  EXPECT_EQ(CodecForType(99999, "geometry"), PgCodec::kGeometry);
  EXPECT_EQ(CodecForType(99998, "mood", 'e'), PgCodec::kText);
  EXPECT_EQ(CodecForType(1186, "interval"), std::nullopt);
  // Defaults that keep every value: exact decimals, exact JSON text, dates as text.
  EXPECT_EQ(DefaultTypeFor(PgCodec::kNumeric), TypeId::kString);
  EXPECT_EQ(DefaultTypeFor(PgCodec::kJson), TypeId::kString);
  EXPECT_EQ(DefaultTypeFor(PgCodec::kJsonb), TypeId::kString);
  EXPECT_EQ(DefaultTypeFor(PgCodec::kDate), TypeId::kString);
  EXPECT_EQ(DefaultTypeFor(PgCodec::kTimestampTz), TypeId::kTimestamp);
  EXPECT_TRUE(CanDecode(PgCodec::kNumeric, TypeId::kFloat64));
  EXPECT_TRUE(CanDecode(PgCodec::kJsonb, TypeId::kJson));
  EXPECT_TRUE(CanDecode(PgCodec::kDate, TypeId::kTimestamp));
  EXPECT_FALSE(CanDecode(PgCodec::kTimestampTz, TypeId::kString));
  EXPECT_TRUE(CanEncode(TypeId::kString, PgCodec::kDate));
  EXPECT_EQ(PgTypeNameFor(TypeId::kFloat64), "double precision");
  EXPECT_EQ(PgTypeNameFor(TypeId::kJson), "jsonb");
}

TEST(PgTypesTest, DatesFormatAndParseLikePostgres) {
  auto format = [](int32_t days) {
    char buf[kMaxDateChars];
    return std::string(buf, FormatDate(days, buf));
  };
  EXPECT_EQ(format(0), "2000-01-01");
  EXPECT_EQ(format(-1), "1999-12-31");
  EXPECT_EQ(format(2'145'031'948), "5874897-12-31");
  EXPECT_EQ(format(-2'451'545), "4714-11-24 BC");
  EXPECT_EQ(format(-730'119), "0001-01-01");
  EXPECT_EQ(format(std::numeric_limits<int32_t>::max()), "infinity");
  EXPECT_EQ(format(std::numeric_limits<int32_t>::min()), "-infinity");
  for (const char* text :
       {"2000-01-01", "1969-07-20", "5874897-12-31", "4714-11-24 BC", "0044-03-15 BC",
        "0001-12-31 BC", "0001-01-01", "10000-01-01", "2024-02-29", "infinity", "-infinity"}) {
    ASSERT_OK_AND_ASSIGN(int32_t days, ParseDate(text));
    EXPECT_EQ(format(days), text);
  }
  for (const char* bad : {"", "2024-02-30", "2023-13-01", "24-01-01", "2024-1-01", "0000-01-01 BC",
                          "5874898-01-01", "4714-11-23 BC", "2024-01-01x"}) {
    EXPECT_THAT(ParseDate(bad), StatusIs(StatusCode::kInvalidArgument, HasSubstr("date"))) << bad;
  }
}

TEST(PgTypesTest, DatesDecodeToTextAndToTimestampsWithoutOverflow) {
  auto date = [](int32_t days) {
    std::string v(4, '\0');
    const uint32_t be = __builtin_bswap32(static_cast<uint32_t>(days));
    std::memcpy(v.data(), &be, 4);
    return v;
  };
  std::string scratch;
  ColumnBuilder text(TypeId::kString);
  ASSERT_THAT(DecodeValue(PgCodec::kDate, date(2'145'031'948), &text, &scratch), IsOk());
  ASSERT_THAT(DecodeValue(PgCodec::kDate, date(INT32_MAX), &text, &scratch), IsOk());
  Column col = text.Finish();
  EXPECT_EQ(col.GetView(0), "5874897-12-31");
  EXPECT_EQ(col.GetView(1), "infinity");

  ColumnBuilder ts(TypeId::kTimestamp);
  ASSERT_THAT(DecodeValue(PgCodec::kDate, date(-10'957), &ts, &scratch), IsOk());
  ASSERT_THAT(DecodeValue(PgCodec::kDate, date(INT32_MIN), &ts, &scratch), IsOk());
  EXPECT_THAT(DecodeValue(PgCodec::kDate, date(2'145'031'948), &ts, &scratch),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("date 5874897-12-31 is beyond the range of a timestamp")));
  Column t = ts.Finish();
  EXPECT_EQ(t.GetInt64(0), 0);
  EXPECT_EQ(t.GetInt64(1), std::numeric_limits<int64_t>::min());

  // Text dates encode back to the same days.
  ASSERT_OK_AND_ASSIGN(
      BatchPtr batch,
      BatchFromJson(MakeSchema({{"d", TypeId::kString}}),
                    R"([["5874897-12-31"], ["-infinity"], [null], ["0044-03-15 BC"]])"));
  const std::string stream = EncodeStream(batch, {PgCodec::kDate});
  ASSERT_OK_AND_ASSIGN(BatchPtr back, DecodeStream(batch->schema(), {PgCodec::kDate}, stream));
  EXPECT_EQ(back->ToString(), batch->ToString());
  ASSERT_OK_AND_ASSIGN(BatchPtr bad,
                       BatchFromJson(MakeSchema({{"d", TypeId::kString}}), R"([["2024-02-30"]])"));
  ASSERT_OK_AND_ASSIGN(CopyBinaryEncoder encoder,
                       CopyBinaryEncoder::Make(bad->schema(), {PgCodec::kDate}));
  std::string out;
  EXPECT_THAT(encoder.AppendRows(*bad, 0, 1, &out),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("row 0, column 'd'")));
}

TEST(PgTypesTest, ExactValuesSurviveDecodeAndEncode) {
  // Numerics beyond double precision, NaN and infinities, as exact decimal strings.
  ASSERT_OK_AND_ASSIGN(BatchPtr numerics, BatchFromJson(MakeSchema({{"n", TypeId::kString}}),
                                                        R"([["12345678901234567890.1234567890"],
                        ["99999999999999999999999999999999999999.5"], ["NaN"], ["Infinity"],
                        ["-Infinity"], ["-0.000000000000000000000001"], ["0.00"], [null]])"));
  const std::string stream = EncodeStream(numerics, {PgCodec::kNumeric});
  ASSERT_OK_AND_ASSIGN(BatchPtr back,
                       DecodeStream(numerics->schema(), {PgCodec::kNumeric}, stream));
  EXPECT_EQ(back->ToString(), numerics->ToString());

  // Floats: NaN and infinities are values, not nulls.
  ColumnBuilder floats(TypeId::kFloat64);
  std::string scratch;
  for (double d :
       {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity(),
        -std::numeric_limits<double>::infinity(), -0.0}) {
    uint64_t bits;
    std::memcpy(&bits, &d, 8);
    bits = __builtin_bswap64(bits);
    ASSERT_THAT(DecodeValue(PgCodec::kFloat8, std::string_view(reinterpret_cast<char*>(&bits), 8),
                            &floats, &scratch),
                IsOk());
  }
  Column f = floats.Finish();
  EXPECT_EQ(f.null_count(), 0);
  EXPECT_TRUE(std::isnan(f.GetFloat64(0)));
  EXPECT_EQ(f.GetFloat64(1), std::numeric_limits<double>::infinity());
  EXPECT_EQ(f.GetFloat64(2), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::signbit(f.GetFloat64(3)));

  // Timestamps ±infinity stay INT64_MAX / INT64_MIN both ways.
  EXPECT_EQ(PgMicrosToUnix(std::numeric_limits<int64_t>::max()),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(UnixMicrosToPg(std::numeric_limits<int64_t>::min()),
            std::numeric_limits<int64_t>::min());

  // The last 30 years PostgreSQL allows do not fit in Unix µs: an error, not another instant.
  ColumnBuilder late(TypeId::kTimestamp);
  const uint64_t end_of_time = __builtin_bswap64(9'223'371'331'200'000'000ULL - 1);
  EXPECT_THAT(DecodeValue(PgCodec::kTimestampTz,
                          std::string_view(reinterpret_cast<const char*>(&end_of_time), 8), &late,
                          &scratch),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("read the column as string")));
  const uint64_t last = __builtin_bswap64(
      static_cast<uint64_t>(std::numeric_limits<int64_t>::max() - 1 - kPgEpochOffsetMicros));
  ASSERT_THAT(
      DecodeValue(PgCodec::kTimestamp, std::string_view(reinterpret_cast<const char*>(&last), 8),
                  &late, &scratch),
      IsOk());
  EXPECT_EQ(late.Finish().GetInt64(0), std::numeric_limits<int64_t>::max() - 1);

  // JSON text as it is, 'null' included.
  ColumnBuilder json(TypeId::kString);
  ASSERT_THAT(DecodeValue(PgCodec::kJson, R"({"a" :1,  "a":2})", &json, &scratch), IsOk());
  ASSERT_THAT(DecodeValue(PgCodec::kJsonb, std::string("\1null", 5), &json, &scratch), IsOk());
  Column j = json.Finish();
  EXPECT_EQ(j.GetView(0), R"({"a" :1,  "a":2})");
  EXPECT_EQ(j.GetView(1), "null");
  EXPECT_EQ(j.null_count(), 0);
}

TEST(PgTypesTest, UnnormalizedNumericsPrintAsTheirNumber) {
  // Found by pg_binary_fuzz: a leading zero digit group printed as "05...", and a negative
  // zero as "-0"; neither reads back as the same text.
  std::string text;
  ASSERT_THAT(NumericToText(Unhex("0002000100000000"
                                  "0000"
                                  "0005"),
                            &text),
              IsOk());
  EXPECT_EQ(text, "5");
  ASSERT_THAT(NumericToText(Unhex("0001000040000002"
                                  "0000"),
                            &text),
              IsOk());
  EXPECT_EQ(text, "0.00");
  ASSERT_THAT(NumericToText(Unhex("00010000400000000001"), &text), IsOk());
  EXPECT_EQ(text, "-1");
  EXPECT_THAT(NumericToText(Unhex("000000000000ffff"), &text),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("display scale")));
}

TEST(PgTypesTest, CorruptStreamsAreErrors) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(MakeSchema({{"i", TypeId::kInt64}}), "[[1]]"));
  std::string stream = EncodeStream(batch, {PgCodec::kInt8});
  std::string bad_signature = stream;
  bad_signature[0] = 'X';
  EXPECT_THAT(DecodeStream(batch->schema(), {PgCodec::kInt8}, bad_signature),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("bad signature")));
  EXPECT_THAT(DecodeStream(MakeSchema({{"i", TypeId::kInt64}, {"j", TypeId::kInt64}}),
                           {PgCodec::kInt8, PgCodec::kInt8}, stream),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("1 fields, expected 2")));
  EXPECT_THAT(DecodeStream(batch->schema(), {PgCodec::kInt8}, stream + "xx"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("after its trailer")));
}

}  // namespace
}  // namespace sluice::pg
