#include "sluice/connectors/redis/stream_decode.h"

#include <charconv>

#include "sluice/core/json_text.h"
#include "sluice/core/time.h"

namespace sluice::redis {

EntryDecoder::EntryDecoder(SchemaPtr schema, std::string json_field)
    : schema_(std::move(schema)),
      row_(schema_->fields().size()),
      json_field_(std::move(json_field)) {
  if (!json_field_.empty()) {
    json_ = std::make_unique<simdjson::dom::parser>();
    json_text_.resize(schema_->fields().size());
  }
  Reset();
}

Status EntryDecoder::ParseJson(std::string_view text) {
  simdjson::dom::element doc;
  if (auto error = json_->parse(text.data(), text.size()).get(doc); error) {
    return Status::Invalid("field '{}': not JSON ({})", json_field_,
                           simdjson::error_message(error));
  }
  simdjson::dom::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) {
    return Status::Invalid("field '{}': not a JSON object", json_field_);
  }
  for (auto [key, value] : object) {
    const int c = schema_->FieldIndex(key);
    if (c < 0) continue;  // a key the schema does not read
    const auto column = static_cast<size_t>(c);
    std::string& out = json_text_[column];
    switch (value.type()) {
      case simdjson::dom::element_type::NULL_VALUE:
        row_[column] = Parsed{};
        continue;
      case simdjson::dom::element_type::STRING:
        out.assign(value.get_string().value_unsafe());
        break;
      default:  // numbers and booleans as written; objects and arrays as JSON text
        out = simdjson::minify(value);
        break;
    }
    SLUICE_RETURN_NOT_OK(Parse(column, out, &row_[column]));
  }
  return Status::OK();
}

void EntryDecoder::Reset() {
  builders_.clear();
  for (const auto& f : schema_->fields()) builders_.emplace_back(f.type);
  rows_ = 0;
}

Status EntryDecoder::Parse(size_t column, std::string_view text, Parsed* out) const {
  const Field& f = schema_->fields()[column];
  const char* end = text.data() + text.size();
  out->present = true;
  switch (f.type) {
    case TypeId::kInt64: {
      auto r = std::from_chars(text.data(), end, out->i);
      if (r.ec != std::errc() || r.ptr != end || text.empty()) break;
      return Status::OK();
    }
    case TypeId::kFloat64: {
      auto r = std::from_chars(text.data(), end, out->d);
      if (r.ec != std::errc() || r.ptr != end || text.empty()) break;
      return Status::OK();
    }
    case TypeId::kBool:
      if (text == "true" || text == "1") {
        out->i = 1;
        return Status::OK();
      }
      if (text == "false" || text == "0") {
        out->i = 0;
        return Status::OK();
      }
      break;
    case TypeId::kTimestamp: {
      auto t = ParseTimestamp(text);
      if (!t.ok()) break;
      out->i = *t;
      return Status::OK();
    }
    case TypeId::kString:
    case TypeId::kJson:
    case TypeId::kBytes:
    case TypeId::kGeometry:
      out->s = text;
      return Status::OK();
  }
  constexpr size_t kShown = 64;
  return Status::Invalid("field '{}': '{}{}' is not a {}", f.name, text.substr(0, kShown),
                         text.size() > kShown ? "..." : "", TypeName(f.type));
}

Status EntryDecoder::ParseField(size_t place, std::string_view name, std::string_view value) {
  const auto& schema_fields = schema_->fields();
  // Entries of one producer list their fields in one order: try the column that came at this
  // place in the last entry before searching the schema.
  if (place >= column_at_.size()) column_at_.resize(place + 1, 0);
  size_t c = column_at_[place];
  if (c >= schema_fields.size() || schema_fields[c].name != name) {
    c = 0;
    while (c < schema_fields.size() && schema_fields[c].name != name) ++c;
    if (c == schema_fields.size()) return Status::OK();  // a field the schema does not read
    column_at_[place] = c;
  }
  return Parse(c, value, &row_[c]);
}

void EntryDecoder::AppendRow() {
  const auto& schema_fields = schema_->fields();
  for (size_t c = 0; c < schema_fields.size(); ++c) {
    ColumnBuilder& b = builders_[c];
    const Parsed& p = row_[c];
    if (!p.present) {
      b.AppendNull();
      continue;
    }
    switch (schema_fields[c].type) {
      case TypeId::kInt64:
        b.AppendInt64(p.i);
        break;
      case TypeId::kTimestamp:
        b.AppendTimestamp(p.i);
        break;
      case TypeId::kFloat64:
        b.AppendFloat64(p.d);
        break;
      case TypeId::kBool:
        b.AppendBool(p.i != 0);
        break;
      case TypeId::kString:
      case TypeId::kJson:
      case TypeId::kBytes:
      case TypeId::kGeometry:
        b.AppendString(p.s);
        break;
    }
  }
  ++rows_;
}

BatchPtr EntryDecoder::Finish() {
  std::vector<Column> cols;
  cols.reserve(builders_.size());
  for (auto& b : builders_) cols.push_back(b.Finish());
  BatchPtr batch = Batch::MakeUnchecked(schema_, std::move(cols), rows_);
  Reset();
  return batch;
}

std::string FieldsAsJson(const std::vector<std::pair<std::string_view, std::string_view>>& fields) {
  nlohmann::json object = nlohmann::json::object();
  for (const auto& [name, value] : fields) object[std::string(name)] = std::string(value);
  return JsonText(object);
}

}  // namespace sluice::redis
