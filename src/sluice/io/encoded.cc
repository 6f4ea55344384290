#include "sluice/io/encoded.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "sluice/core/json_text.h"
#include "sluice/core/time.h"

namespace sluice {

namespace io {

namespace {

bool IsKeySafe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

bool IsUpperHex(char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'); }

constexpr char kHexUpper[] = "0123456789ABCDEF";
constexpr std::string_view kNullKey = "%null";
constexpr std::string_view kEmptyKey = "%empty";

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string EscapeKeyText(std::string_view text) {
  if (text.empty()) return std::string(kEmptyKey);
  if (text == ".") return "%2E";
  if (text == "..") return "%2E%2E";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (IsKeySafe(c)) {
      out.push_back(c);
    } else {
      const auto b = static_cast<unsigned char>(c);
      out.push_back('%');
      out.push_back(kHexUpper[b >> 4]);
      out.push_back(kHexUpper[b & 15]);
    }
  }
  return out;
}

bool IsEscapedKeyText(std::string_view text) {
  if (text == kNullKey || text == kEmptyKey) return true;
  if (text.empty() || text == "." || text == "..") return false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (IsKeySafe(text[i])) continue;
    if (text[i] != '%' || i + 2 >= text.size() || !IsUpperHex(text[i + 1]) ||
        !IsUpperHex(text[i + 2])) {
      return false;
    }
    i += 2;
  }
  return true;
}

std::string FormatKeyValue(const Column& column, int64_t row) {
  if (column.IsNull(row)) return std::string(kNullKey);
  switch (column.type()) {
    case TypeId::kInt64:
      return std::to_string(column.GetInt64(row));
    case TypeId::kBool:
      return column.GetBool(row) ? "true" : "false";
    case TypeId::kFloat64:
      return EscapeKeyText(fmt::format("{}", column.GetFloat64(row)));
    case TypeId::kTimestamp: {
      // Compact ISO-8601: ':' would need escaping, and the fixed layout keeps it unambiguous.
      std::string s = FormatTimestamp(column.GetInt64(row));
      s.erase(std::remove_if(s.begin(), s.end(), [](char c) { return c == '-' || c == ':'; }),
              s.end());
      return EscapeKeyText(s);
    }
    case TypeId::kBytes:
    case TypeId::kGeometry: {
      const std::string_view v = column.GetView(row);
      if (v.empty()) return std::string(kEmptyKey);
      static constexpr char kHex[] = "0123456789abcdef";
      std::string out;
      out.reserve(v.size() * 2);
      for (unsigned char c : v) {
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 15]);
      }
      return out;
    }
    case TypeId::kString:
    case TypeId::kJson:
      return EscapeKeyText(column.GetView(row));
  }
  return std::string(kNullKey);
}

std::string ObjectEncoding::Extension() const {
  return std::string(FormatExtension(format)) + std::string(CodecExtension(codec));
}

Result<nlohmann::json> ColumnsJson(const Schema& schema, std::string_view pg_types) {
  nlohmann::json types = nlohmann::json::object();
  if (!pg_types.empty()) {
    types = nlohmann::json::parse(pg_types, nullptr, /*allow_exceptions=*/false);
    if (types.is_discarded() || !types.is_object()) {
      return Status::Invalid("batch tag '{}' is not a JSON object: {}", tag::kPgTypes,
                             pg_types.substr(0, 200));
    }
  }
  nlohmann::json columns = nlohmann::json::array();
  for (const Field& f : schema.fields()) {
    nlohmann::json c = {{"name", f.name}, {"type", std::string(TypeName(f.type))}};
    auto it = types.find(f.name);
    if (it != types.end()) {
      if (!it->is_string()) {
        return Status::Invalid("batch tag '{}': the type of column '{}' is not a string",
                               tag::kPgTypes, f.name);
      }
      c["pg_type"] = *it;
    }
    columns.push_back(std::move(c));
  }
  return columns;
}

