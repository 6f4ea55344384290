#include "sluice/connectors/postgres/pg_types.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/connectors/postgres/postgres_internal.h"
#include "sluice/core/time.h"

namespace sluice::pg {

namespace {

constexpr char kCopySignature[] = "PGCOPY\n\377\r\n";  // 11 bytes with the trailing NUL
constexpr size_t kCopySignatureSize = 11;

// Numeric's sign word (src/backend/utils/adt/numeric.c).
constexpr uint16_t kNumericPos = 0x0000;
constexpr uint16_t kNumericNeg = 0x4000;
constexpr uint16_t kNumericNaN = 0xC000;
constexpr uint16_t kNumericPInf = 0xD000;
constexpr uint16_t kNumericNInf = 0xF000;
constexpr int kNumericMaxDscale = 0x3FFF;

inline uint16_t Be16(const char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return __builtin_bswap16(v);
}
inline uint32_t Be32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return __builtin_bswap32(v);
}
inline uint64_t Be64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return __builtin_bswap64(v);
}
inline void PutBe16(char* p, uint16_t v) {
  v = __builtin_bswap16(v);
  std::memcpy(p, &v, 2);
}
inline void PutBe32(char* p, uint32_t v) {
  v = __builtin_bswap32(v);
  std::memcpy(p, &v, 4);
}
inline void PutBe64(char* p, uint64_t v) {
  v = __builtin_bswap64(v);
  std::memcpy(p, &v, 8);
}
inline void AppendBe16(std::string* out, uint16_t v) {
  char b[2];
  PutBe16(b, v);
  out->append(b, 2);
}
inline void AppendBe32(std::string* out, uint32_t v) {
  char b[4];
  PutBe32(b, v);
  out->append(b, 4);
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

void AppendSpecialNumeric(uint16_t sign, std::string* out) {
  AppendBe16(out, 0);  // ndigits
  AppendBe16(out, 0);  // weight
  AppendBe16(out, sign);
  AppendBe16(out, 0);  // dscale
}

// Width in bytes of a fixed-size codec's value, or 0 for variable-size ones.
int FixedSize(PgCodec codec) {
  switch (codec) {
    case PgCodec::kBool:
      return 1;
    case PgCodec::kInt2:
      return 2;
    case PgCodec::kInt4:
    case PgCodec::kOid:
    case PgCodec::kFloat4:
    case PgCodec::kDate:
      return 4;
    case PgCodec::kInt8:
    case PgCodec::kFloat8:
    case PgCodec::kTimestamp:
    case PgCodec::kTimestampTz:
      return 8;
    case PgCodec::kUuid:
      return 16;
    default:
      return 0;
  }
}

}  // namespace

std::string_view PgCodecName(PgCodec codec) {
  switch (codec) {
    case PgCodec::kBool:
      return "bool";
    case PgCodec::kInt2:
      return "int2";
    case PgCodec::kInt4:
      return "int4";
    case PgCodec::kInt8:
      return "int8";
    case PgCodec::kOid:
      return "oid";
    case PgCodec::kFloat4:
      return "float4";
    case PgCodec::kFloat8:
      return "float8";
    case PgCodec::kNumeric:
      return "numeric";
    case PgCodec::kText:
      return "text";
    case PgCodec::kBytea:
      return "bytea";
    case PgCodec::kJson:
      return "json";
    case PgCodec::kJsonb:
      return "jsonb";
    case PgCodec::kUuid:
      return "uuid";
    case PgCodec::kTimestamp:
      return "timestamp";
    case PgCodec::kTimestampTz:
      return "timestamptz";
    case PgCodec::kDate:
      return "date";
    case PgCodec::kGeometry:
      return "geometry";
  }
  return "?";
}

std::optional<PgCodec> CodecForType(Oid oid, std::string_view type_name, char type_type) {
  switch (oid) {
    case oids::kBool:
      return PgCodec::kBool;
    case oids::kBytea:
      return PgCodec::kBytea;
    case oids::kInt2:
      return PgCodec::kInt2;
    case oids::kInt4:
      return PgCodec::kInt4;
    case oids::kInt8:
      return PgCodec::kInt8;
    case oids::kOid:
      return PgCodec::kOid;
    case oids::kFloat4:
      return PgCodec::kFloat4;
    case oids::kFloat8:
      return PgCodec::kFloat8;
    case oids::kNumeric:
      return PgCodec::kNumeric;
    case oids::kText:
    case oids::kVarchar:
    case oids::kBpchar:
    case oids::kName:
      return PgCodec::kText;
    case oids::kJson:
      return PgCodec::kJson;
    case oids::kJsonb:
      return PgCodec::kJsonb;
    case oids::kUuid:
      return PgCodec::kUuid;
    case oids::kTimestamp:
      return PgCodec::kTimestamp;
    case oids::kTimestampTz:
      return PgCodec::kTimestampTz;
    case oids::kDate:
      return PgCodec::kDate;
    default:
      break;
  }
  // Both PostGIS types send and receive EWKB.
  if (type_name == "geometry" || type_name == "geography") return PgCodec::kGeometry;
  // citext and enums send their text as-is.
  if (type_name == "citext" || type_type == 'e') return PgCodec::kText;
  return std::nullopt;
}

TypeId DefaultTypeFor(PgCodec codec) {
  switch (codec) {
    case PgCodec::kBool:
      return TypeId::kBool;
    case PgCodec::kInt2:
    case PgCodec::kInt4:
    case PgCodec::kInt8:
    case PgCodec::kOid:
      return TypeId::kInt64;
    case PgCodec::kFloat4:
    case PgCodec::kFloat8:
      return TypeId::kFloat64;
    case PgCodec::kNumeric:  // exact: no double holds numeric(30,10)
    case PgCodec::kText:
    case PgCodec::kUuid:
    case PgCodec::kJson:   // exact text: a json column embedded in JSONL would lose its spacing,
    case PgCodec::kJsonb:  // number spellings, and the difference between 'null' and NULL
    case PgCodec::kDate:   // 5874897-12-31 is beyond int64 µs
      return TypeId::kString;
    case PgCodec::kBytea:
      return TypeId::kBytes;
    case PgCodec::kTimestamp:
    case PgCodec::kTimestampTz:
      return TypeId::kTimestamp;
    case PgCodec::kGeometry:
      return TypeId::kGeometry;
  }
  return TypeId::kString;
}

