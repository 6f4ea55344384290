#pragma once

// Turning JSON objects into typed rows, shared by the JSONL and GeoJSON decoders. Private to
// src/sluice/io.

#include <simdjson.h>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/column.h"
#include "sluice/core/result.h"
#include "sluice/core/schema.h"

namespace sluice::io::internal {

/// The most var-width bytes a decoded batch holds (keeps int32 column offsets safe).
inline constexpr int64_t kMaxBatchBytes = int64_t{256} << 20;

/// Return "object", "string", ... for a JSON value's type.
std::string_view JsonTypeName(simdjson::dom::element_type t);

/// Append `e` to `out` as compact JSON.
void AppendJson(simdjson::dom::element e, std::string* out);

/// Append the EWKB of a GeoJSON geometry object ({"type":"Point","coordinates":[1,2]}) with
/// `srid` (0: none). Positions take their first two or three numbers (the dimension of the
/// first position); rings must be closed with 4 or more positions. Errors say what is wrong
/// and where ("geometry.coordinates[0][3]: ...").
Status GeoJsonToEwkb(simdjson::dom::element geometry, int32_t srid, std::string* out);

/// Hashes std::string and std::string_view alike, so lookups by a view need no copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

/// Infers a schema from JSON objects: columns in order of first appearance, typed int64,
/// float64 (ints and floats mixed), bool, string, or json (objects, arrays, and values of
/// conflicting types); a column that is always null is a string.
class JsonSchemaInference {
 public:
  /// Note one value of column `key`.
  void Add(std::string_view key, simdjson::dom::element_type type);
  /// Note one value of column `key`, looking at it: a string of WKT or hex EWKB, or a GeoJSON
  /// geometry object, counts as a geometry (a column of only those is a geometry column).
  void AddValue(std::string_view key, simdjson::dom::element value);
  /// Note every key of `object` (AddValue).
  void AddObject(simdjson::dom::object object);
  /// Note a column whose type is fixed (a GeoJSON file's geometry).
  void AddFixed(std::string_view key, TypeId type);
  bool Has(std::string_view key) const { return index_.contains(key); }
  /// Return the fields inferred so far, all nullable.
  std::vector<Field> Fields() const;

 private:
  enum class Seen : uint8_t { kNull, kBool, kInt, kFloat, kString, kJson, kFixed, kGeometry };
  void Note(std::string_view key, Seen seen);
  struct Column {
    std::string name;
    Seen seen;
    TypeId fixed;
  };
  std::vector<Column> columns_;
  StringMap<size_t> index_;
};

/// Builds batches of one schema from JSON values, a row at a time. Not thread-safe.
class JsonRowBuilder {
 public:
  /// Start over with `schema` (no rows buffered). Geometry given as WKT or as a GeoJSON object
  /// without an SRID gets `srid` (GeoJSON objects get 4326 when it is 0).
  void SetSchema(SchemaPtr schema, int32_t srid = 0);
  const SchemaPtr& schema() const { return schema_; }

  /// Return the column named `key`, or -1. `expected` is a guess tried first (rows usually list
  /// keys in the same order: the column after the previous key).
  int FindColumn(std::string_view key, int expected) const;

  void BeginRow();
  /// Whether column `c` has a value (or was given null) in this row.
  bool IsSeen(int c) const { return seen_[static_cast<size_t>(c)] != 0; }
  /// Set column `c` of this row from `value`. A value of the wrong type is an error naming the
  /// column ("expected int64 for 'id', got string"), without a position: the caller adds it.
  Status Set(int c, simdjson::dom::element value);
  /// Set column `c` (var-width) of this row to `bytes`, copied.
  void SetBytes(int c, std::string_view bytes);
  /// Check the row (a non-nullable column without a value is an error) and append it.
  Status EndRow();

  int64_t rows() const { return batch_rows_; }
  int64_t bytes() const { return batch_bytes_; }
  /// Return the rows appended since the last call as a batch.
  BatchPtr Finish();

 private:
  // One parsed value of the current row, held until the whole row is known to be good.
  struct Slot {
    bool set = false;  // false: missing or null
    int64_t i = 0;     // bool, int64, timestamp
    double d = 0;
    std::string_view s;   // var-width types: points into the parser's document or `scratch`
    std::string scratch;  // decoded hex or geometry, re-serialized json
  };

  SchemaPtr schema_;
  int32_t srid_ = 0;
  StringMap<int> index_;  // field name -> column
  std::vector<ColumnBuilder> builders_;
  std::vector<Slot> slots_;
  std::vector<uint8_t> seen_;  // per column: its key was seen in the current row
  int64_t batch_rows_ = 0;     // rows in builders_
  int64_t batch_bytes_ = 0;    // var-width bytes in builders_
};

}  // namespace sluice::io::internal
