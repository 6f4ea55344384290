#include "sluice/io/json_rows.h"

#include <algorithm>

#include "sluice/core/time.h"
#include "sluice/io/geometry.h"
#include "sluice/io/text_internal.h"

namespace sluice::io::internal {

std::string_view JsonTypeName(simdjson::dom::element_type t) {
  using simdjson::dom::element_type;
  switch (t) {
    case element_type::ARRAY:
      return "array";
    case element_type::OBJECT:
      return "object";
    case element_type::INT64:
      return "int64";
    case element_type::UINT64:
      return "uint64";
    case element_type::DOUBLE:
      return "float64";
    case element_type::STRING:
      return "string";
    case element_type::BOOL:
      return "bool";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "?";
}

// Appends `e` to `out` as compact JSON.
void AppendJson(simdjson::dom::element e, std::string* out) {
  using simdjson::dom::element_type;
  char num[kMaxNumberChars + 2];
  switch (e.type()) {
    case element_type::ARRAY: {
      out->push_back('[');
      bool first = true;
      const simdjson::dom::array array = e.get_array().value_unsafe();
      for (simdjson::dom::element v : array) {
        if (!first) out->push_back(',');
        first = false;
        AppendJson(v, out);
      }
      out->push_back(']');
      break;
    }
    case element_type::OBJECT: {
      out->push_back('{');
      bool first = true;
      const simdjson::dom::object object = e.get_object().value_unsafe();
      for (simdjson::dom::key_value_pair kv : object) {
        if (!first) out->push_back(',');
        first = false;
        const size_t start = out->size();
        out->resize(start + kv.key.size() * 6 + 2);
        char* end = WriteJsonString(kv.key, out->data() + start);
        out->resize(static_cast<size_t>(end - out->data()));
        out->push_back(':');
        AppendJson(kv.value, out);
      }
      out->push_back('}');
      break;
    }
    case element_type::INT64:
      out->append(num, WriteInt64(e.get_int64().value_unsafe(), num));
      break;
    case element_type::UINT64: {
      const uint64_t v = e.get_uint64().value_unsafe();
      out->append(num, std::to_chars(num, num + sizeof(num), v).ptr);
      break;
    }
    case element_type::DOUBLE:
      out->append(num, WriteDouble(e.get_double().value_unsafe(), num));
      break;
    case element_type::STRING: {
      const std::string_view s = e.get_string().value_unsafe();
      const size_t start = out->size();
      out->resize(start + s.size() * 6 + 2);
      char* end = WriteJsonString(s, out->data() + start);
      out->resize(static_cast<size_t>(end - out->data()));
      break;
    }
    case element_type::BOOL:
      out->append(e.get_bool().value_unsafe() ? "true" : "false");
      break;
    case element_type::NULL_VALUE:
      out->append("null");
      break;
  }
}

namespace {

// Whether `value` is a GeoJSON geometry object that reads into EWKB.
bool IsGeoJsonGeometry(simdjson::dom::element value) {
  std::string_view type;
  if (value["type"].get_string().get(type) != simdjson::SUCCESS) return false;
  static constexpr std::string_view kTypes[] = {
      "Point",           "LineString",   "Polygon",           "MultiPoint",
      "MultiLineString", "MultiPolygon", "GeometryCollection"};
  if (std::find(std::begin(kTypes), std::end(kTypes), type) == std::end(kTypes)) return false;
  thread_local std::string scratch;
  scratch.clear();
  return GeoJsonToEwkb(value, 0, &scratch).ok();
}

}  // namespace

void JsonSchemaInference::Add(std::string_view key, simdjson::dom::element_type type) {
  using simdjson::dom::element_type;
  Seen seen;
  switch (type) {
    case element_type::NULL_VALUE:
      seen = Seen::kNull;
      break;
    case element_type::BOOL:
      seen = Seen::kBool;
      break;
    case element_type::INT64:
      seen = Seen::kInt;
      break;
    case element_type::UINT64:
    case element_type::DOUBLE:
      seen = Seen::kFloat;
      break;
    case element_type::STRING:
      seen = Seen::kString;
      break;
    default:
      seen = Seen::kJson;
  }
  Note(key, seen);
}

void JsonSchemaInference::AddValue(std::string_view key, simdjson::dom::element value) {
  using simdjson::dom::element_type;
  if (value.type() == element_type::STRING &&
      geom::LooksLikeGeometryText(value.get_string().value_unsafe())) {
    return Note(key, Seen::kGeometry);
  }
  if (value.type() == element_type::OBJECT && IsGeoJsonGeometry(value)) {
    return Note(key, Seen::kGeometry);
  }
  Add(key, value.type());
}

void JsonSchemaInference::Note(std::string_view key, Seen seen) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    it = index_.emplace(std::string(key), columns_.size()).first;
    columns_.push_back({std::string(key), Seen::kNull, TypeId::kString});
  }
  Column& column = columns_[it->second];
  if (column.seen == Seen::kFixed) return;
  const Seen a = column.seen;
  if (a == Seen::kNull || a == seen) {
    column.seen = seen;
  } else if (seen == Seen::kNull) {
    // keeps what was seen
  } else if ((a == Seen::kInt && seen == Seen::kFloat) ||
             (a == Seen::kFloat && seen == Seen::kInt)) {
    column.seen = Seen::kFloat;
  } else if ((a == Seen::kGeometry && seen == Seen::kString) ||
             (a == Seen::kString && seen == Seen::kGeometry)) {
    column.seen = Seen::kString;  // some values are not geometries: text
  } else {
    column.seen = Seen::kJson;
  }
}

