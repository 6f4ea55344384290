#include "sluice/io/geojson.h"

#include <simdjson.h>

#include <charconv>
#include <cstring>
#include <set>

#include "sluice/core/log.h"
#include "sluice/io/geometry.h"
#include "sluice/io/json_rows.h"
#include "sluice/io/jsonl.h"
#include "sluice/io/text_internal.h"

namespace sluice::io {

namespace {

constexpr size_t kMaxFeatureBytes = size_t{1} << 30;
constexpr size_t kNone = std::string::npos;

// The EPSG code a GeoJSON 2008 "crs" member names: {"type":"name","properties":{"name":
// "urn:ogc:def:crs:EPSG::3857"}}, "urn:ogc:def:crs:EPSG:6.6:3857", "EPSG:3857" or
// "http://www.opengis.net/def/crs/EPSG/0/3857" (the code is the last number); 4326 for OGC's
// CRS84; -1 for anything else (a crs we cannot name must not become 4326 silently).
int32_t SridOfCrs(std::string_view crs) {
  if (crs.find("CRS84") != std::string_view::npos) return geom::kWgs84;
  if (crs.find("EPSG") == std::string_view::npos) return -1;
  // The value of the key "name" (the word also appears as a value: "type": "name").
  size_t colon = std::string_view::npos;
  for (size_t at = crs.find("\"name\""); at != std::string_view::npos;
       at = crs.find("\"name\"", at + 1)) {
    size_t k = at + 6;
    while (k < crs.size() &&
           (crs[k] == ' ' || crs[k] == '\t' || crs[k] == '\n' || crs[k] == '\r')) {
      ++k;
    }
    if (k < crs.size() && crs[k] == ':') {
      colon = k;
      break;
    }
  }
  if (colon == std::string_view::npos) return -1;
  const size_t open = crs.find('"', colon);
  const size_t close = open == std::string_view::npos ? open : crs.find('"', open + 1);
  if (close == std::string_view::npos) return -1;
  const std::string_view value = crs.substr(open + 1, close - open - 1);
  size_t end = value.size();
  size_t begin = end;
  while (begin > 0 && value[begin - 1] >= '0' && value[begin - 1] <= '9') --begin;
  int32_t srid = 0;
  auto [p, ec] = std::from_chars(value.data() + begin, value.data() + end, srid);
  return ec == std::errc() && srid > 0 && begin > 0 &&
                 (value[begin - 1] == ':' || value[begin - 1] == '/')
             ? srid
             : -1;
}

}  // namespace

// Splits the input into features with a small scanner that follows strings and nesting, so a
// FeatureCollection is never held whole; each feature is then parsed with simdjson.
class GeoJsonDecoder::Impl {
 public:
  explicit Impl(DecodeOptions options) : options_(std::move(options)) {
    options_.batch_rows = std::max<int64_t>(options_.batch_rows, 1);
    options_.infer_rows = std::max<int64_t>(options_.infer_rows, 1);
    if (options_.schema != nullptr) SetSchema(options_.schema);
  }

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
    buf_.append(bytes);
    if (!started_) {
      if (buf_.size() < 3) return Status::OK();  // a byte-order mark may still be coming
      Start();
    }
    SLUICE_RETURN_NOT_OK(Scan(out));
    return Trim();
  }

