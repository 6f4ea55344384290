#include "sluice/io/geojson.h"

#include <simdjson.h>

#include <charconv>
#include <cstring>

#include "sluice/io/geometry.h"
#include "sluice/io/json_rows.h"
#include "sluice/io/jsonl.h"
#include "sluice/io/text_internal.h"

namespace sluice::io {

namespace {

constexpr size_t kMaxFeatureBytes = size_t{1} << 30;
constexpr size_t kNone = std::string::npos;

// The EPSG code in a GeoJSON 2008 "crs" member ({"type":"name","properties":{"name":
// "urn:ogc:def:crs:EPSG::3857"}} or "EPSG:3857"); 4326 for OGC's CRS84; 0 when none is found.
int32_t SridOfCrs(std::string_view crs) {
  if (crs.find("CRS84") != std::string_view::npos) return geom::kWgs84;
  size_t at = crs.find("EPSG:");
  if (at == std::string_view::npos) return 0;
  at += 5;
  while (at < crs.size() && crs[at] == ':') ++at;
  int32_t srid = 0;
  auto [p, ec] = std::from_chars(crs.data() + at, crs.data() + crs.size(), srid);
  return ec == std::errc() && srid > 0 ? srid : 0;
}

}  // namespace

// Splits the input into features with a small scanner that follows strings and nesting, so a
// FeatureCollection is never held whole; each feature is then parsed with simdjson.
class GeoJsonDecoder::Impl {
 public:
  explicit Impl(DecodeOptions options) : options_(std::move(options)) {
    options_.batch_rows = std::max<int64_t>(options_.batch_rows, 1);
    options_.infer_rows = std::max<int64_t>(options_.infer_rows, 1);
    srid_ = options_.srid;
    if (options_.schema != nullptr) SetSchema(options_.schema);
  }

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
    buf_.append(bytes);
    SLUICE_RETURN_NOT_OK(Scan(out));
    return Trim();
  }

  Status Finish(std::vector<BatchPtr>* out) {
    SLUICE_RETURN_NOT_OK(Scan(out));
    if (depth_ != 0 || in_string_) {
      return Error(line_, "the input ends inside a JSON value (truncated file?)");
    }
    if (schema_ == nullptr) SLUICE_RETURN_NOT_OK(Infer(out));
    if (rows_.schema() != nullptr && rows_.rows() > 0) out->push_back(rows_.Finish());
    return Status::OK();
  }

  SchemaPtr schema() const { return schema_; }
  int64_t skipped_rows() const { return skipped_; }

 private:
  enum class Mode : uint8_t { kTop, kRoot, kFeatures };

  Status Error(int64_t line, std::string_view message) const {
    return internal::LineError(options_.source_name, line, message);
  }