void JsonSchemaInference::AddObject(simdjson::dom::object object) {
  for (simdjson::dom::key_value_pair kv : object) AddValue(kv.key, kv.value);
}

void JsonSchemaInference::AddFixed(std::string_view key, TypeId type) {
  auto it = index_.find(key);
  if (it == index_.end()) {
    index_.emplace(std::string(key), columns_.size());
    columns_.push_back({std::string(key), Seen::kFixed, type});
  } else {
    columns_[it->second].seen = Seen::kFixed;
    columns_[it->second].fixed = type;
  }
}

std::vector<Field> JsonSchemaInference::Fields() const {
  std::vector<Field> fields;
  fields.reserve(columns_.size());
  for (const Column& c : columns_) {
    TypeId type;
    switch (c.seen) {
      case Seen::kBool:
        type = TypeId::kBool;
        break;
      case Seen::kInt:
        type = TypeId::kInt64;
        break;
      case Seen::kFloat:
        type = TypeId::kFloat64;
        break;
      case Seen::kJson:
        type = TypeId::kJson;
        break;
      case Seen::kFixed:
        type = c.fixed;
        break;
      case Seen::kGeometry:
        type = TypeId::kGeometry;
        break;
      default:
        type = TypeId::kString;
    }
    fields.push_back({c.name, type, true});
  }
  return fields;
}

void JsonRowBuilder::SetSchema(SchemaPtr schema, int32_t srid) {
  schema_ = std::move(schema);
  srid_ = srid;
  const int n = schema_->num_fields();
  index_.clear();
  for (int c = 0; c < n; ++c) index_.try_emplace(schema_->field(c).name, c);
  builders_.clear();
  for (int c = 0; c < n; ++c) builders_.emplace_back(schema_->field(c).type);
  slots_.assign(static_cast<size_t>(n), Slot());
  seen_.assign(static_cast<size_t>(n), 0);
  batch_rows_ = 0;
  batch_bytes_ = 0;
}

int JsonRowBuilder::FindColumn(std::string_view key, int expected) const {
  if (expected < schema_->num_fields() && schema_->field(expected).name == key) return expected;
  auto it = index_.find(key);
  return it == index_.end() ? -1 : it->second;
}

void JsonRowBuilder::BeginRow() {
  for (Slot& s : slots_) s.set = false;
  std::fill(seen_.begin(), seen_.end(), 0);
}