bool CanDecode(PgCodec codec, TypeId type) {
  if (type == DefaultTypeFor(codec)) return true;
  switch (codec) {
    case PgCodec::kInt2:
    case PgCodec::kInt4:
    case PgCodec::kInt8:
    case PgCodec::kOid:
      return type == TypeId::kFloat64;
    case PgCodec::kNumeric:
      return type == TypeId::kFloat64;
    case PgCodec::kDate:
      return type == TypeId::kTimestamp;
    case PgCodec::kText:
    case PgCodec::kJson:
    case PgCodec::kJsonb:
      return type == TypeId::kString || type == TypeId::kJson;
    case PgCodec::kBytea:
      return type == TypeId::kGeometry;
    case PgCodec::kGeometry:
      return type == TypeId::kBytes;
    default:
      return false;
  }
}

bool CanEncode(TypeId type, PgCodec codec) {
  switch (type) {
    case TypeId::kBool:
      return codec == PgCodec::kBool;
    case TypeId::kInt64:
      return codec == PgCodec::kInt2 || codec == PgCodec::kInt4 || codec == PgCodec::kInt8 ||
             codec == PgCodec::kOid || codec == PgCodec::kFloat4 || codec == PgCodec::kFloat8 ||
             codec == PgCodec::kNumeric;
    case TypeId::kFloat64:
      return codec == PgCodec::kFloat4 || codec == PgCodec::kFloat8 || codec == PgCodec::kNumeric;
    case TypeId::kTimestamp:
      return codec == PgCodec::kTimestamp || codec == PgCodec::kTimestampTz ||
             codec == PgCodec::kDate;
    case TypeId::kString:
      return codec == PgCodec::kText || codec == PgCodec::kJson || codec == PgCodec::kJsonb ||
             codec == PgCodec::kUuid || codec == PgCodec::kNumeric || codec == PgCodec::kBytea ||
             codec == PgCodec::kDate;
    case TypeId::kBytes:
    case TypeId::kGeometry:
      return codec == PgCodec::kBytea || codec == PgCodec::kGeometry;
    case TypeId::kJson:
      return codec == PgCodec::kJson || codec == PgCodec::kJsonb || codec == PgCodec::kText;
  }
  return false;
}

std::string_view PgTypeNameFor(TypeId type) {
  switch (type) {
    case TypeId::kBool:
      return "boolean";
    case TypeId::kInt64:
      return "bigint";
    case TypeId::kFloat64:
      return "double precision";
    case TypeId::kString:
      return "text";
    case TypeId::kBytes:
      return "bytea";
    case TypeId::kTimestamp:
      return "timestamptz";
    case TypeId::kGeometry:
      return "geometry";
    case TypeId::kJson:
      return "jsonb";
  }
  return "text";
}

int64_t PgMicrosToUnix(int64_t pg_micros) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  if (pg_micros == kMax || pg_micros == kMin) return pg_micros;
  if (pg_micros > kMax - kPgEpochOffsetMicros) return kMax - 1;  // beyond any valid timestamp
  return pg_micros + kPgEpochOffsetMicros;
}

int64_t UnixMicrosToPg(int64_t unix_micros) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  if (unix_micros == kMax || unix_micros == kMin) return unix_micros;
  if (unix_micros < kMin + kPgEpochOffsetMicros) return kMin + 1;
  return unix_micros - kPgEpochOffsetMicros;
}

// ---- date ----------------------------------------------------------------------------------

namespace {
// PostgreSQL's date range, in days since 2000-01-01: 4714-11-24 BC to 5874897-12-31.
constexpr int32_t kMinPgDays = -2'451'545;
constexpr int32_t kMaxPgDays = 2'145'031'948;
}  // namespace

size_t FormatDate(int32_t pg_days, char* out) {
  if (pg_days == std::numeric_limits<int32_t>::max()) {
    std::memcpy(out, "infinity", 8);
    return 8;
  }
  if (pg_days == std::numeric_limits<int32_t>::min()) {
    std::memcpy(out, "-infinity", 9);
    return 9;
  }
  int64_t y;
  unsigned m;
  unsigned d;
  CivilFromDays(static_cast<int64_t>(pg_days) + kPgEpochOffsetDays, &y, &m, &d);
  const bool bc = y <= 0;
  if (bc) y = 1 - y;  // astronomical year 0 is 1 BC
  char* p = out;
  char digits[12];
  char* end = std::to_chars(digits, digits + sizeof(digits), y).ptr;
  for (auto n = end - digits; n < 4; ++n) *p++ = '0';
  p = std::copy(digits, end, p);
  *p++ = '-';
  *p++ = static_cast<char>('0' + m / 10);
  *p++ = static_cast<char>('0' + m % 10);
  *p++ = '-';
  *p++ = static_cast<char>('0' + d / 10);
  *p++ = static_cast<char>('0' + d % 10);
  if (bc) p = std::copy_n(" BC", 3, p);
  return static_cast<size_t>(p - out);
}

Result<int32_t> ParseDate(std::string_view text) {
  if (text == "infinity" || text == "+infinity") return std::numeric_limits<int32_t>::max();
  if (text == "-infinity") return std::numeric_limits<int32_t>::min();
  auto bad = [&] {
    return Status::Invalid("'{}' is not a date (expected YYYY-MM-DD[ BC] or [-]infinity)",
                           text.substr(0, 64));
  };
  std::string_view s = text;
  bool bc = false;
  if (s.ends_with(" BC")) {
    bc = true;
    s.remove_suffix(3);
  }
  int64_t y = 0;
  size_t i = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i < 8) y = y * 10 + (s[i++] - '0');
  if (i < 4 || s.size() != i + 6 || s[i] != '-' || s[i + 3] != '-') return bad();
  auto two = [&](size_t at) -> int {
    if (s[at] < '0' || s[at] > '9' || s[at + 1] < '0' || s[at + 1] > '9') return -1;
    return (s[at] - '0') * 10 + (s[at + 1] - '0');
  };
  const int m = two(i + 1);
  const int d = two(i + 4);
  if (m < 1 || m > 12 || d < 1 || d > 31 || (bc && y == 0)) return bad();
  if (bc) y = 1 - y;
  const int64_t days =
      DaysFromCivil(y, static_cast<unsigned>(m), static_cast<unsigned>(d)) - kPgEpochOffsetDays;
  // A day past the month's end (2023-02-30) comes back as another date: refuse it.
  int64_t cy;
  unsigned cm;
  unsigned cd;
  CivilFromDays(days + kPgEpochOffsetDays, &cy, &cm, &cd);
  if (cd != static_cast<unsigned>(d)) return bad();
  if (days < kMinPgDays || days > kMaxPgDays) {
    return Status::Invalid("date '{}' is out of PostgreSQL's range", text.substr(0, 64));
  }
  return static_cast<int32_t>(days);
}

