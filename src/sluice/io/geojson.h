#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sluice/io/format.h"

namespace sluice::io {

/// Decode GeoJSON into batches: a FeatureCollection of any size (read as a stream, one feature
/// at a time, in memory bounded by the largest feature and a batch), newline-delimited
/// features (GeoJSONSeq, with or without the RS separators of RFC 8142), or bare geometries.
///
/// Each feature is a row: its properties as columns (declared, or inferred from the first
/// `infer_rows` features as the JSONL decoder infers), its geometry as EWKB in
/// `geometry_column` (a geometry column, null for `"geometry": null`), and its `id`, when
/// features have one, in a column `id` — or `feature_id` when a property is already called
/// `id`. Geometries get `srid` when set, else the FeatureCollection's `crs` (an EPSG name such
/// as "urn:ogc:def:crs:EPSG::3857") when it comes before the features, else 4326 (RFC 7946).
/// A property named like the geometry column is an error. Errors name the line and the
/// feature's index ("roads.geojson:17: feature 3: Polygon coordinates ring 0: ...").
class GeoJsonDecoder final : public Decoder {
 public:
  static Result<std::unique_ptr<GeoJsonDecoder>> Make(DecodeOptions options);
  ~GeoJsonDecoder() override;

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) override;
  Status Finish(std::vector<BatchPtr>* out) override;
  SchemaPtr schema() const override;
  int64_t skipped_rows() const override;

 private:
  class Impl;
  explicit GeoJsonDecoder(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

/// Encode batches as newline-delimited GeoJSON features (GeoJSONSeq without RS separators,
/// which ogr2ogr and our decoder read): the first geometry column is the feature's geometry
/// (null when there is none), every other column a property, written as the JSONL encoder
/// writes values. A geometry whose SRID is not 4326 gets a GeoJSON 2008 `crs` member on its
/// feature ("urn:ogc:def:crs:EPSG::3857"), which our decoder reads back (from the first
/// feature); RFC 7946 readers assume WGS 84.
class GeoJsonEncoder final : public Encoder {
 public:
  explicit GeoJsonEncoder(SchemaPtr schema);
  ~GeoJsonEncoder() override;

  void Begin(std::string* out) override {}
  void Encode(const Batch& batch, std::string* out,
              std::vector<size_t>* row_ends = nullptr) override;
  Status status() const override { return status_; }

 private:
  SchemaPtr schema_;
  int geometry_ = -1;                    // the geometry column, or -1
  std::vector<int> property_columns_;    // the others
  std::unique_ptr<Encoder> properties_;  // JSONL of the others
  std::string properties_text_;
  std::vector<size_t> properties_ends_;
  Status status_;
  bool warned_srid_ = false;
};

/// Append the EWKB of GeoJSON geometry object `json` (text) with `srid`.
Status GeoJsonGeometryToEwkb(std::string_view json, int32_t srid, std::string* out);

/// Return whether `schema` has a geometry column.
bool HasGeometry(const Schema& schema);

/// Return an encoder of `format` (JSONL or CSV) that writes geometry columns as
/// `options.geometry` says (WKT or GeoJSON) instead of hex EWKB.
Result<std::unique_ptr<Encoder>> MakeGeometryTextEncoder(Format format, SchemaPtr schema,
                                                         EncodeOptions options);

}  // namespace sluice::io