Status JsonRowBuilder::Set(int c, simdjson::dom::element value) {
  using simdjson::dom::element_type;
  const Field& f = schema_->field(c);
  Slot& s = slots_[static_cast<size_t>(c)];
  seen_[static_cast<size_t>(c)] = 1;
  const element_type t = value.type();
  if (t == element_type::NULL_VALUE) return Status::OK();
  bool ok = true;
  switch (f.type) {
    case TypeId::kBool:
      ok = t == element_type::BOOL;
      if (ok) s.i = value.get_bool().value_unsafe();
      break;
    case TypeId::kInt64:
      ok = t == element_type::INT64;
      if (ok) s.i = value.get_int64().value_unsafe();
      break;
    case TypeId::kFloat64:
      if (t == element_type::INT64) {
        s.d = static_cast<double>(value.get_int64().value_unsafe());
      } else if (t == element_type::UINT64) {
        s.d = static_cast<double>(value.get_uint64().value_unsafe());
      } else if (t == element_type::DOUBLE) {
        s.d = value.get_double().value_unsafe();
      } else if (t == element_type::STRING) {
        if (!ParseNonFinite(value.get_string().value_unsafe(), &s.d)) {
          return Status::Invalid(
              "{}", fmt::format("expected float64 for '{}', got \"{}\" (numbers, \"NaN\", "
                                "\"Infinity\" and \"-Infinity\" are floats)",
                                f.name, Excerpt(value.get_string().value_unsafe())));
        }
      } else {
        ok = false;
      }
      break;
    case TypeId::kTimestamp:
      if (t == element_type::INT64) {
        s.i = value.get_int64().value_unsafe();
      } else if (t == element_type::STRING &&
                 ParseInfiniteTimestamp(value.get_string().value_unsafe(), &s.i)) {
        break;
      } else if (t == element_type::STRING) {
        auto ts = ParseTimestamp(value.get_string().value_unsafe());
        if (!ts.ok()) {
          return Status::Invalid(
              "{}", fmt::format("invalid timestamp for '{}': {}", f.name, ts.status().message()));
        }
        s.i = *ts;
      } else {
        ok = false;
      }
      break;
    case TypeId::kString:
      ok = t == element_type::STRING;
      if (ok) s.s = value.get_string().value_unsafe();
      break;
    case TypeId::kGeometry:
      s.scratch.clear();
      if (t == element_type::OBJECT) {
        SLUICE_RETURN_NOT_OK(GeoJsonToEwkb(value, srid_ != 0 ? srid_ : geom::kWgs84, &s.scratch)
                                 .WithContext("'{}'", f.name));
      } else if (t != element_type::STRING) {
        ok = false;
      } else {
        SLUICE_RETURN_NOT_OK(geom::TextToEwkb(value.get_string().value_unsafe(), srid_, &s.scratch)
                                 .WithContext("'{}'", f.name));
      }
      s.s = s.scratch;
      break;
    case TypeId::kBytes:
      if (t != element_type::STRING) {
        ok = false;
      } else if (!ParseHex(value.get_string().value_unsafe(), &s.scratch)) {
        return Status::Invalid("{}",
                               fmt::format("expected a hex string for '{}', got \"{}\"", f.name,
                                           Excerpt(value.get_string().value_unsafe())));
      } else {
        s.s = s.scratch;
      }
      break;
    case TypeId::kJson:
      s.scratch.clear();
      AppendJson(value, &s.scratch);
      s.s = s.scratch;
      break;
  }
  if (!ok) {
    return Status::Invalid("{}", fmt::format("expected {} for '{}', got {}", TypeName(f.type),
                                             f.name, JsonTypeName(t)));
  }
  s.set = true;
  return Status::OK();
}

void JsonRowBuilder::SetBytes(int c, std::string_view bytes) {
  Slot& s = slots_[static_cast<size_t>(c)];
  seen_[static_cast<size_t>(c)] = 1;
  s.scratch.assign(bytes);
  s.s = s.scratch;
  s.set = true;
}

Status JsonRowBuilder::EndRow() {
  const int n = schema_->num_fields();
  for (int c = 0; c < n; ++c) {
    const Field& f = schema_->field(c);
    if (!f.nullable && !slots_[static_cast<size_t>(c)].set) {
      return Status::Invalid("missing value for non-nullable '{}'", f.name);
    }
  }
  for (int c = 0; c < n; ++c) {
    const Slot& s = slots_[static_cast<size_t>(c)];
    ColumnBuilder& b = builders_[static_cast<size_t>(c)];
    if (!s.set) {
      b.AppendNull();
      continue;
    }
    switch (b.type()) {
      case TypeId::kBool:
        b.AppendBool(s.i != 0);
        break;
      case TypeId::kInt64:
        b.AppendInt64(s.i);
        break;
      case TypeId::kTimestamp:
        b.AppendTimestamp(s.i);
        break;
      case TypeId::kFloat64:
        b.AppendFloat64(s.d);
        break;
      default:
        b.AppendString(s.s);
        batch_bytes_ += static_cast<int64_t>(s.s.size());
    }
  }
  ++batch_rows_;
  return Status::OK();
}

BatchPtr JsonRowBuilder::Finish() {
  std::vector<Column> columns;
  columns.reserve(builders_.size());
  for (ColumnBuilder& b : builders_) columns.push_back(b.Finish());
  BatchPtr batch = Batch::MakeUnchecked(schema_, std::move(columns), batch_rows_);
  batch_rows_ = 0;
  batch_bytes_ = 0;
  return batch;
}

}  // namespace sluice::io::internal