// ---- numeric -------------------------------------------------------------------------------

Status EncodeNumeric(std::string_view text, std::string* out) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (EqualsIgnoreCase(text, "nan")) {
    AppendSpecialNumeric(kNumericNaN, out);
    return Status::OK();
  }
  bool negative = false;
  std::string_view rest = text;
  if (!rest.empty() && (rest.front() == '-' || rest.front() == '+')) {
    negative = rest.front() == '-';
    rest.remove_prefix(1);
  }
  if (EqualsIgnoreCase(rest, "infinity") || EqualsIgnoreCase(rest, "inf")) {
    AppendSpecialNumeric(negative ? kNumericNInf : kNumericPInf, out);
    return Status::OK();
  }
  auto invalid = [&] { return Status::Invalid("'{}' is not a valid numeric value", text); };
  // Split into the digits (integer part then fraction) and an exponent.
  std::string digits;
  digits.reserve(rest.size());
  size_t i = 0;
  int64_t int_digits = 0;
  int64_t frac_digits = 0;
  while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
    digits.push_back(rest[i++]);
    ++int_digits;
  }
  if (i < rest.size() && rest[i] == '.') {
    ++i;
    while (i < rest.size() && rest[i] >= '0' && rest[i] <= '9') {
      digits.push_back(rest[i++]);
      ++frac_digits;
    }
  }
  if (digits.empty()) return invalid();
  int64_t exponent = 0;
  if (i < rest.size() && (rest[i] == 'e' || rest[i] == 'E')) {
    ++i;
    if (i < rest.size() && rest[i] == '+') ++i;
    auto [end, ec] = std::from_chars(rest.data() + i, rest.data() + rest.size(), exponent);
    if (ec != std::errc() || end == rest.data() + i) return invalid();
    i = static_cast<size_t>(end - rest.data());
    if (exponent > 100'000 || exponent < -100'000) return invalid();
  }
  if (i != rest.size()) return invalid();

  const int64_t dscale = std::clamp<int64_t>(frac_digits - exponent, 0, kNumericMaxDscale);
  // `point`: how many of `digits` lie before the decimal point (may be negative or beyond).
  int64_t point = int_digits + exponent;
  size_t lead = 0;
  while (lead < digits.size() && digits[lead] == '0') ++lead;
  digits.erase(0, lead);
  point -= static_cast<int64_t>(lead);
  while (!digits.empty() && digits.back() == '0') digits.pop_back();
  if (digits.empty()) {  // zero keeps its display scale: 0.00
    AppendBe16(out, 0);
    AppendBe16(out, 0);
    AppendBe16(out, kNumericPos);
    AppendBe16(out, static_cast<uint16_t>(dscale));
    return Status::OK();
  }
  // Align to base-10000 groups that start at the decimal point.
  const int64_t pad_left = (4 - ((point % 4) + 4) % 4) % 4;
  digits.insert(0, static_cast<size_t>(pad_left), '0');
  point += pad_left;
  while (digits.size() % 4 != 0) digits.push_back('0');
  const int64_t weight = point / 4 - 1;
  const auto ndigits = static_cast<int64_t>(digits.size() / 4);
  if (weight > 32767 || weight - ndigits < -32768) {
    return Status::Invalid("numeric value '{}' is out of range", text);
  }
  AppendBe16(out, static_cast<uint16_t>(ndigits));
  AppendBe16(out, static_cast<uint16_t>(static_cast<int16_t>(weight)));
  AppendBe16(out, negative ? kNumericNeg : kNumericPos);
  AppendBe16(out, static_cast<uint16_t>(dscale));
  for (int64_t g = 0; g < ndigits; ++g) {
    const char* d = digits.data() + g * 4;
    AppendBe16(out, static_cast<uint16_t>((d[0] - '0') * 1000 + (d[1] - '0') * 100 +
                                          (d[2] - '0') * 10 + (d[3] - '0')));
  }
  return Status::OK();
}

void EncodeNumeric(int64_t value, std::string* out) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  (void)ec;
  (void)EncodeNumeric(std::string_view(buf, static_cast<size_t>(end - buf)), out);
}

void EncodeNumeric(double value, std::string* out) {
  if (std::isnan(value)) {
    AppendSpecialNumeric(kNumericNaN, out);
    return;
  }
  if (std::isinf(value)) {
    AppendSpecialNumeric(value > 0 ? kNumericPInf : kNumericNInf, out);
    return;
  }
  char buf[40];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);  // shortest round trip
  (void)ec;
  (void)EncodeNumeric(std::string_view(buf, static_cast<size_t>(end - buf)), out);
}

