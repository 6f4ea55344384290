#include "sluice/core/batch.h"

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "sluice/core/json_text.h"
#include "sluice/core/time.h"

namespace sluice {

BatchTags::BatchTags(std::initializer_list<Entry> entries)
    : BatchTags(std::vector<Entry>(entries)) {}

BatchTags::BatchTags(std::vector<Entry> entries) {
  if (entries.empty()) return;
  // Stable, so that of equal keys the last one given is the last of its run and wins.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.first < b.first; });
  std::vector<Entry> unique;
  unique.reserve(entries.size());
  for (auto& e : entries) {
    if (!unique.empty() && unique.back().first == e.first) {
      unique.back().second = std::move(e.second);
    } else {
      unique.push_back(std::move(e));
    }
  }
  entries_ = std::make_shared<const std::vector<Entry>>(std::move(unique));
}

const std::vector<BatchTags::Entry>& BatchTags::entries() const {
  static const std::vector<Entry> kNone;
  return entries_ == nullptr ? kNone : *entries_;
}

const std::string* BatchTags::Find(std::string_view key) const {
  const auto& e = entries();
  auto it = std::lower_bound(e.begin(), e.end(), key,
                             [](const Entry& a, std::string_view k) { return a.first < k; });
  return it != e.end() && it->first == key ? &it->second : nullptr;
}

std::string_view BatchTags::Get(std::string_view key, std::string_view fallback) const {
  const std::string* v = Find(key);
  return v == nullptr ? fallback : std::string_view(*v);
}

BatchTags BatchTags::With(std::string_view key, std::string_view value) const {
  std::vector<Entry> e = entries();
  e.emplace_back(std::string(key), std::string(value));
  return BatchTags(std::move(e));
}

Batch::Batch(SchemaPtr schema, std::vector<Column> columns, int64_t num_rows, BatchTags tags)
    : schema_(std::move(schema)),
      columns_(std::move(columns)),
      num_rows_(num_rows),
      tags_(std::move(tags)) {
  byte_size_ = 0;
  for (const auto& c : columns_) byte_size_ += c.ByteSize();
}

Result<BatchPtr> Batch::Make(SchemaPtr schema, std::vector<Column> columns) {
  if (static_cast<int>(columns.size()) != schema->num_fields()) {
    return Status::Invalid("batch has {} columns but its schema has {} fields", columns.size(),
                           schema->num_fields());
  }
  const int64_t rows = columns.empty() ? 0 : columns[0].length();
  for (size_t i = 0; i < columns.size(); ++i) {
    const Field& f = schema->field(static_cast<int>(i));
    if (columns[i].type() != f.type) {
      return Status::Invalid("column '{}' is {} but the schema says {}", f.name,
                             TypeName(columns[i].type()), TypeName(f.type));
    }
    if (columns[i].length() != rows) {
      return Status::Invalid("column '{}' has {} rows, expected {}", f.name, columns[i].length(),
                             rows);
    }
  }
  return MakeUnchecked(std::move(schema), std::move(columns), rows);
}

BatchPtr Batch::MakeUnchecked(SchemaPtr schema, std::vector<Column> columns, int64_t num_rows,
                              BatchTags tags) {
  return BatchPtr(new Batch(std::move(schema), std::move(columns), num_rows, std::move(tags)));
}

BatchPtr Batch::WithTags(BatchTags tags) const {
  return MakeUnchecked(schema_, columns_, num_rows_, std::move(tags));
}

const Column* Batch::GetColumn(std::string_view name) const {
  const int i = schema_->FieldIndex(name);
  return i < 0 ? nullptr : &columns_[static_cast<size_t>(i)];
}

BatchPtr Batch::Slice(int64_t offset, int64_t length) const {
  std::vector<Column> cols;
  cols.reserve(columns_.size());
  for (const auto& c : columns_) cols.push_back(c.Slice(offset, length));
  return MakeUnchecked(schema_, std::move(cols), length, tags_);
}

namespace {

template <typename T>
Column FilterFixed(const Column& c, const uint8_t* mask, int64_t out_rows) {
  // One spare slot: the branch-free loop writes past the last kept row.
  std::vector<T> out(static_cast<size_t>(out_rows) + 1);
  const T* in = c.values<T>();
  int64_t j = 0;
  const int64_t n = c.length();
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(j)] = in[i];
    j += mask[i] != 0;
  }
  out.pop_back();
  return Column(c.type(), out_rows, 0, nullptr, Buffer::FromVector(std::move(out)));
}

