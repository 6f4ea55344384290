// Fuzzes the PostgreSQL binary decoders (pg_types.h) on arbitrary bytes. The first byte picks:
//   0: DecodeValue of the rest as one value of every codec, into every sluice type CanDecode
//      allows; a value that decodes and encodes back (CopyBinaryEncoder) must decode to the
//      same value again;
//   1: CopyBinaryDecoder on the rest as a binary COPY stream of 1-4 columns whose codecs the
//      next bytes pick, fed in two chunks split where another byte says; every builder must
//      hold exactly the rows reported;
//   2: the text parsers the sink uses (EncodeNumeric, ParseDate, ParseUuid) on the rest, and
//      their round trips (a numeric re-read from its binary form, a date re-formatted).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/core/batch.h"

namespace {

using sluice::BatchPtr;
using sluice::Column;
using sluice::ColumnBuilder;
using sluice::TypeId;
using sluice::pg::PgCodec;

constexpr PgCodec kCodecs[] = {PgCodec::kBool,   PgCodec::kInt2,      PgCodec::kInt4,
                               PgCodec::kInt8,   PgCodec::kOid,       PgCodec::kFloat4,
                               PgCodec::kFloat8, PgCodec::kNumeric,   PgCodec::kText,
                               PgCodec::kBytea,  PgCodec::kJson,      PgCodec::kJsonb,
                               PgCodec::kUuid,   PgCodec::kTimestamp, PgCodec::kTimestampTz,
                               PgCodec::kDate,   PgCodec::kGeometry};
constexpr int kNumCodecs = sizeof(kCodecs) / sizeof(kCodecs[0]);

void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "pg_binary_fuzz: %s\n", what);
    std::abort();
  }
}

bool SameCell(const Column& a, const Column& b) {
  if (a.IsNull(0) != b.IsNull(0)) return false;
  if (a.IsNull(0)) return true;
  switch (a.type()) {
    case TypeId::kBool:
      return a.GetBool(0) == b.GetBool(0);
    case TypeId::kFloat64: {
      const double x = a.GetFloat64(0);
      const double y = b.GetFloat64(0);
      return (std::isnan(x) && std::isnan(y)) || std::memcmp(&x, &y, sizeof(x)) == 0;
    }
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return a.GetInt64(0) == b.GetInt64(0);
    default:
      return a.GetView(0) == b.GetView(0);
  }
}

// Decode one binary COPY value of `codec` from a one-row stream; false if it does not decode.
bool DecodeOne(PgCodec codec, TypeId type, std::string_view stream, Column* out) {
  sluice::pg::CopyBinaryDecoder decoder(sluice::MakeSchema({{"v", type}}), {codec});
  std::vector<ColumnBuilder> builders;
  builders.emplace_back(type);
  int64_t rows = 0;
  if (!decoder.Consume(stream, &builders, &rows).ok() || rows != 1) return false;
  *out = builders[0].Finish();
  return true;
}

void FuzzValues(std::string_view value) {
  std::string scratch;
  for (PgCodec codec : kCodecs) {
    for (int t = 0; t < sluice::kNumTypes; ++t) {
      const auto type = static_cast<TypeId>(t);
      if (!sluice::pg::CanDecode(codec, type)) continue;
      ColumnBuilder builder(type);
      if (!sluice::pg::DecodeValue(codec, value, &builder, &scratch).ok()) {
        Check(builder.length() == 0, "a failed decode appended a value");
        continue;
      }
      Check(builder.length() == 1, "a decode appended other than one value");
      Column first = builder.Finish();
      // Encode it back with the same codec and decode again: the same value.
      if (!sluice::pg::CanEncode(type, codec)) continue;
      auto encoder =
          sluice::pg::CopyBinaryEncoder::Make(sluice::MakeSchema({{"v", type}}), {codec});
      Check(encoder.ok(), "CanEncode allowed an encoder Make refuses");
      auto batch = sluice::Batch::Make(sluice::MakeSchema({{"v", type}}), {first});
      Check(batch.ok(), "one decoded value is not a batch");
      std::string stream;
      sluice::pg::CopyBinaryEncoder::AppendHeader(&stream);
      if (!encoder->AppendRows(**batch, 0, 1, &stream).ok()) continue;  // e.g. int2 from int64
      sluice::pg::CopyBinaryEncoder::AppendTrailer(&stream);
      Column second;
      Check(DecodeOne(codec, type, stream, &second), "an encoded value does not decode");
      // numeric has no negative zero: -0.0 read from a tiny negative numeric comes back as 0.
      const bool zeros = codec == PgCodec::kNumeric && type == TypeId::kFloat64 &&
                         first.GetFloat64(0) == 0 && second.GetFloat64(0) == 0;
      if (!zeros && !SameCell(first, second)) {
        std::fprintf(stderr, "codec %s, type %s: '%s' became '%s'\n",
                     std::string(sluice::pg::PgCodecName(codec)).c_str(),
                     std::string(sluice::TypeName(type)).c_str(),
                     IsVarWidth(type) ? std::string(first.GetView(0)).c_str() : "?",
                     IsVarWidth(type) ? std::string(second.GetView(0)).c_str() : "?");
        Check(false, "a value changed through encode and decode");
      }
    }
  }
}