  // Walks buf_ from pos_, completing features as their closing brace arrives.
  Status Scan(std::vector<BatchPtr>* out) {
    const char* b = buf_.data();
    const size_t n = buf_.size();
    for (; pos_ < n; ++pos_) {
      const char c = b[pos_];
      if (in_string_) {
        if (escape_) {
          escape_ = false;
        } else if (c == '\\') {
          escape_ = true;
        } else if (c == '"') {
          in_string_ = false;
          if (depth_ == 1 && expect_key_) {
            key_.assign(b + key_start_, pos_ - key_start_);
            expect_key_ = false;
          }
        } else if (c == '\n') {
          ++line_;
        }
        continue;
      }
      switch (c) {
        case '\n':
          ++line_;
          continue;
        case ' ':
        case '\r':
        case '\t':
        case '\x1e':  // RFC 8142's record separator
          continue;
        case '"':
          in_string_ = true;
          key_start_ = pos_ + 1;
          if (depth_ == 0) return Error(line_, "expected a GeoJSON object, got a string");
          continue;
        case '{':
        case '[':
          if (depth_ == 0) {
            if (c != '{') return Error(line_, "expected a GeoJSON object, got an array");
            if (pos_ == 0 && !bom_checked_) bom_checked_ = true;
            mode_ = Mode::kRoot;
            root_start_ = pos_;
            root_line_ = line_;
            expect_key_ = true;
            key_.clear();
          } else if (depth_ == 1 && mode_ == Mode::kRoot && value_of_ == "features") {
            if (c != '[') return Error(line_, "\"features\" must be an array");
            mode_ = Mode::kFeatures;
            root_start_ = kNone;  // the collection itself is not kept
          } else if (depth_ == 2 && mode_ == Mode::kFeatures) {
            if (c != '{') return Error(line_, fmt::format("feature {} is not an object", index_));
            feature_start_ = pos_;
            feature_line_ = line_;
          } else if (depth_ == 1 && value_of_ == "crs" && c == '{') {
            crs_start_ = pos_;
          }
          ++depth_;
          continue;
        case '}':
        case ']':
          if (depth_ == 0) return Error(line_, fmt::format("unexpected '{}'", c));
          --depth_;
          if (depth_ == 2 && mode_ == Mode::kFeatures && feature_start_ != kNone) {
            SLUICE_RETURN_NOT_OK(
                Record(std::string_view(b + feature_start_, pos_ + 1 - feature_start_),
                       feature_line_, out));
            feature_start_ = kNone;
          } else if (depth_ == 1 && crs_start_ != kNone) {
            // A crs after the first feature would change the SRID mid-file: ignored.
            if (srid_ == 0 && index_ == 0) {
              srid_ = SridOfCrs(std::string_view(b + crs_start_, pos_ + 1 - crs_start_));
            }
            crs_start_ = kNone;
          } else if (depth_ == 1 && mode_ == Mode::kFeatures) {
            mode_ = Mode::kRoot;  // the features array ended
          } else if (depth_ == 0) {
            if (root_start_ != kNone) {  // a Feature or a geometry, not a collection
              SLUICE_RETURN_NOT_OK(Record(std::string_view(b + root_start_, pos_ + 1 - root_start_),
                                          root_line_, out));
            }
            root_start_ = kNone;
            mode_ = Mode::kTop;
          }
          continue;
        case ':':
          if (depth_ == 1) value_of_ = key_;
          continue;
        case ',':
          if (depth_ == 1) {
            expect_key_ = true;
            value_of_.clear();
          }
          continue;
        default:
          if (depth_ == 0) {
            if (pos_ == 0 && buf_.starts_with("\xEF\xBB\xBF")) {
              pos_ += 2;
              continue;
            }
            return Error(line_, fmt::format("expected a GeoJSON object, got '{}'",
                                            internal::Excerpt(std::string_view(b + pos_, 1))));
          }
          if (depth_ == 2 && mode_ == Mode::kFeatures) {
            return Error(line_, fmt::format("feature {} is not an object", index_));
          }
          continue;
      }
    }
    return Status::OK();
  }

  // Drops the input no longer needed: everything before the record being read.
  Status Trim() {
    size_t keep = pos_;
    if (feature_start_ != kNone) keep = std::min(keep, feature_start_);
    if (root_start_ != kNone) keep = std::min(keep, root_start_);
    if (crs_start_ != kNone) keep = std::min(keep, crs_start_);
    if (in_string_ && depth_ == 1 && expect_key_) keep = std::min(keep, key_start_);
    if (keep > 0) {
      buf_.erase(0, keep);
      pos_ -= keep;
      auto shift = [keep](size_t& p) {
        if (p != kNone) p -= keep;
      };
      shift(feature_start_);
      shift(root_start_);
      shift(crs_start_);
      if (key_start_ >= keep) key_start_ -= keep;
    }
    if (buf_.size() > kMaxFeatureBytes) {
      return Error(line_, "a feature longer than 1 GiB (or a file that is not GeoJSON)");
    }
    return Status::OK();
  }

  // One feature (or geometry) text, complete.
  Status Record(std::string_view text, int64_t line, std::vector<BatchPtr>* out) {
    const int64_t index = index_++;
    if (schema_ == nullptr) {
      pending_.push_back({std::string(text), line, index});
      if (static_cast<int64_t>(pending_.size()) >= options_.infer_rows) return Infer(out);
      return Status::OK();
    }
    return Decode(text, line, index, out);
  }