Column FilterColumn(const Column& c, const uint8_t* mask, int64_t out_rows) {
  if (c.null_count() == 0) {
    switch (c.type()) {
      case TypeId::kBool:
        return FilterFixed<uint8_t>(c, mask, out_rows);
      case TypeId::kInt64:
      case TypeId::kTimestamp:
      case TypeId::kFloat64:
        return FilterFixed<int64_t>(c, mask, out_rows);
      default:
        break;
    }
  }
  ColumnBuilder b(c.type(), out_rows);
  for (int64_t i = 0; i < c.length(); ++i) {
    if (mask[i]) b.AppendFrom(c, i);
  }
  return b.Finish();
}

}  // namespace

BatchPtr Batch::Filter(const uint8_t* mask) const {
  int64_t out_rows = 0;
  for (int64_t i = 0; i < num_rows_; ++i) out_rows += mask[i] != 0;
  if (out_rows == num_rows_) return MakeUnchecked(schema_, columns_, num_rows_, tags_);
  std::vector<Column> cols;
  cols.reserve(columns_.size());
  for (const auto& c : columns_) cols.push_back(FilterColumn(c, mask, out_rows));
  return MakeUnchecked(schema_, std::move(cols), out_rows, tags_);
}

BatchPtr Batch::Take(const std::vector<int32_t>& indices) const {
  std::vector<Column> cols;
  cols.reserve(columns_.size());
  const auto n = static_cast<int64_t>(indices.size());
  for (const auto& c : columns_) {
    ColumnBuilder b(c.type(), n);
    for (int32_t idx : indices) b.AppendFrom(c, idx);
    cols.push_back(b.Finish());
  }
  return MakeUnchecked(schema_, std::move(cols), n, tags_);
}

Result<BatchPtr> Concatenate(const std::vector<BatchPtr>& batches) {
  if (batches.empty()) return Status::Invalid("cannot concatenate zero batches");
  if (batches.size() == 1) return batches[0];
  const SchemaPtr& schema = batches[0]->schema();
  int64_t rows = 0;
  for (const auto& b : batches) {
    if (!(*b->schema() == *schema)) {
      return Status::Invalid("cannot concatenate batches with schemas [{}] and [{}]",
                             schema->ToString(), b->schema()->ToString());
    }
    rows += b->num_rows();
  }
  std::vector<Column> cols;
  for (int c = 0; c < schema->num_fields(); ++c) {
    ColumnBuilder builder(schema->field(c).type, rows);
    for (const auto& b : batches) builder.AppendColumn(b->column(c));
    cols.push_back(builder.Finish());
  }
  std::vector<BatchTags::Entry> common;
  for (const auto& e : batches[0]->tags().entries()) {
    const bool shared = std::all_of(batches.begin() + 1, batches.end(), [&](const BatchPtr& b) {
      const std::string* v = b->tags().Find(e.first);
      return v != nullptr && *v == e.second;
    });
    if (shared) common.push_back(e);
  }
  return Batch::MakeUnchecked(schema, std::move(cols), rows, BatchTags(std::move(common)));
}

namespace {

std::string ToHex(std::string_view bytes) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

Result<std::string> FromHex(std::string_view hex) {
  if (hex.size() % 2 != 0) return Status::Invalid("hex string has odd length");
  std::string out(hex.size() / 2, '\0');
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return Status::Invalid("'{}' is not hex", hex.substr(0, 32));
    out[i] = static_cast<char>(hi * 16 + lo);
  }
  return out;
}

