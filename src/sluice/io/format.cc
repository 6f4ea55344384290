#include "sluice/io/format.h"

#include "sluice/io/compression.h"
#include "sluice/io/csv.h"
#include "sluice/io/geojson.h"
#include "sluice/io/jsonl.h"

namespace sluice::io {

std::string_view FormatName(Format format) {
  switch (format) {
    case Format::kJsonl:
      return "jsonl";
    case Format::kCsv:
      return "csv";
    case Format::kGeoJson:
      return "geojson";
  }
  return "?";
}

Result<Format> ParseFormat(std::string_view name) {
  if (name == "jsonl" || name == "ndjson") return Format::kJsonl;
  if (name == "csv") return Format::kCsv;
  if (name == "geojson") return Format::kGeoJson;
  return Status::Invalid("unknown format '{}' (expected jsonl, csv or geojson)", name);
}

Result<Format> FormatFromPath(std::string_view path) {
  std::string_view p = path;
  p.remove_suffix(CodecExtension(CodecFromPath(p)).size());
  if (p.ends_with(".jsonl") || p.ends_with(".ndjson") || p.ends_with(".json")) {
    return Format::kJsonl;
  }
  if (p.ends_with(".csv") || p.ends_with(".tsv")) return Format::kCsv;
  if (p.ends_with(".geojson") || p.ends_with(".geojsonl") || p.ends_with(".geojsons")) {
    return Format::kGeoJson;
  }
  return Status::Invalid(
      "cannot tell the format of '{}' from its extension (expected .jsonl, .csv or "
      ".geojson, optionally followed by .gz or .zst)",
      path);
}

std::string_view FormatExtension(Format format) {
  switch (format) {
    case Format::kJsonl:
      return ".jsonl";
    case Format::kCsv:
      return ".csv";
    case Format::kGeoJson:
      return ".geojson";
  }
  return "";
}

Result<std::unique_ptr<Decoder>> MakeDecoder(Format format, DecodeOptions options) {
  switch (format) {
    case Format::kJsonl: {
      SLUICE_ASSIGN_OR_RETURN(auto d, JsonlDecoder::Make(std::move(options)));
      return std::unique_ptr<Decoder>(std::move(d));
    }
    case Format::kCsv: {
      SLUICE_ASSIGN_OR_RETURN(auto d, CsvDecoder::Make(std::move(options)));
      return std::unique_ptr<Decoder>(std::move(d));
    }
    case Format::kGeoJson: {
      SLUICE_ASSIGN_OR_RETURN(auto d, GeoJsonDecoder::Make(std::move(options)));
      return std::unique_ptr<Decoder>(std::move(d));
    }
  }
  return Status::Internal("unknown format");
}

Result<GeometryText> ParseGeometryText(std::string_view name) {
  if (name == "hex") return GeometryText::kHex;
  if (name == "wkt") return GeometryText::kWkt;
  if (name == "geojson") return GeometryText::kGeoJson;
  return Status::Invalid("unknown geometry text '{}' (expected hex, wkt or geojson)", name);
}

Result<std::unique_ptr<Encoder>> MakeEncoder(Format format, SchemaPtr schema,
                                             EncodeOptions options) {
  if (format != Format::kGeoJson && options.geometry != GeometryText::kHex &&
      HasGeometry(*schema)) {
    return MakeGeometryTextEncoder(format, std::move(schema), options);
  }
  switch (format) {
    case Format::kJsonl:
      return std::unique_ptr<Encoder>(new JsonlEncoder(std::move(schema)));
    case Format::kCsv:
      SLUICE_RETURN_NOT_OK(ValidateDelimiter(options.delimiter));
      return std::unique_ptr<Encoder>(new CsvEncoder(std::move(schema), options));
    case Format::kGeoJson:
      if (!HasGeometry(*schema)) {
        return Status::Invalid(
            "format geojson needs a geometry column, and the rows have none ({}): declare the "
            "column holding WKT or hex EWKB as geometry in the source's schema, or cast it "
            "({{type: cast, columns: {{<column>: geometry}}}})",
            schema->ToString());
      }
      return std::unique_ptr<Encoder>(new GeoJsonEncoder(std::move(schema)));
  }
  return Status::Internal("unknown format");
}

}  // namespace sluice::io