  Status Infer(std::vector<BatchPtr>* out) {
    internal::JsonSchemaInference inference;
    bool any_id = false;
    bool property_id = false;
    for (const Pending& p : pending_) {
      simdjson::dom::element root;
      if (parser_.parse(p.text).get(root) != simdjson::SUCCESS) continue;  // reported later
      simdjson::dom::object properties;
      if (root["properties"].get_object().get(properties) == simdjson::SUCCESS) {
        for (simdjson::dom::key_value_pair kv : properties) {
          if (kv.key == options_.geometry_column) {
            return Error(p.line, fmt::format("feature {}: a property is named '{}' like the "
                                             "geometry column; set geometry_column to another name",
                                             p.index, kv.key));
          }
          if (kv.key == "id") property_id = true;
          inference.Add(kv.key, kv.value.type());
        }
      }
      if (root["id"].error() == simdjson::SUCCESS) any_id = true;
    }
    std::vector<Field> fields;
    if (any_id) {
      internal::JsonSchemaInference ids;
      for (const Pending& p : pending_) {
        simdjson::dom::element root, id;
        if (parser_.parse(p.text).get(root) != simdjson::SUCCESS) continue;
        if (root["id"].get(id) == simdjson::SUCCESS) ids.Add("id", id.type());
      }
      Field id = ids.Fields()[0];
      id.name = property_id ? "feature_id" : "id";
      fields.push_back(id);
    }
    for (Field& f : inference.Fields()) fields.push_back(std::move(f));
    fields.push_back({options_.geometry_column, TypeId::kGeometry, true});
    SetSchema(MakeSchema(std::move(fields)));
    std::vector<Pending> pending = std::move(pending_);
    pending_.clear();
    for (const Pending& p : pending) SLUICE_RETURN_NOT_OK(Decode(p.text, p.line, p.index, out));
    return Status::OK();
  }

  void SetSchema(SchemaPtr schema) {
    schema_ = std::move(schema);
    rows_.SetSchema(schema_, srid_ != 0 ? srid_ : geom::kWgs84);
    geometry_ = rows_.FindColumn(options_.geometry_column, 0);
    feature_id_ = rows_.FindColumn("feature_id", 0);
    id_ = rows_.FindColumn("id", 0);
  }

  Status Decode(std::string_view text, int64_t line, int64_t index, std::vector<BatchPtr>* out) {
    Status st = DecodeFeature(text);
    if (!st.ok()) {
      st = Error(line, fmt::format("feature {}: {}", index, st.message()));
      if (options_.on_error == OnError::kFail) return st;
      ++skipped_;
      if (options_.on_skip) options_.on_skip(line, st, text);
    }
    if (rows_.rows() >= options_.batch_rows || rows_.bytes() >= internal::kMaxBatchBytes) {
      out->push_back(rows_.Finish());
    }
    return Status::OK();
  }

  Status DecodeFeature(std::string_view text) {
    simdjson::dom::element root;
    if (auto err = parser_.parse(text).get(root); err != simdjson::SUCCESS) {
      return Status::Invalid("invalid JSON: {}", simdjson::error_message(err));
    }
    std::string_view type;
    if (root["type"].get_string().get(type) != simdjson::SUCCESS) {
      return Status::Invalid("a GeoJSON object needs a \"type\" string");
    }
    rows_.BeginRow();
    const int32_t srid = srid_ != 0 ? srid_ : geom::kWgs84;
    if (type != "Feature") {
      if (type == "FeatureCollection") return Status::Invalid("a FeatureCollection inside a file");
      // A bare geometry: a row with only it.
      if (geometry_ < 0) return Status::OK();
      scratch_.clear();
      SLUICE_RETURN_NOT_OK(internal::GeoJsonToEwkb(root, srid, &scratch_));
      rows_.SetBytes(geometry_, scratch_);
      return rows_.EndRow();
    }
    simdjson::dom::object properties;
    bool has_properties = false;
    if (root["properties"].get_object().get(properties) == simdjson::SUCCESS) {
      has_properties = true;
      int expected = 0;
      for (simdjson::dom::key_value_pair kv : properties) {
        const int c = rows_.FindColumn(kv.key, expected);
        if (c < 0 || c == geometry_) continue;
        expected = c + 1;
        if (rows_.IsSeen(c)) continue;
        SLUICE_RETURN_NOT_OK(rows_.Set(c, kv.value));
      }
    }
    simdjson::dom::element id;
    if (root["id"].get(id) == simdjson::SUCCESS) {
      // The feature's id: in feature_id when there is one, else in id unless a property
      // already filled it.
      const int c = feature_id_ >= 0 ? feature_id_ : id_;
      if (c >= 0 && !rows_.IsSeen(c)) SLUICE_RETURN_NOT_OK(rows_.Set(c, id).WithContext("id"));
    }
    (void)has_properties;
    simdjson::dom::element geometry;
    if (root["geometry"].get(geometry) != simdjson::SUCCESS) {
      return Status::Invalid("a Feature needs a \"geometry\" member (null for none)");
    }
    if (geometry_ >= 0 && geometry.type() != simdjson::dom::element_type::NULL_VALUE) {
      scratch_.clear();
      SLUICE_RETURN_NOT_OK(
          internal::GeoJsonToEwkb(geometry, srid, &scratch_).WithContext("geometry"));
      rows_.SetBytes(geometry_, scratch_);
    }
    return rows_.EndRow();
  }

