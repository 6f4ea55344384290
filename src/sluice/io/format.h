#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/core/schema.h"

namespace sluice::io {

/// A record format for files and objects.
enum class Format : uint8_t { kJsonl, kCsv, kGeoJson };

/// Return "jsonl", "csv" or "geojson".
std::string_view FormatName(Format format);
/// Parse "jsonl" (or "ndjson"), "csv" or "geojson".
Result<Format> ParseFormat(std::string_view name);
/// Return the format implied by the extension of `path`, ignoring a compression extension:
/// ".jsonl", ".ndjson" and ".json" are JSONL, ".csv" and ".tsv" are CSV, ".geojson",
/// ".geojsonl" and ".geojsons" are GeoJSON.
Result<Format> FormatFromPath(std::string_view path);
/// Return the file extension of `format` with its dot (".jsonl", ".csv").
std::string_view FormatExtension(Format format);

/// What a decoder does with a malformed record or a value of the wrong type.
enum class OnError : uint8_t {
  kFail,  ///< Stop with an error naming the line.
  kSkip,  ///< Drop the record and count it (Decoder::skipped_rows).
};

/// Options shared by the decoders; the CSV-only ones are ignored by JSONL.
struct DecodeOptions {
  /// The declared schema; null to infer one from the first `infer_rows` records.
  SchemaPtr schema;
  /// The most rows a batch holds.
  int64_t batch_rows = 8192;
  /// How many records inference looks at (all of them when the input is shorter).
  int64_t infer_rows = 1000;
  OnError on_error = OnError::kFail;
  /// With on_error: kSkip, called for each record skipped with its line, why, and its text
  /// (without the line end) — a file source sends them to its dead-letter output. May be empty.
  std::function<void(int64_t line, const Status& error, std::string_view record)> on_skip;
  /// Prefix of error messages: "<source_name>:17: ..."; when empty, "line 17: ...".
  std::string source_name;
  char delimiter = ',';  ///< CSV field separator.
  char quote = '"';      ///< CSV quote character.
  bool header = true;    ///< CSV: the first record names the columns.
  /// The SRID of geometries read from text that does not carry one (WKT without "SRID=n;",
  /// GeoJSON); 0 keeps WKT without one and gives GeoJSON 4326 (or its file's "crs").
  int32_t srid = 0;
  /// GeoJSON: the column the features' geometries go to.
  std::string geometry_column = "geometry";
};

/// Turn bytes into batches. Input arrives in pieces of any size: a record, or a UTF-8
/// sequence, may straddle two calls. Memory is bounded by the largest record plus one batch
/// (plus `infer_rows` records while inferring). Not thread-safe.
class Decoder {
 public:
  virtual ~Decoder() = default;
  /// Consume `bytes` and append to `out` every batch completed (each of `batch_rows` rows).
  virtual Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) = 0;
  /// Consume what is left (a last record without a line end) and append the last batches.
  /// Call once, after the last Feed.
  virtual Status Finish(std::vector<BatchPtr>* out) = 0;
  /// Return the schema of the batches: the declared one, or the inferred one once inference
  /// has run (after enough records or at Finish); null before.
  virtual SchemaPtr schema() const = 0;
  /// Return how many records were dropped under OnError::kSkip.
  virtual int64_t skipped_rows() const = 0;
};

/// How JSONL and CSV write geometry columns.
enum class GeometryText : uint8_t {
  kHex,      ///< hex EWKB, as PostgreSQL prints it (the default: exact, and read back as is)
  kWkt,      ///< WKT, as EWKT with the SRID ("SRID=4326;POINT (1 2)")
  kGeoJson,  ///< a GeoJSON geometry object (JSONL embeds it; CSV quotes it); M is dropped
};

/// Parse "hex", "wkt" or "geojson".
Result<GeometryText> ParseGeometryText(std::string_view name);

/// Options shared by the encoders; the CSV-only ones are ignored by JSONL.
struct EncodeOptions {
  char delimiter = ',';                        ///< CSV field separator.
  bool header = true;                          ///< CSV: Begin() writes a header row.
  GeometryText geometry = GeometryText::kHex;  ///< JSONL and CSV: how geometries are written
};

/// Turn batches into bytes. Made for one schema; every batch encoded must have it.
/// Not thread-safe; cheap to make.
class Encoder {
 public:
  virtual ~Encoder() = default;
  /// Append what a file starts with (the CSV header row; nothing for JSONL) to `out`.
  virtual void Begin(std::string* out) = 0;
  /// Append every row of `batch` to `out`, one line per row. When `row_ends` is given, push
  /// onto it `out->size()` after each row, so a caller can split the output at row boundaries.
  virtual void Encode(const Batch& batch, std::string* out,
                      std::vector<size_t>* row_ends = nullptr) = 0;
  /// Return why a value could not be written, once one could not (GeoJSON cannot hold a
  /// non-finite coordinate; its row was written with a null geometry). A sink must check it
  /// after Encode and fail rather than keep the output.
  virtual Status status() const { return Status::OK(); }
};

/// Return a decoder of `format`; errors for options it cannot use (e.g. a quote delimiter).
Result<std::unique_ptr<Decoder>> MakeDecoder(Format format, DecodeOptions options);
/// Return an encoder of `format` for batches of `schema`.
Result<std::unique_ptr<Encoder>> MakeEncoder(Format format, SchemaPtr schema,
                                             EncodeOptions options = {});

}  // namespace sluice::io