  Status Finish(std::vector<BatchPtr>* out) {
    if (!started_) Start();
    SLUICE_RETURN_NOT_OK(Scan(out));
    if (skip_start_ != kNone) {
      SLUICE_RETURN_NOT_OK(SkipDone(buf_.size(), out));
    } else if (depth_ != 0 && mode_ == Mode::kRoot && root_start_ != kNone) {
      // A feature of a sequence cut short: one bad record (RFC 8142 readers skip such texts).
      SLUICE_RETURN_NOT_OK(Bad(std::string_view(buf_).substr(root_start_), root_line_,
                               "the input ends inside this feature (truncated?)"));
    } else if (depth_ != 0 || in_string_) {
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

  void Start() {
    if (buf_.starts_with("\xEF\xBB\xBF")) buf_.erase(0, 3);
    started_ = true;
  }

  // Walks buf_ from pos_, completing features as their closing brace arrives.
  Status Scan(std::vector<BatchPtr>* out) {
    const char* b = buf_.data();
    const size_t n = buf_.size();
    for (; pos_ < n; ++pos_) {
      const char c = b[pos_];
      if (skip_start_ != kNone) {  // skipping a bad line of a sequence (on_error: skip)
        if (c == '\n' || c == '\x1e') {
          SLUICE_RETURN_NOT_OK(SkipDone(pos_, out));
          if (c == '\n') ++line_;
        }
        continue;
      }
      if (c == '\x1e' && depth_ > 0) {
        // RFC 8142's record separator inside a text: the text before it was cut short. In a
        // sequence that is one bad record; inside a collection, a broken file.
        if (mode_ != Mode::kRoot || root_start_ == kNone) {
          return Error(line_, "a record separator inside a collection");
        }
        SLUICE_RETURN_NOT_OK(Bad(std::string_view(b + root_start_, pos_ - root_start_), root_line_,
                                 "a truncated GeoJSON text (a record separator "
                                 "comes before its end)"));
        ResetRoot();
        continue;
      }
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
          } else if (depth_ == 1 && value_of_ == "type") {
            root_type_.assign(b + key_start_, pos_ - key_start_);
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
        case '\x1e':
          continue;
        case '"':
          if (depth_ == 0) {
            SLUICE_RETURN_NOT_OK(NotAnObject("a string", out));
            continue;
          }
          if (depth_ == 2 && mode_ == Mode::kFeatures) {
            return Error(line_, fmt::format("feature {} is not an object", index_));
          }
          in_string_ = true;
          key_start_ = pos_ + 1;
          continue;
        case '{':
        case '[':
          if (depth_ == 0) {
            if (c != '{') {
              SLUICE_RETURN_NOT_OK(NotAnObject("an array", out));
              continue;
            }
            mode_ = Mode::kRoot;
            root_start_ = pos_;
            root_line_ = line_;
            root_srid_ = 0;
            root_type_.clear();
            expect_key_ = true;
            key_.clear();
            value_of_.clear();
          } else if (depth_ == 1 && mode_ == Mode::kRoot && value_of_ == "features" &&
                     (root_type_.empty() || root_type_ == "FeatureCollection")) {
            // A collection's features (a Feature may have a foreign member of that name: once
            // its type is known, it is not taken for one).
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
          if (depth_ == 0) {
            SLUICE_RETURN_NOT_OK(NotAnObject(fmt::format("'{}'", c), out));
            continue;
          }
          --depth_;
          if (depth_ == 2 && mode_ == Mode::kFeatures && feature_start_ != kNone) {
            SLUICE_RETURN_NOT_OK(
                Record(std::string_view(b + feature_start_, pos_ + 1 - feature_start_),
                       feature_line_, out));
            feature_start_ = kNone;
          } else if (depth_ == 1 && crs_start_ != kNone) {
            const std::string_view crs(b + crs_start_, pos_ + 1 - crs_start_);
            root_srid_ = SridOfCrs(crs);
            crs_start_ = kNone;
            if (root_srid_ < 0 && options_.srid == 0) {
              return Error(line_, fmt::format("a crs that names no EPSG code ({}); set the "
                                              "source's srid",
                                              internal::Excerpt(crs)));
            }
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
            SLUICE_RETURN_NOT_OK(NotAnObject(
                fmt::format("'{}'", internal::Excerpt(std::string_view(b + pos_, 1))), out));
            continue;
          }
          if (depth_ == 2 && mode_ == Mode::kFeatures) {
            return Error(line_, fmt::format("feature {} is not an object", index_));
          }
          continue;
      }
    }
    return Status::OK();
  }

  // Something other than an object between the texts of a sequence: an error, or with
  // on_error skip a bad record running to the end of its line (or the next separator).
  Status NotAnObject(std::string_view what, std::vector<BatchPtr>* out) {
    if (options_.on_error == OnError::kFail) {
      return Error(line_, fmt::format("expected a GeoJSON object, got {}", what));
    }
    skip_start_ = pos_;
    skip_line_ = line_;
    skip_what_ = std::string(what);
    if (buf_[pos_] == '\n') return SkipDone(pos_, out);
    return Status::OK();
  }
  Status SkipDone(size_t end, std::vector<BatchPtr>* out) {
    const std::string_view text = std::string_view(buf_).substr(skip_start_, end - skip_start_);
    skip_start_ = kNone;
    return Bad(text, skip_line_, fmt::format("expected a GeoJSON object, got {}", skip_what_));
  }

  // A record that is not a feature at all: failed, or skipped and reported.
  Status Bad(std::string_view text, int64_t line, std::string_view why) {
    const Status st = Error(line, fmt::format("feature {}: {}", index_++, why));
    if (options_.on_error == OnError::kFail) return st;
    ++skipped_;
    if (options_.on_skip) options_.on_skip(line, st, text);
    return Status::OK();
  }

  void ResetRoot() {
    depth_ = 0;
    in_string_ = escape_ = false;
    mode_ = Mode::kTop;
    root_start_ = crs_start_ = feature_start_ = kNone;
  }

  // Drops the input no longer needed: everything before the record being read.
  Status Trim() {
    size_t keep = pos_;
    if (feature_start_ != kNone) keep = std::min(keep, feature_start_);
    if (root_start_ != kNone) keep = std::min(keep, root_start_);
    if (crs_start_ != kNone) keep = std::min(keep, crs_start_);
    if (skip_start_ != kNone) keep = std::min(keep, skip_start_);
    if (in_string_ && depth_ == 1) keep = std::min(keep, key_start_);
    if (keep > 0) {
      buf_.erase(0, keep);
      pos_ -= keep;
      auto shift = [keep](size_t& p) {
        if (p != kNone) p -= keep;
      };
      shift(feature_start_);
      shift(root_start_);
      shift(crs_start_);
      shift(skip_start_);
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
    // The source's srid, else the crs of the object holding the feature (its collection, or the
    // feature itself in a sequence), else WGS 84.
    const int32_t srid = options_.srid != 0 ? options_.srid
                         : root_srid_ > 0   ? root_srid_
                                            : geom::kWgs84;
    if (schema_ == nullptr) {
      pending_.push_back({std::string(text), line, index, srid});
      if (static_cast<int64_t>(pending_.size()) >= options_.infer_rows) return Infer(out);
      return Status::OK();
    }
    return Decode(text, line, index, srid, out);
  }

  Status Infer(std::vector<BatchPtr>* out) {
    internal::JsonSchemaInference inference;
    internal::JsonSchemaInference ids;  // the features' own ids, when they have some
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
          inference.AddValue(kv.key, kv.value);
        }
      }
      simdjson::dom::element id;
      if (root["id"].get(id) == simdjson::SUCCESS) {
        any_id = true;
        ids.Add("id", id.type());
      }
    }
    std::vector<Field> fields;
    if (any_id) {
      Field id = ids.Fields()[0];
      id.name = property_id ? "feature_id" : "id";
      if (property_id && inference.Has("feature_id")) {
        return Error(pending_[0].line,
                     "features have an id and properties named both id and feature_id: declare "
                     "the source's schema (the feature id then goes to feature_id, else id)");
      }
      fields.push_back(id);
    }
    for (Field& f : inference.Fields()) fields.push_back(std::move(f));
    fields.push_back({options_.geometry_column, TypeId::kGeometry, true});
    SetSchema(MakeSchema(std::move(fields)));
    std::vector<Pending> pending = std::move(pending_);
    pending_.clear();
    for (const Pending& p : pending) {
      SLUICE_RETURN_NOT_OK(Decode(p.text, p.line, p.index, p.srid, out));
    }
    return Status::OK();
  }