Status ObjectEncoder::Encode(const Batch& batch, EncodedObject* out) {
  const std::string_view pg_types = batch.tags().Get(tag::kPgTypes);
  if (encoder_ == nullptr || !(*batch.schema() == *schema_)) {
    SLUICE_ASSIGN_OR_RETURN(encoder_, MakeEncoder(encoding_.format, batch.schema()));
    schema_ = batch.schema();
    columns_ = nullptr;
  }
  if (columns_.is_null() || pg_types != pg_types_) {
    SLUICE_ASSIGN_OR_RETURN(columns_, ColumnsJson(*schema_, pg_types));
    pg_types_ = std::string(pg_types);
  }
  const Column* key =
      encoding_.key_column.empty() ? nullptr : batch.GetColumn(encoding_.key_column);

  const int64_t t0 = NowNs();
  raw_.clear();
  encoder_->Begin(&raw_);
  encoder_->Encode(batch, &raw_);
  SLUICE_RETURN_NOT_OK(encoder_->status());
  const int64_t t1 = NowNs();
  SLUICE_ASSIGN_OR_RETURN(out->bytes, compressor_.Compress(raw_));
  out->serialize_ns = t1 - t0;
  out->compress_ns = NowNs() - t1;
  out->rows = batch.num_rows();
  out->raw_bytes = static_cast<int64_t>(raw_.size());
  out->ext = encoding_.Extension();
  out->columns = columns_;
  out->has_keys = key != nullptr && batch.num_rows() > 0;
  if (out->has_keys) {
    out->first_key = FormatKeyValue(*key, 0);
    out->last_key = FormatKeyValue(*key, batch.num_rows() - 1);
    std::tie(out->min_key, out->max_key) = ColumnRange(*key);
  } else {
    out->first_key.clear();
    out->last_key.clear();
    out->min_key = nullptr;
    out->max_key = nullptr;
  }
  return Status::OK();
}

std::pair<nlohmann::json, nlohmann::json> ColumnRange(const Column& column) {
  const int64_t n = column.length();
  auto valid = [&](int64_t i) { return column.null_count() == 0 || column.IsValid(i); };
  switch (column.type()) {
    case TypeId::kInt64:
    case TypeId::kTimestamp: {
      bool any = false;
      int64_t lo = 0;
      int64_t hi = 0;
      const int64_t* v = column.int64s();
      for (int64_t i = 0; i < n; ++i) {
        if (!valid(i)) continue;
        if (!any || v[i] < lo) lo = v[i];
        if (!any || v[i] > hi) hi = v[i];
        any = true;
      }
      if (!any) return {nullptr, nullptr};
      if (column.type() == TypeId::kTimestamp) return {FormatTimestamp(lo), FormatTimestamp(hi)};
      return {lo, hi};
    }
    case TypeId::kFloat64: {
      bool any = false;
      double lo = 0;
      double hi = 0;
      const double* v = column.float64s();
      for (int64_t i = 0; i < n; ++i) {
        if (!valid(i) || std::isnan(v[i])) continue;
        if (!any || v[i] < lo) lo = v[i];
        if (!any || v[i] > hi) hi = v[i];
        any = true;
      }
      if (!any) return {nullptr, nullptr};
      return {lo, hi};
    }
    case TypeId::kString: {
      bool any = false;
      std::string_view lo;
      std::string_view hi;
      for (int64_t i = 0; i < n; ++i) {
        if (!valid(i)) continue;
        const std::string_view s = column.GetView(i);
        if (!any || s < lo) lo = s;
        if (!any || s > hi) hi = s;
        any = true;
      }
      if (!any) return {nullptr, nullptr};
      return {std::string(lo), std::string(hi)};
    }
    case TypeId::kBool: {
      bool any_false = false;
      bool any_true = false;
      const uint8_t* v = column.bools();
      for (int64_t i = 0; i < n; ++i) {
        if (!valid(i)) continue;
        (v[i] != 0 ? any_true : any_false) = true;
      }
      if (!any_false && !any_true) return {nullptr, nullptr};
      return {!any_false, any_true};
    }
    default:
      return {nullptr, nullptr};
  }
}

}  // namespace io