Status NumericToText(std::string_view value, std::string* out) {
  out->clear();
  if (value.size() < 8) return Status::Invalid("numeric value of {} bytes", value.size());
  const int ndigits = static_cast<int16_t>(Be16(value.data()));
  const int weight = static_cast<int16_t>(Be16(value.data() + 2));
  const uint16_t sign = Be16(value.data() + 4);
  const int dscale = Be16(value.data() + 6);
  if (ndigits < 0 || value.size() != 8 + 2 * static_cast<size_t>(ndigits)) {
    return Status::Invalid("numeric value with {} digits in {} bytes", ndigits, value.size());
  }
  if (sign == kNumericNaN) {
    *out = "NaN";
    return Status::OK();
  }
  if (sign == kNumericPInf || sign == kNumericNInf) {
    *out = sign == kNumericPInf ? "Infinity" : "-Infinity";
    return Status::OK();
  }
  if (sign != kNumericPos && sign != kNumericNeg) {
    return Status::Invalid("numeric value with sign word {:#x}", sign);
  }
  if (dscale > kNumericMaxDscale) return Status::Invalid("numeric display scale {}", dscale);
  auto digit = [&](int i) -> int {
    if (i < 0 || i >= ndigits) return 0;
    return Be16(value.data() + 8 + 2 * static_cast<size_t>(i));
  };
  for (int i = 0; i < ndigits; ++i) {
    if (digit(i) > 9999) return Status::Invalid("numeric digit {} out of range", digit(i));
  }
  // Servers send normalized numerics, but a value with zero digit groups (leading, or all
  // zero with a minus sign) must still print as the number it is: "5", not "05" or "-0".
  if (sign == kNumericNeg) out->push_back('-');
  char group[4];
  if (weight < 0) {
    out->push_back('0');
  } else {
    bool started = false;
    for (int d = 0; d <= weight; ++d) {
      const int v = digit(d);
      if (!started) {
        if (v == 0 && d < weight) continue;  // a leading zero group
        started = true;
        char buf[8];
        out->append(buf, static_cast<size_t>(std::to_chars(buf, buf + sizeof(buf), v).ptr - buf));
      } else {
        group[0] = static_cast<char>('0' + v / 1000);
        group[1] = static_cast<char>('0' + v / 100 % 10);
        group[2] = static_cast<char>('0' + v / 10 % 10);
        group[3] = static_cast<char>('0' + v % 10);
        out->append(group, 4);
      }
    }
  }
  if (dscale > 0) {
    out->push_back('.');
    const size_t start = out->size();
    for (int d = weight + 1; static_cast<int>(out->size() - start) < dscale; ++d) {
      const int v = digit(d);
      group[0] = static_cast<char>('0' + v / 1000);
      group[1] = static_cast<char>('0' + v / 100 % 10);
      group[2] = static_cast<char>('0' + v / 10 % 10);
      group[3] = static_cast<char>('0' + v % 10);
      out->append(group, 4);
    }
    out->resize(start + static_cast<size_t>(dscale));
  }
  if (sign == kNumericNeg && out->find_first_of("123456789") == std::string::npos) {
    out->erase(0, 1);  // no digit shown is nonzero: "-0.00" is "0.00"
  }
  return Status::OK();
}

Result<double> NumericToDouble(std::string_view value, std::string* scratch) {
  SLUICE_RETURN_NOT_OK(NumericToText(value, scratch));
  if (*scratch == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (*scratch == "Infinity") return std::numeric_limits<double>::infinity();
  if (*scratch == "-Infinity") return -std::numeric_limits<double>::infinity();
  double d = 0;
  auto [end, ec] = std::from_chars(scratch->data(), scratch->data() + scratch->size(), d);
  if (ec == std::errc::result_out_of_range) {
    // Beyond double's range: overflow to infinity, underflow to zero, as a cast would. The
    // text has no exponent, so a magnitude below 1 starts with "0".
    const bool negative = (*scratch)[0] == '-';
    const bool tiny = (*scratch)[negative ? 1 : 0] == '0';
    if (tiny) return negative ? -0.0 : 0.0;
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  if (ec != std::errc() || end != scratch->data() + scratch->size()) {
    return Status::Invalid("cannot read numeric '{}' as float64", *scratch);
  }
  return d;
}

// ---- uuid ----------------------------------------------------------------------------------

Status ParseUuid(std::string_view text, uint8_t out[16]) {
  std::string_view s = text;
  if (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = s.substr(1, s.size() - 2);
  int n = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '-' && i > 0 && i + 1 < s.size() && s[i - 1] != '-') continue;
    const int v = HexValue(s[i]);
    if (v < 0 || n >= 32) return Status::Invalid("'{}' is not a valid uuid", text);
    if (n % 2 == 0) {
      out[n / 2] = static_cast<uint8_t>(v << 4);
    } else {
      out[n / 2] = static_cast<uint8_t>(out[n / 2] | v);
    }
    ++n;
  }
  if (n != 32) return Status::Invalid("'{}' is not a valid uuid", text);
  return Status::OK();
}

void FormatUuid(const uint8_t* uuid, char out[36]) {
  static constexpr char kHex[] = "0123456789abcdef";
  int o = 0;
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = kHex[uuid[i] >> 4];
    out[o++] = kHex[uuid[i] & 15];
  }
}

// ---- decoding ------------------------------------------------------------------------------

Status DecodeValue(PgCodec codec, std::string_view v, ColumnBuilder* out, std::string* scratch) {
  const int fixed = FixedSize(codec);
  if (fixed > 0 && v.size() != static_cast<size_t>(fixed)) {
    return Status::Invalid("{} value of {} bytes, expected {}", PgCodecName(codec), v.size(),
                           fixed);
  }
  const TypeId type = out->type();
  const char* p = v.data();
  auto append_integer = [&](int64_t x) {
    if (type == TypeId::kFloat64) {
      out->AppendFloat64(static_cast<double>(x));
    } else {
      out->AppendInt64(x);
    }
  };
  switch (codec) {
    case PgCodec::kBool:
      out->AppendBool(p[0] != 0);
      return Status::OK();
    case PgCodec::kInt2:
      append_integer(static_cast<int16_t>(Be16(p)));
      return Status::OK();
    case PgCodec::kInt4:
      append_integer(static_cast<int32_t>(Be32(p)));
      return Status::OK();
    case PgCodec::kOid:
      append_integer(static_cast<int64_t>(Be32(p)));
      return Status::OK();
    case PgCodec::kInt8:
      append_integer(static_cast<int64_t>(Be64(p)));
      return Status::OK();
    case PgCodec::kFloat4: {
      const uint32_t bits = Be32(p);
      float f;
      std::memcpy(&f, &bits, 4);
      out->AppendFloat64(static_cast<double>(f));
      return Status::OK();
    }
    case PgCodec::kFloat8: {
      const uint64_t bits = Be64(p);
      double d;
      std::memcpy(&d, &bits, 8);
      out->AppendFloat64(d);
      return Status::OK();
    }
    case PgCodec::kNumeric:
      if (type == TypeId::kString) {
        SLUICE_RETURN_NOT_OK(NumericToText(v, scratch));
        out->AppendString(*scratch);
      } else {
        SLUICE_ASSIGN_OR_RETURN(double d, NumericToDouble(v, scratch));
        out->AppendFloat64(d);
      }
      return Status::OK();
    case PgCodec::kText:
    case PgCodec::kBytea:
    case PgCodec::kJson:
    case PgCodec::kGeometry:
      out->AppendString(v);
      return Status::OK();
    case PgCodec::kJsonb:
      if (v.empty() || v[0] != 1) {
        return Status::Invalid("jsonb version {} is not supported (expected 1)",
                               v.empty() ? -1 : static_cast<int>(static_cast<uint8_t>(v[0])));
      }
      out->AppendString(v.substr(1));
      return Status::OK();
    case PgCodec::kUuid: {
      char text[36];
      FormatUuid(reinterpret_cast<const uint8_t*>(p), text);
      out->AppendString(std::string_view(text, sizeof(text)));
      return Status::OK();
    }
    case PgCodec::kTimestamp:
    case PgCodec::kTimestampTz: {
      const auto pg_micros = static_cast<int64_t>(Be64(p));
      // PostgreSQL's last 30 years (294247-01-10 to 294276) do not fit in Unix µs: refuse them
      // rather than store another instant.
      if (pg_micros != std::numeric_limits<int64_t>::max() &&
          pg_micros > std::numeric_limits<int64_t>::max() - 1 - kPgEpochOffsetMicros) {
        return Status::Invalid(
            "timestamp {} µs after 2000-01-01 is beyond 294247-01-10, the last a sluice "
            "timestamp holds; read the column as string",
            pg_micros);
      }
      out->AppendTimestamp(PgMicrosToUnix(pg_micros));
      return Status::OK();
    }
    case PgCodec::kDate: {
      const auto days = static_cast<int32_t>(Be32(p));
      if (type == TypeId::kString) {
        char text[kMaxDateChars];
        out->AppendString(std::string_view(text, FormatDate(days, text)));
      } else if (days == std::numeric_limits<int32_t>::max()) {
        out->AppendTimestamp(std::numeric_limits<int64_t>::max());
      } else if (days == std::numeric_limits<int32_t>::min()) {
        out->AppendTimestamp(std::numeric_limits<int64_t>::min());
      } else {
        // Days beyond ±106,751,991 from 1970 overflow int64 µs.
        constexpr int64_t kMaxDays = std::numeric_limits<int64_t>::max() / kMicrosPerDay - 1;
        const int64_t unix_days = static_cast<int64_t>(days) + kPgEpochOffsetDays;
        if (unix_days > kMaxDays || unix_days < -kMaxDays) {
          char text[kMaxDateChars];
          return Status::Invalid("date {} is beyond the range of a timestamp; read it as string",
                                 std::string_view(text, FormatDate(days, text)));
        }
        out->AppendTimestamp(unix_days * kMicrosPerDay);
      }
      return Status::OK();
    }
  }
  return Status::Internal("unknown codec");
}