void FuzzStream(const uint8_t* data, size_t size) {
  if (size < 2) return;
  const int columns = 1 + data[0] % 4;
  const size_t split_byte = data[1];
  data += 2;
  size -= 2;
  if (size < static_cast<size_t>(columns)) return;
  std::vector<sluice::Field> fields;
  std::vector<PgCodec> codecs;
  for (int c = 0; c < columns; ++c) {
    const PgCodec codec = kCodecs[data[c] % kNumCodecs];
    codecs.push_back(codec);
    std::string name = "c";  // appended in two steps: `"c" + ...` trips GCC 12's -Wrestrict
    name += std::to_string(c);
    fields.push_back({std::move(name), sluice::pg::DefaultTypeFor(codec), true});
  }
  data += columns;
  size -= static_cast<size_t>(columns);
  const sluice::SchemaPtr schema = sluice::MakeSchema(fields);
  sluice::pg::CopyBinaryDecoder decoder(schema, codecs);
  std::vector<ColumnBuilder> builders;
  for (const sluice::Field& f : fields) builders.emplace_back(f.type);
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const size_t split = size == 0 ? 0 : split_byte * size / 255;
  int64_t rows = 0;
  sluice::Status st = decoder.Consume(bytes.substr(0, split), &builders, &rows);
  if (st.ok()) st = decoder.Consume(bytes.substr(split), &builders, &rows);
  if (!st.ok()) return;  // a failed row may leave builders uneven: the caller drops them
  for (const ColumnBuilder& b : builders) {
    Check(b.length() == rows, "builders disagree with the rows decoded");
  }
}

void FuzzText(std::string_view text) {
  std::string binary;
  if (sluice::pg::EncodeNumeric(text, &binary).ok()) {
    std::string decimal;
    Check(sluice::pg::NumericToText(binary, &decimal).ok(), "an encoded numeric does not decode");
    std::string again;
    Check(sluice::pg::EncodeNumeric(decimal, &again).ok(), "a numeric's text does not re-encode");
    std::string decimal2;
    Check(sluice::pg::NumericToText(again, &decimal2).ok() && decimal2 == decimal,
          "a numeric changed through its text");
  }
  if (auto days = sluice::pg::ParseDate(text); days.ok()) {
    char buf[sluice::pg::kMaxDateChars];
    const std::string_view formatted(buf, sluice::pg::FormatDate(*days, buf));
    auto again = sluice::pg::ParseDate(formatted);
    Check(again.ok() && *again == *days, "a date changed through its text");
  }
  uint8_t uuid[16];
  if (sluice::pg::ParseUuid(text, uuid).ok()) {
    char formatted[36];
    sluice::pg::FormatUuid(uuid, formatted);
    uint8_t again[16];
    Check(sluice::pg::ParseUuid(std::string_view(formatted, 36), again).ok() &&
              std::memcmp(uuid, again, 16) == 0,
          "a uuid changed through its text");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t mode = data[0] % 3;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (mode) {
    case 0:
      FuzzValues(rest);
      break;
    case 1:
      FuzzStream(data + 1, size - 1);
      break;
    default:
      FuzzText(rest);
      break;
  }
  return 0;
}
