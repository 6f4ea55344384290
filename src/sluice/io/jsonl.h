#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sluice/io/format.h"

namespace sluice::io {

/// Encode batches as newline-delimited JSON: one object per row, keys in schema order, nulls
/// written as null. Timestamps become ISO-8601 strings ("2024-05-01T12:00:00Z"; "infinity" and
/// "-infinity" for INT64_MAX / INT64_MIN; integers of µs outside years 0000-9999), bytes and
/// geometry lower-case hex strings, json columns are embedded as they are (line breaks in them
/// become spaces, and a json `null` reads back as a null: keep JSON that must stay exact in a
/// string column), floats use the shortest text that reads back exactly, with NaN and the
/// infinities written as the strings "NaN", "Infinity" and "-Infinity". String bytes >= 0x80
/// are copied unchanged, so UTF-8 passes through.
class JsonlEncoder final : public Encoder {
 public:
  explicit JsonlEncoder(SchemaPtr schema);

  void Begin(std::string* out) override {}
  void Encode(const Batch& batch, std::string* out,
              std::vector<size_t>* row_ends = nullptr) override;

 private:
  SchemaPtr schema_;
  std::vector<std::string> prefixes_;  // `{"name":` for the first column, `,"name":` after
  size_t fixed_row_bound_ = 0;         // bytes a row needs, not counting var-width data
};

/// Decode newline-delimited JSON objects into batches. With a declared schema, keys are
/// matched to fields by name: a missing key is null, an unknown key is ignored, a value of the
/// wrong type is an error ("line 17: expected int64 for 'id', got string"). Without one, the
/// schema is inferred from the first `infer_rows` objects: columns in order of first
/// appearance, typed int64, float64 (ints and floats mixed), bool, string, or json (objects,
/// arrays, and values of conflicting types); a column that is always null is a string.
/// Timestamps must be declared (ISO-8601 strings, "infinity", "-infinity" or integers of µs);
/// a declared float64 column also takes the strings "NaN", "Infinity" and "-Infinity"; bytes
/// and geometry are read from hex strings. Blank lines are skipped; a line that is not one JSON
/// object is an error. Line numbers count every line from 1.
class JsonlDecoder final : public Decoder {
 public:
  static Result<std::unique_ptr<JsonlDecoder>> Make(DecodeOptions options);
  ~JsonlDecoder() override;

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) override;
  Status Finish(std::vector<BatchPtr>* out) override;
  SchemaPtr schema() const override;
  int64_t skipped_rows() const override;

 private:
  class Impl;
  explicit JsonlDecoder(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::io