CopyBinaryDecoder::CopyBinaryDecoder(SchemaPtr schema, std::vector<PgCodec> codecs)
    : schema_(std::move(schema)), codecs_(std::move(codecs)) {}

Status CopyBinaryDecoder::Consume(std::string_view chunk, std::vector<ColumnBuilder>* builders,
                                  int64_t* rows) {
  size_t consumed = 0;
  if (carry_.empty()) {
    SLUICE_RETURN_NOT_OK(Parse(chunk, &consumed, builders, rows));
    carry_.assign(chunk.substr(consumed));
    return Status::OK();
  }
  carry_.append(chunk);
  SLUICE_RETURN_NOT_OK(Parse(carry_, &consumed, builders, rows));
  carry_.erase(0, consumed);
  return Status::OK();
}

Status CopyBinaryDecoder::Parse(std::string_view data, size_t* consumed,
                                std::vector<ColumnBuilder>* builders, int64_t* rows) {
  size_t pos = 0;
  const int num_columns = static_cast<int>(codecs_.size());
  if (!header_done_) {
    if (data.size() < kCopySignatureSize + 8) return Status::OK();
    if (std::memcmp(data.data(), kCopySignature, kCopySignatureSize) != 0) {
      return Status::Invalid("not a binary COPY stream (bad signature)");
    }
    const uint32_t extension = Be32(data.data() + kCopySignatureSize + 4);
    const size_t header = kCopySignatureSize + 8 + extension;
    if (data.size() < header) return Status::OK();
    pos = header;
    header_done_ = true;
  }
  while (pos < data.size()) {
    if (finished_) return Status::Invalid("binary COPY stream has data after its trailer");
    if (data.size() - pos < 2) break;
    const auto fields = static_cast<int16_t>(Be16(data.data() + pos));
    if (fields == -1) {
      finished_ = true;
      pos += 2;
      continue;
    }
    if (fields != num_columns) {
      return Status::Invalid("binary COPY row has {} fields, expected {}", fields, num_columns);
    }
    // Find the end of the row first, so that a row split across chunks is decoded whole.
    size_t end = pos + 2;
    bool complete = true;
    for (int c = 0; c < num_columns; ++c) {
      if (data.size() - end < 4) {
        complete = false;
        break;
      }
      const auto len = static_cast<int32_t>(Be32(data.data() + end));
      end += 4;
      if (len > 0) {
        if (data.size() - end < static_cast<size_t>(len)) {
          complete = false;
          break;
        }
        end += static_cast<size_t>(len);
      }
    }
    if (!complete) break;
    size_t p = pos + 2;
    for (int c = 0; c < num_columns; ++c) {
      const auto len = static_cast<int32_t>(Be32(data.data() + p));
      p += 4;
      ColumnBuilder& b = (*builders)[static_cast<size_t>(c)];
      if (len < 0) {
        b.AppendNull();
        continue;
      }
      const std::string_view value(data.data() + p, static_cast<size_t>(len));
      p += static_cast<size_t>(len);
      Status st = DecodeValue(codecs_[static_cast<size_t>(c)], value, &b, &scratch_);
      if (!st.ok()) {
        return st.WithContext("column '{}' ({})", schema_->field(c).name,
                              PgCodecName(codecs_[static_cast<size_t>(c)]));
      }
    }
    pos = end;
    ++*rows;
  }
  *consumed = pos;
  return Status::OK();
}

// ---- encoding ------------------------------------------------------------------------------

Result<CopyBinaryEncoder> CopyBinaryEncoder::Make(SchemaPtr schema, std::vector<PgCodec> targets) {
  if (static_cast<int>(targets.size()) != schema->num_fields()) {
    return Status::Invalid("{} target types for {} columns", targets.size(), schema->num_fields());
  }
  for (int c = 0; c < schema->num_fields(); ++c) {
    const Field& f = schema->field(c);
    if (!CanEncode(f.type, targets[static_cast<size_t>(c)])) {
      return Status::Invalid("column '{}': cannot write {} values to a PostgreSQL {} column",
                             f.name, TypeName(f.type),
                             PgCodecName(targets[static_cast<size_t>(c)]));
    }
  }
  return CopyBinaryEncoder(std::move(schema), std::move(targets));
}

void CopyBinaryEncoder::AppendHeader(std::string* out) {
  out->append(kCopySignature, kCopySignatureSize);
  AppendBe32(out, 0);  // flags: no OIDs
  AppendBe32(out, 0);  // no header extension
}