  struct Pending {
    std::string text;
    int64_t line;
    int64_t index;
  };

  DecodeOptions options_;
  SchemaPtr schema_;
  int32_t srid_ = 0;  // the option's, or the file's crs; 0: 4326
  simdjson::dom::parser parser_;
  internal::JsonRowBuilder rows_;
  int geometry_ = -1, feature_id_ = -1, id_ = -1;
  std::string scratch_;
  std::vector<Pending> pending_;  // features read before the schema is known

  // The scanner's state.
  std::string buf_;
  size_t pos_ = 0;
  int64_t line_ = 1;
  int depth_ = 0;
  bool in_string_ = false;
  bool escape_ = false;
  bool bom_checked_ = false;
  Mode mode_ = Mode::kTop;
  bool expect_key_ = false;
  size_t key_start_ = 0;
  std::string key_;       // the last key read at depth 1
  std::string value_of_;  // the key whose value is being read at depth 1
  size_t root_start_ = kNone;
  int64_t root_line_ = 1;
  size_t feature_start_ = kNone;
  int64_t feature_line_ = 1;
  size_t crs_start_ = kNone;
  int64_t index_ = 0;
  int64_t skipped_ = 0;
};

GeoJsonDecoder::GeoJsonDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GeoJsonDecoder::~GeoJsonDecoder() = default;

Result<std::unique_ptr<GeoJsonDecoder>> GeoJsonDecoder::Make(DecodeOptions options) {
  if (options.batch_rows <= 0) return Status::Invalid("batch_rows must be positive");
  if (options.geometry_column.empty()) return Status::Invalid("geometry_column must not be empty");
  return std::unique_ptr<GeoJsonDecoder>(
      new GeoJsonDecoder(std::make_unique<Impl>(std::move(options))));
}

Status GeoJsonDecoder::Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
  return impl_->Feed(bytes, out);
}
Status GeoJsonDecoder::Finish(std::vector<BatchPtr>* out) { return impl_->Finish(out); }
SchemaPtr GeoJsonDecoder::schema() const { return impl_->schema(); }
int64_t GeoJsonDecoder::skipped_rows() const { return impl_->skipped_rows(); }

}  // namespace sluice::io

namespace sluice::io {

bool HasGeometry(const Schema& schema) {
  for (int c = 0; c < schema.num_fields(); ++c) {
    if (schema.field(c).type == TypeId::kGeometry) return true;
  }
  return false;
}

namespace {

// Writes geometry columns as text: each batch's geometry columns are turned into string (WKT)
// or json (GeoJSON) columns, and the batch goes to the format's own encoder.
class GeometryTextEncoder final : public Encoder {
 public:
  GeometryTextEncoder(SchemaPtr schema, GeometryText text, std::unique_ptr<Encoder> inner,
                      SchemaPtr text_schema)
      : schema_(std::move(schema)),
        text_(text),
        inner_(std::move(inner)),
        text_schema_(std::move(text_schema)) {}

  void Begin(std::string* out) override { inner_->Begin(out); }

  void Encode(const Batch& batch, std::string* out, std::vector<size_t>* row_ends) override {
    std::vector<Column> columns;
    columns.reserve(static_cast<size_t>(batch.num_columns()));
    for (int c = 0; c < batch.num_columns(); ++c) {
      const Column& col = batch.column(c);
      if (col.type() != TypeId::kGeometry) {
        columns.push_back(col);
        continue;
      }
      ColumnBuilder b(text_ == GeometryText::kWkt ? TypeId::kString : TypeId::kJson,
                      batch.num_rows());
      for (int64_t r = 0; r < batch.num_rows(); ++r) {
        if (col.IsNull(r)) {
          b.AppendNull();
          continue;
        }
        scratch_.clear();
        Status st = text_ == GeometryText::kWkt
                        ? geom::AppendWkt(col.GetView(r), /*with_srid=*/true, &scratch_)
                        : geom::AppendGeoJson(col.GetView(r), &scratch_);
        if (!st.ok()) {
          if (status_.ok()) {
            status_ = st.WithContext("column '{}'", batch.schema()->field(c).name);
          }
          b.AppendNull();
          continue;
        }
        b.AppendString(scratch_);
      }
      columns.push_back(b.Finish());
    }
    const BatchPtr text = Batch::MakeUnchecked(text_schema_, std::move(columns), batch.num_rows());
    inner_->Encode(*text, out, row_ends);
  }