  void SetSchema(SchemaPtr schema) {
    schema_ = std::move(schema);
    rows_.SetSchema(schema_, options_.srid != 0 ? options_.srid : geom::kWgs84);
    geometry_ = rows_.FindColumn(options_.geometry_column, 0);
    feature_id_ = rows_.FindColumn("feature_id", 0);
    id_ = rows_.FindColumn("id", 0);
  }

  Status Decode(std::string_view text, int64_t line, int64_t index, int32_t srid,
                std::vector<BatchPtr>* out) {
    Status st = DecodeFeature(text, srid);
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

  Status DecodeFeature(std::string_view text, int32_t srid) {
    simdjson::dom::element root;
    if (auto err = parser_.parse(text).get(root); err != simdjson::SUCCESS) {
      return Status::Invalid("invalid JSON: {}", simdjson::error_message(err));
    }
    std::string_view type;
    if (root["type"].get_string().get(type) != simdjson::SUCCESS) {
      return Status::Invalid("a GeoJSON object needs a \"type\" string");
    }
    rows_.BeginRow();
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
        if (c < 0 || c == geometry_) {
          WarnDropped(kv.key);
          continue;
        }
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

  // A property that is not a column is dropped: say so, once per name (for the first 10).
  void WarnDropped(std::string_view key) {
    if (dropped_.size() >= 10 || dropped_.count(std::string(key)) != 0) return;
    dropped_.insert(std::string(key));
    Log(LogLevel::kWarn,
        "{}: property '{}' is not a column{} and is dropped; declare it in the source's schema",
        options_.source_name.empty() ? "GeoJSON" : options_.source_name, key,
        key == options_.geometry_column ? " (it has the geometry column's name)"
                                        : " (the schema comes from the first features read, or "
                                          "was declared)");
  }

  struct Pending {
    std::string text;
    int64_t line;
    int64_t index;
    int32_t srid;
  };

  DecodeOptions options_;
  SchemaPtr schema_;
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
  bool started_ = false;  // a leading byte-order mark was looked for
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
  int32_t root_srid_ = 0;      // the current root object's crs (0: none)
  std::string root_type_;      // its "type", once read
  size_t skip_start_ = kNone;  // the bad line being skipped
  int64_t skip_line_ = 0;
  std::string skip_what_;
  int64_t index_ = 0;
  int64_t skipped_ = 0;
  std::set<std::string> dropped_;  // properties warned about
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

Status GeoJsonGeometryToEwkb(std::string_view json, int32_t srid, std::string* out) {
  thread_local simdjson::dom::parser parser;
  simdjson::dom::element root;
  if (auto err = parser.parse(json.data(), json.size()).get(root); err != simdjson::SUCCESS) {
    return Status::Invalid("invalid JSON: {}", simdjson::error_message(err));
  }
  return internal::GeoJsonToEwkb(root, srid, out);
}

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
        geom::EwkbInfo info;
        Status st = text_ == GeometryText::kWkt
                        ? geom::AppendWkt(col.GetView(r), /*with_srid=*/true, &scratch_)
                        : geom::AppendGeoJson(col.GetView(r), &scratch_, &info);
        if (text_ == GeometryText::kGeoJson && !warned_srid_ && st.ok()) {
          if (info.srid != 0 && info.srid != geom::kWgs84) {
            warned_srid_ = true;
            Log(LogLevel::kWarn,
                "column '{}': GeoJSON geometry objects carry no SRID, and these are in EPSG:{}: "
                "read back they are taken as WGS 84 (use geometry: wkt or hex to keep the SRID, "
                "or reproject to EPSG:4326 first)",
                batch.schema()->field(c).name, info.srid);
          }
        }
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
  bool warned_srid_ = false;
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
      geom::EwkbInfo info;
      Status st = geom::AppendGeoJson(g->GetView(r), out, &info);
      if (!st.ok()) {
        out->resize(at);
        out->append("null");
        if (status_.ok()) status_ = st.WithContext("row {}", r);
      } else if (info.srid != 0 && info.srid != geom::kWgs84) {
        if (!warned_srid_) {
          warned_srid_ = true;
          Log(LogLevel::kWarn,
              "writing EPSG:{} geometries as GeoJSON: sluice reads them back with their SRID (a "
              "crs on each feature), but RFC 7946 readers — GDAL, QGIS — take every GeoJSON "
              "as WGS 84; reproject to EPSG:4326 first for other tools",
              info.srid);
        }
        // Not WGS 84: say so as GeoJSON 2008 did, on the feature (each line is a top-level
        // object), so that a reader — ours — gets the SRID back.
        fmt::format_to(
            std::back_inserter(*out),
            R"(,"crs":{{"type":"name","properties":{{"name":"urn:ogc:def:crs:EPSG::{}"}}}})",
            info.srid);
      }
    }
    out->append("}\n");
    if (row_ends != nullptr) row_ends->push_back(out->size());
  }
}

}  // namespace sluice::io