void CopyBinaryEncoder::AppendTrailer(std::string* out) { AppendBe16(out, 0xFFFF); }

Status CopyBinaryEncoder::AppendRows(const Batch& batch, int64_t begin, int64_t end,
                                     std::string* out) {
  const int64_t n = end - begin;
  if (n <= 0) return Status::OK();
  const int num_columns = schema_->num_fields();
  // Pass 1, column by column: each row's size, then its position in `out`.
  cursor_.assign(static_cast<size_t>(n), 2);  // the field count
  numeric_data_.clear();
  numeric_offsets_.clear();
  numeric_start_.assign(static_cast<size_t>(num_columns), 0);
  for (int c = 0; c < num_columns; ++c) {
    const Column& col = batch.column(c);
    const PgCodec target = targets_[static_cast<size_t>(c)];
    const bool has_nulls = col.null_count() > 0;
    const int fixed = FixedSize(target);
    if (target == PgCodec::kNumeric) {
      numeric_start_[static_cast<size_t>(c)] = numeric_offsets_.size();
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = begin + r;
        const size_t before = numeric_data_.size();
        numeric_offsets_.push_back(static_cast<int64_t>(before));
        if (has_nulls && col.IsNull(row)) {
          cursor_[static_cast<size_t>(r)] += 4;
          continue;
        }
        if (col.type() == TypeId::kInt64) {
          EncodeNumeric(col.GetInt64(row), &numeric_data_);
        } else if (col.type() == TypeId::kFloat64) {
          EncodeNumeric(col.GetFloat64(row), &numeric_data_);
        } else {
          Status st = EncodeNumeric(col.GetView(row), &numeric_data_);
          if (!st.ok()) return st.WithContext("row {}, column '{}'", row, schema_->field(c).name);
        }
        cursor_[static_cast<size_t>(r)] += 4 + static_cast<int64_t>(numeric_data_.size() - before);
      }
      numeric_offsets_.push_back(static_cast<int64_t>(numeric_data_.size()));
    } else if (fixed > 0) {
      for (int64_t r = 0; r < n; ++r) {
        cursor_[static_cast<size_t>(r)] += (has_nulls && col.IsNull(begin + r)) ? 4 : 4 + fixed;
      }
    } else {
      const int32_t* off = col.offsets();
      const int extra = target == PgCodec::kJsonb ? 1 : 0;
      for (int64_t r = 0; r < n; ++r) {
        const int64_t row = begin + r;
        cursor_[static_cast<size_t>(r)] +=
            (has_nulls && col.IsNull(row)) ? 4 : 4 + extra + (off[row + 1] - off[row]);
      }
    }
  }
  const size_t start = out->size();
  int64_t total = 0;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t size = cursor_[static_cast<size_t>(r)];
    cursor_[static_cast<size_t>(r)] = total;
    total += size;
  }
  out->resize(start + static_cast<size_t>(total));
  char* base = out->data() + start;
  for (int64_t r = 0; r < n; ++r) {
    PutBe16(base + cursor_[static_cast<size_t>(r)], static_cast<uint16_t>(num_columns));
    cursor_[static_cast<size_t>(r)] += 2;
  }
  // Pass 2, column by column: write each value at its row's cursor.
  for (int c = 0; c < num_columns; ++c) {
    Status st = EncodeColumn(c, batch.column(c), begin, n, base);
    if (!st.ok()) {
      out->resize(start);
      return st;
    }
  }
  return Status::OK();
}