  Status status() const override { return status_; }

 private:
  SchemaPtr schema_;
  GeometryText text_;
  std::unique_ptr<Encoder> inner_;
  SchemaPtr text_schema_;
  std::string scratch_;
  Status status_;
};

}  // namespace

Result<std::unique_ptr<Encoder>> MakeGeometryTextEncoder(Format format, SchemaPtr schema,
                                                         EncodeOptions options) {
  std::vector<Field> fields;
  for (int c = 0; c < schema->num_fields(); ++c) {
    Field f = schema->field(c);
    if (f.type == TypeId::kGeometry) {
      f.type = options.geometry == GeometryText::kWkt ? TypeId::kString : TypeId::kJson;
    }
    fields.push_back(std::move(f));
  }
  SchemaPtr text_schema = MakeSchema(std::move(fields));
  const GeometryText text = options.geometry;
  options.geometry = GeometryText::kHex;
  SLUICE_ASSIGN_OR_RETURN(auto inner, MakeEncoder(format, text_schema, options));
  return std::unique_ptr<Encoder>(
      new GeometryTextEncoder(std::move(schema), text, std::move(inner), std::move(text_schema)));
}

GeoJsonEncoder::GeoJsonEncoder(SchemaPtr schema) : schema_(std::move(schema)) {
  std::vector<Field> fields;
  for (int c = 0; c < schema_->num_fields(); ++c) {
    if (geometry_ < 0 && schema_->field(c).type == TypeId::kGeometry) {
      geometry_ = c;
      continue;
    }
    property_columns_.push_back(c);
    fields.push_back(schema_->field(c));
  }
  // Further geometry columns are properties: hex EWKB, as JSONL writes them.
  properties_ = std::make_unique<JsonlEncoder>(MakeSchema(std::move(fields)));
}

GeoJsonEncoder::~GeoJsonEncoder() = default;

void GeoJsonEncoder::Encode(const Batch& batch, std::string* out, std::vector<size_t>* row_ends) {
  std::vector<Column> columns;
  for (int c : property_columns_) columns.push_back(batch.column(c));
  std::vector<Field> fields;
  for (int c : property_columns_) fields.push_back(schema_->field(c));
  const BatchPtr properties =
      Batch::MakeUnchecked(MakeSchema(std::move(fields)), std::move(columns), batch.num_rows());
  properties_text_.clear();
  properties_ends_.clear();
  properties_->Encode(*properties, &properties_text_, &properties_ends_);
  size_t begin = 0;
  for (int64_t r = 0; r < batch.num_rows(); ++r) {
    const size_t end = properties_ends_[static_cast<size_t>(r)];
    out->append(R"({"type":"Feature","properties":)");
    out->append(properties_text_, begin, end - 1 - begin);  // without its line end
    begin = end;
    out->append(R"(,"geometry":)");
    const Column* g = geometry_ >= 0 ? &batch.column(geometry_) : nullptr;
    if (g == nullptr || g->IsNull(r)) {
      out->append("null");
    } else {
      const size_t at = out->size();
      Status st = geom::AppendGeoJson(g->GetView(r), out);
      if (!st.ok()) {
        out->resize(at);
        out->append("null");
        if (status_.ok()) status_ = st.WithContext("row {}", r);
      } else if (auto info = geom::InspectEwkb(g->GetView(r));
                 info.ok() && info->srid != 0 && info->srid != geom::kWgs84) {
        // Not WGS 84: say so as GeoJSON 2008 did, on the feature (each line is a top-level
        // object), so that a reader — ours — gets the SRID back.
        fmt::format_to(
            std::back_inserter(*out),
            R"(,"crs":{{"type":"name","properties":{{"name":"urn:ogc:def:crs:EPSG::{}"}}}})",
            info->srid);
      }
    }
    out->append("}\n");
    if (row_ends != nullptr) row_ends->push_back(out->size());
  }
}

}  // namespace sluice::io