Status AppendJsonValue(const nlohmann::json& v, const Field& f, ColumnBuilder* b) {
  if (v.is_null()) {
    b->AppendNull();
    return Status::OK();
  }
  switch (f.type) {
    case TypeId::kBool:
      if (!v.is_boolean())
        return Status::Invalid("field '{}': expected bool, got {}", f.name, JsonText(v));
      b->AppendBool(v.get<bool>());
      break;
    case TypeId::kInt64:
      if (!v.is_number_integer())
        return Status::Invalid("field '{}': expected integer, got {}", f.name, JsonText(v));
      b->AppendInt64(v.get<int64_t>());
      break;
    case TypeId::kFloat64:
      if (!v.is_number())
        return Status::Invalid("field '{}': expected number, got {}", f.name, JsonText(v));
      b->AppendFloat64(v.get<double>());
      break;
    case TypeId::kTimestamp:
      if (v.is_number_integer()) {
        b->AppendTimestamp(v.get<int64_t>());
      } else if (v.is_string()) {
        SLUICE_ASSIGN_OR_RETURN(int64_t ts, ParseTimestamp(v.get<std::string>()));
        b->AppendTimestamp(ts);
      } else {
        return Status::Invalid("field '{}': expected timestamp, got {}", f.name, JsonText(v));
      }
      break;
    case TypeId::kString:
      if (!v.is_string())
        return Status::Invalid("field '{}': expected string, got {}", f.name, JsonText(v));
      b->AppendString(v.get<std::string>());
      break;
    case TypeId::kBytes:
    case TypeId::kGeometry: {
      if (!v.is_string())
        return Status::Invalid("field '{}': expected hex string, got {}", f.name, JsonText(v));
      SLUICE_ASSIGN_OR_RETURN(std::string raw, FromHex(v.get<std::string>()));
      b->AppendString(raw);
      break;
    }
    case TypeId::kJson:
      b->AppendString(JsonText(v));
      break;
  }
  return Status::OK();
}

nlohmann::json CellToJson(const Column& c, int64_t i) {
  if (c.IsNull(i)) return nullptr;
  switch (c.type()) {
    case TypeId::kBool:
      return c.GetBool(i);
    case TypeId::kInt64:
      return c.GetInt64(i);
    case TypeId::kFloat64:
      return c.GetFloat64(i);
    case TypeId::kTimestamp:
      return FormatTimestamp(c.GetInt64(i));
    case TypeId::kString:
      return std::string(c.GetView(i));
    case TypeId::kBytes:
    case TypeId::kGeometry:
      return ToHex(c.GetView(i));
    case TypeId::kJson: {
      auto parsed = nlohmann::json::parse(c.GetView(i), nullptr, /*allow_exceptions=*/false);
      return parsed.is_discarded() ? nlohmann::json(std::string(c.GetView(i))) : parsed;
    }
  }
  return nullptr;
}

}  // namespace

std::string Batch::ToString() const {
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t r = 0; r < num_rows_; ++r) {
    nlohmann::json row = nlohmann::json::array();
    for (const auto& c : columns_) row.push_back(CellToJson(c, r));
    rows.push_back(std::move(row));
  }
  return JsonText(rows);
}

Result<BatchPtr> BatchFromJson(const SchemaPtr& schema, std::string_view json) {
  auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_array()) {
    return Status::Invalid("BatchFromJson: expected a JSON array of rows");
  }
  std::vector<ColumnBuilder> builders;
  for (const auto& f : schema->fields()) builders.emplace_back(f.type);
  for (size_t r = 0; r < doc.size(); ++r) {
    const auto& row = doc[r];
    if (!row.is_array() || static_cast<int>(row.size()) != schema->num_fields()) {
      return Status::Invalid("BatchFromJson: row {} must be an array of {} values", r,
                             schema->num_fields());
    }
    for (int c = 0; c < schema->num_fields(); ++c) {
      SLUICE_RETURN_NOT_OK(AppendJsonValue(row[static_cast<size_t>(c)], schema->field(c),
                                           &builders[static_cast<size_t>(c)])
                               .WithContext("BatchFromJson row {}", r));
    }
  }
  std::vector<Column> cols;
  for (auto& b : builders) cols.push_back(b.Finish());
  return Batch::MakeUnchecked(schema, std::move(cols), static_cast<int64_t>(doc.size()));
}

}  // namespace sluice