Status CopyBinaryEncoder::EncodeColumn(int c, const Column& col, int64_t begin, int64_t n,
                                       char* base) {
  const PgCodec target = targets_[static_cast<size_t>(c)];
  const bool has_nulls = col.null_count() > 0;
  int64_t* cursor = cursor_.data();
  auto error = [&](int64_t row, std::string_view why) {
    return Status::Invalid("row {}, column '{}': {}", row, schema_->field(c).name, why);
  };
  // Write a null, or return false so that the caller writes the value.
  auto null_at = [&](int64_t r) {
    if (!has_nulls || col.IsValid(begin + r)) return false;
    PutBe32(base + cursor[r], 0xFFFFFFFFu);
    cursor[r] += 4;
    return true;
  };
  auto put_fixed = [&](int64_t r, int width) {
    PutBe32(base + cursor[r], static_cast<uint32_t>(width));
    cursor[r] += 4 + width;
    return base + cursor[r] - width;
  };
  switch (target) {
    case PgCodec::kBool: {
      const uint8_t* v = col.bools();
      for (int64_t r = 0; r < n; ++r) {
        if (!null_at(r)) *put_fixed(r, 1) = static_cast<char>(v[begin + r] != 0);
      }
      return Status::OK();
    }
    case PgCodec::kInt2:
    case PgCodec::kInt4:
    case PgCodec::kOid: {
      const int64_t* v = col.int64s();
      const int64_t lo = target == PgCodec::kInt2   ? INT16_MIN
                         : target == PgCodec::kInt4 ? INT32_MIN
                                                    : 0;
      const int64_t hi = target == PgCodec::kInt2   ? INT16_MAX
                         : target == PgCodec::kInt4 ? INT32_MAX
                                                    : UINT32_MAX;
      for (int64_t r = 0; r < n; ++r) {
        if (null_at(r)) continue;
        const int64_t x = v[begin + r];
        if (x < lo || x > hi) {
          return error(begin + r, fmt::format("{} does not fit in {}", x, PgCodecName(target)));
        }
        if (target == PgCodec::kInt2) {
          PutBe16(put_fixed(r, 2), static_cast<uint16_t>(x));
        } else {
          PutBe32(put_fixed(r, 4), static_cast<uint32_t>(x));
        }
      }
      return Status::OK();
    }
    case PgCodec::kInt8: {
      const int64_t* v = col.int64s();
      for (int64_t r = 0; r < n; ++r) {
        if (!null_at(r)) PutBe64(put_fixed(r, 8), static_cast<uint64_t>(v[begin + r]));
      }
      return Status::OK();
    }
    case PgCodec::kFloat4:
    case PgCodec::kFloat8: {
      const bool from_int = col.type() == TypeId::kInt64;
      for (int64_t r = 0; r < n; ++r) {
        if (null_at(r)) continue;
        const double d =
            from_int ? static_cast<double>(col.GetInt64(begin + r)) : col.GetFloat64(begin + r);
        if (target == PgCodec::kFloat8) {
          uint64_t bits;
          std::memcpy(&bits, &d, 8);
          PutBe64(put_fixed(r, 8), bits);
        } else {
          const auto f = static_cast<float>(d);
          uint32_t bits;
          std::memcpy(&bits, &f, 4);
          PutBe32(put_fixed(r, 4), bits);
        }
      }
      return Status::OK();
    }
    case PgCodec::kTimestamp:
    case PgCodec::kTimestampTz: {
      const int64_t* v = col.int64s();
      for (int64_t r = 0; r < n; ++r) {
        if (!null_at(r))
          PutBe64(put_fixed(r, 8), static_cast<uint64_t>(UnixMicrosToPg(v[begin + r])));
      }
      return Status::OK();
    }
    case PgCodec::kDate: {
      if (col.type() == TypeId::kString) {
        for (int64_t r = 0; r < n; ++r) {
          if (null_at(r)) continue;
          auto days = ParseDate(col.GetView(begin + r));
          if (!days.ok()) return error(begin + r, days.status().message());
          PutBe32(put_fixed(r, 4), static_cast<uint32_t>(*days));
        }
        return Status::OK();
      }
      const int64_t* v = col.int64s();
      for (int64_t r = 0; r < n; ++r) {
        if (null_at(r)) continue;
        const int64_t micros = v[begin + r];
        int64_t days;
        if (micros == INT64_MAX) {
          days = INT32_MAX;
        } else if (micros == INT64_MIN) {
          days = INT32_MIN;
        } else {
          const int64_t unix_days =
              micros / kMicrosPerDay - (micros % kMicrosPerDay < 0 ? 1 : 0);  // floor
          days = unix_days - kPgEpochOffsetDays;
          if (days <= INT32_MIN || days >= INT32_MAX) {
            return error(begin + r, "timestamp out of the range of date");
          }
        }
        PutBe32(put_fixed(r, 4), static_cast<uint32_t>(static_cast<int32_t>(days)));
      }
      return Status::OK();
    }
    case PgCodec::kUuid:
      for (int64_t r = 0; r < n; ++r) {
        if (null_at(r)) continue;
        uint8_t bytes[16];
        Status st = ParseUuid(col.GetView(begin + r), bytes);
        if (!st.ok()) return error(begin + r, st.message());
        std::memcpy(put_fixed(r, 16), bytes, 16);
      }
      return Status::OK();
    case PgCodec::kNumeric: {
      const int64_t* off = numeric_offsets_.data() + numeric_start_[static_cast<size_t>(c)];
      for (int64_t r = 0; r < n; ++r) {
        if (null_at(r)) continue;
        const int64_t len = off[r + 1] - off[r];
        std::memcpy(put_fixed(r, static_cast<int>(len)), numeric_data_.data() + off[r],
                    static_cast<size_t>(len));
      }
      return Status::OK();
    }
    case PgCodec::kText:
    case PgCodec::kBytea:
    case PgCodec::kJson:
    case PgCodec::kJsonb:
    case PgCodec::kGeometry: {
      const int32_t* off = col.offsets();
      const char* data = col.var_data();
      const bool jsonb = target == PgCodec::kJsonb;
      for (int64_t r = 0; r < n; ++r) {
        if (null_at(r)) continue;
        const int64_t row = begin + r;
        const int32_t len = off[row + 1] - off[row];
        char* p = put_fixed(r, len + (jsonb ? 1 : 0));
        if (jsonb) *p++ = 1;
        if (len > 0) std::memcpy(p, data + off[row], static_cast<size_t>(len));
      }
      return Status::OK();
    }
  }
  return Status::Internal("unknown codec");
}

// ---- catalog helpers -----------------------------------------------------------------------

Result<std::vector<PgColumn>> ResolveColumns(PgConnection* conn, const PgResult& described) {
  std::vector<PgColumn> columns(static_cast<size_t>(described.num_columns()));
  std::string unknown;  // OIDs without a fixed codec, as an array literal
  for (int c = 0; c < described.num_columns(); ++c) {
    PgColumn& col = columns[static_cast<size_t>(c)];
    col.name = std::string(described.ColumnName(c));
    col.oid = described.ColumnType(c);
    col.codec = CodecForType(col.oid);
    if (col.codec.has_value()) {
      col.type_name = std::string(PgCodecName(*col.codec));
    } else {
      // Appended in two steps: `"," + std::to_string(...)` trips GCC 12's -Wrestrict at -O3.
      if (!unknown.empty()) unknown += ',';
      unknown += std::to_string(col.oid);
    }
  }
  if (unknown.empty()) return columns;
  SLUICE_ASSIGN_OR_RETURN(
      PgResult types,
      conn->ExecParams("SELECT oid, typname, typtype FROM pg_catalog.pg_type WHERE oid = "
                       "ANY($1::oid[])",
                       {"{" + unknown + "}"}));
  for (int r = 0; r < types.num_rows(); ++r) {
    Oid oid = 0;
    const std::string_view text = types.Value(r, 0);
    std::from_chars(text.data(), text.data() + text.size(), oid);
    const std::string_view name = types.Value(r, 1);
    const char typtype = types.Value(r, 2).empty() ? 'b' : types.Value(r, 2)[0];
    for (PgColumn& col : columns) {
      if (col.oid != oid || col.codec.has_value()) continue;
      col.type_name = std::string(name);
      col.codec = CodecForType(oid, name, typtype);
    }
  }
  return columns;
}

Result<Oid> LookupTypeOid(PgConnection* conn, const std::string& name) {
  SLUICE_ASSIGN_OR_RETURN(PgResult r, conn->ExecParams("SELECT to_regtype($1)::oid", {name}));
  if (r.num_rows() != 1 || r.IsNull(0, 0)) {
    return Status::NotFound(
        "PostgreSQL at {}: type '{}' does not exist (is its extension "
        "installed?)",
        conn->description(), name);
  }
  Oid oid = 0;
  const std::string_view text = r.Value(0, 0);
  std::from_chars(text.data(), text.data() + text.size(), oid);
  return oid;
}

// ---- relation plans ------------------------------------------------------------------------

Status ApplyExactTextSettings(PgConnection* conn) {
  // set_config in one statement (works inside or outside a transaction). DateStyle 'ISO' alone
  // keeps the server's field order for reading dates.
  auto r = conn->Exec(
      "SELECT set_config('DateStyle', 'ISO', false), set_config('IntervalStyle', 'postgres', "
      "false), set_config('extra_float_digits', '1', false), set_config('bytea_output', 'hex', "
      "false)");
  if (!r.ok()) return r.status().WithContext("setting exact text output");
  return Status::OK();
}