namespace encoded {

namespace {
enum EncodedColumn : int {
  kObjectIndex,
  kRowsIndex,
  kRawBytesIndex,
  kFirstKeyIndex,
  kLastKeyIndex,
  kMinKeyIndex,
  kMaxKeyIndex,
  kExtensionIndex,
  kColumnsIndex,
};
}  // namespace

SchemaPtr Schema() {
  static const SchemaPtr kSchema = MakeSchema({{kObject, TypeId::kBytes, false},
                                               {kRows, TypeId::kInt64, false},
                                               {kRawBytes, TypeId::kInt64, false},
                                               {kFirstKey, TypeId::kString, true},
                                               {kLastKey, TypeId::kString, true},
                                               {kMinKey, TypeId::kJson, true},
                                               {kMaxKey, TypeId::kJson, true},
                                               {kExtension, TypeId::kString, false},
                                               {kColumns, TypeId::kJson, false}});
  return kSchema;
}

bool IsEncoded(const sluice::Schema& schema) { return schema == *Schema(); }

BatchPtr ToBatch(const io::EncodedObject& o, BatchTags tags) {
  std::vector<ColumnBuilder> b;
  for (const auto& f : Schema()->fields()) b.emplace_back(f.type, 1);
  b[kObjectIndex].AppendString(o.bytes);
  b[kRowsIndex].AppendInt64(o.rows);
  b[kRawBytesIndex].AppendInt64(o.raw_bytes);
  if (o.has_keys) {
    b[kFirstKeyIndex].AppendString(o.first_key);
    b[kLastKeyIndex].AppendString(o.last_key);
  } else {
    b[kFirstKeyIndex].AppendNull();
    b[kLastKeyIndex].AppendNull();
  }
  b[kMinKeyIndex].AppendString(JsonText(o.min_key));
  b[kMaxKeyIndex].AppendString(JsonText(o.max_key));
  b[kExtensionIndex].AppendString(o.ext);
  b[kColumnsIndex].AppendString(JsonText(o.columns));
  std::vector<Column> cols;
  cols.reserve(b.size());
  for (auto& builder : b) cols.push_back(builder.Finish());
  return Batch::MakeUnchecked(Schema(), std::move(cols), 1, std::move(tags));
}

std::string_view PayloadAt(const Batch& batch, int64_t row) {
  return batch.column(kObjectIndex).GetView(row);
}

Result<io::EncodedObject> ObjectAt(const Batch& batch, int64_t row) {
  io::EncodedObject o;
  o.rows = batch.column(kRowsIndex).GetInt64(row);
  o.raw_bytes = batch.column(kRawBytesIndex).GetInt64(row);
  const Column& first = batch.column(kFirstKeyIndex);
  const Column& last = batch.column(kLastKeyIndex);
  o.has_keys = first.IsValid(row) && last.IsValid(row);
  if (o.has_keys) {
    o.first_key = std::string(first.GetView(row));
    o.last_key = std::string(last.GetView(row));
    // Key texts go into keys as they are: only FormatKeyValue's output is acceptable.
    if (!io::IsEscapedKeyText(o.first_key) || !io::IsEscapedKeyText(o.last_key)) {
      return Status::Invalid("encoded object {}: key texts '{}'/'{}' are not escaped", row,
                             o.first_key, o.last_key);
    }
  }
  auto parse = [&](int index, nlohmann::json* out) -> Status {
    const Column& c = batch.column(index);
    if (c.IsNull(row)) return Status::OK();
    *out = nlohmann::json::parse(c.GetView(row), nullptr, /*allow_exceptions=*/false);
    if (out->is_discarded()) {
      return Status::Invalid("encoded object {}: column '{}' is not JSON", row,
                             Schema()->field(index).name);
    }
    return Status::OK();
  };
  SLUICE_RETURN_NOT_OK(parse(kMinKeyIndex, &o.min_key));
  SLUICE_RETURN_NOT_OK(parse(kMaxKeyIndex, &o.max_key));
  SLUICE_RETURN_NOT_OK(parse(kColumnsIndex, &o.columns));
  o.ext = std::string(batch.column(kExtensionIndex).GetView(row));
  return o;
}

}  // namespace encoded

}  // namespace sluice