namespace {

void PlanColumnAs(PgColumnPlan* col, TypeId type, bool as_text) {
  col->type = type;
  col->as_text = as_text;
  if (as_text) col->codec = PgCodec::kText;
  const std::string quoted = pg_internal::QuoteName(col->name);
  col->select_expr = as_text ? quoted + "::text AS " + quoted : quoted;
}

}  // namespace

int RelationPlan::Find(std::string_view name) const {
  for (size_t i = 0; i < columns.size(); ++i) {
    if (columns[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

void RelationPlan::Rebuild() {
  select_list.clear();
  codecs.clear();
  std::vector<Field> fields;
  fields.reserve(columns.size());
  for (const PgColumnPlan& col : columns) {
    if (!select_list.empty()) select_list += ", ";
    select_list += col.select_expr;
    codecs.push_back(col.codec);
    fields.push_back({col.name, col.type, true});
  }
  schema = MakeSchema(std::move(fields));
}

Status RelationPlan::Retype(std::string_view name, TypeId type) {
  const int i = Find(name);
  if (i < 0) return Status::NotFound("no column '{}'", name);
  PgColumnPlan& col = columns[static_cast<size_t>(i)];
  if (!col.as_text && CanDecode(col.codec, type)) {
    PlanColumnAs(&col, type, false);
  } else if (type == TypeId::kString || type == TypeId::kJson) {
    PlanColumnAs(&col, type, true);  // the server formats it
  } else {
    return Status::ConfigError("column '{}' is PostgreSQL {}, which cannot be read as {}", col.name,
                               col.pg_type, TypeName(type));
  }
  Rebuild();
  return Status::OK();
}

Status RelationPlan::Keep(const std::vector<std::string>& names) {
  std::vector<PgColumnPlan> kept;
  kept.reserve(names.size());
  for (const std::string& name : names) {
    const int i = Find(name);
    if (i < 0) return Status::NotFound("no column '{}'", name);
    kept.push_back(columns[static_cast<size_t>(i)]);
  }
  columns = std::move(kept);
  Rebuild();
  return Status::OK();
}

Result<RelationPlan> PlanRelation(PgConnection* conn, const std::string& relation) {
  SLUICE_ASSIGN_OR_RETURN(PgResult described, conn->Describe("SELECT * FROM " + relation));
  const int n = described.num_columns();
  RelationPlan plan;
  plan.columns.resize(static_cast<size_t>(n));
  std::string oid_array = "{";
  std::string typmod_array = "{";
  for (int c = 0; c < n; ++c) {
    PgColumnPlan& col = plan.columns[static_cast<size_t>(c)];
    col.name = std::string(described.ColumnName(c));
    col.type_oid = described.ColumnType(c);
    if (c > 0) {
      oid_array += ',';
      typmod_array += ',';
    }
    oid_array += std::to_string(col.type_oid);
    typmod_array += std::to_string(PQfmod(described.get(), c));
  }
  oid_array += '}';
  typmod_array += '}';
  if (n > 0) {
    // Each column's type: its name for messages and restores, and what picks its codec.
    SLUICE_ASSIGN_OR_RETURN(
        PgResult types,
        conn->ExecParams("SELECT format_type(u.o, u.m), t.typname, t.typtype "
                         "FROM unnest($1::oid[], $2::int4[]) WITH ORDINALITY AS u(o, m, i) "
                         "JOIN pg_catalog.pg_type t ON t.oid = u.o ORDER BY u.i",
                         {oid_array, typmod_array}));
    if (types.num_rows() != n) {
      return Status::Internal("described {} columns, found the types of {}", n, types.num_rows());
    }
    for (int c = 0; c < n; ++c) {
      PgColumnPlan& col = plan.columns[static_cast<size_t>(c)];
      col.pg_type = std::string(types.Value(c, 0));
      const std::string_view type_type = types.Value(c, 2);
      const std::optional<PgCodec> codec =
          CodecForType(col.type_oid, types.Value(c, 1), type_type.empty() ? 'b' : type_type[0]);
      col.codec = codec.value_or(PgCodec::kText);
      PlanColumnAs(&col, codec.has_value() ? DefaultTypeFor(*codec) : TypeId::kString,
                   !codec.has_value());
    }
  }
  // A relation by name: its declared types, domains included (results describe base types).
  if (n > 0 && !relation.empty() && relation.front() != '(') {
    SLUICE_ASSIGN_OR_RETURN(
        PgResult declared,
        conn->ExecParams("SELECT format_type(atttypid, atttypmod) FROM pg_catalog.pg_attribute "
                         "WHERE attrelid = $1::regclass AND attnum > 0 AND NOT attisdropped "
                         "ORDER BY attnum",
                         {relation}));
    if (declared.num_rows() == n) {
      for (int c = 0; c < n; ++c) {
        plan.columns[static_cast<size_t>(c)].pg_type = std::string(declared.Value(c, 0));
      }
    }
  }
  plan.Rebuild();
  return plan;
}

Status AppendResultRows(const PgResult& result, const std::vector<PgCodec>& codecs,
                        std::vector<ColumnBuilder>* builders, std::string* scratch) {
  const int rows = result.num_rows();
  const int columns = result.num_columns();
  if (static_cast<int>(codecs.size()) != columns || static_cast<int>(builders->size()) != columns) {
    return Status::Invalid("result has {} columns; {} codecs and {} builders given", columns,
                           codecs.size(), builders->size());
  }
  if (rows > 0 && PQbinaryTuples(result.get()) == 0) {
    return Status::Invalid("result is in text format; fetch it with PgFormat::kBinary");
  }
  // Column by column: each builder is filled in one pass.
  for (int c = 0; c < columns; ++c) {
    ColumnBuilder& b = (*builders)[static_cast<size_t>(c)];
    b.Reserve(b.length() + rows);
    for (int r = 0; r < rows; ++r) {
      if (result.IsNull(r, c)) {
        b.AppendNull();
        continue;
      }
      Status st = DecodeValue(codecs[static_cast<size_t>(c)], result.Value(r, c), &b, scratch);
      if (!st.ok()) return st.WithContext("row {}, column '{}'", r, result.ColumnName(c));
    }
  }
  return Status::OK();
}

}  // namespace sluice::pg
