#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sluice/io/format.h"

namespace sluice::io {

/// Encode batches as CSV (RFC 4180): fields that hold the delimiter, a quote or a line break
/// are quoted with quotes doubled; a null is an empty field and an empty string is `""`, so
/// the two survive a round trip. Timestamps are ISO-8601 ("infinity" and "-infinity" for
/// INT64_MAX / INT64_MIN; integers of µs outside years 0000-9999, which the decoder also
/// accepts), bytes and geometry lower-case hex, floats the shortest text that reads back
/// exactly ("nan", "inf" and "-inf" included; the decoder also reads "NaN", "Infinity" and
/// "-Infinity").
class CsvEncoder final : public Encoder {
 public:
  /// Make an encoder for batches of `schema`; `options.delimiter` must be valid (see
  /// ValidateDelimiter).
  CsvEncoder(SchemaPtr schema, EncodeOptions options);

  void Begin(std::string* out) override;
  void Encode(const Batch& batch, std::string* out,
              std::vector<size_t>* row_ends = nullptr) override;

 private:
  SchemaPtr schema_;
  EncodeOptions options_;
};

/// Return an error unless `delimiter` can separate CSV fields: not a letter, digit, quote,
/// line break, or a character that numbers and timestamps contain ("-+.:").
Status ValidateDelimiter(char delimiter, char quote = '"');

/// Decode CSV (RFC 4180) into batches. Quoted fields may hold delimiters, doubled quotes and
/// line breaks; records end with LF or CRLF. An empty unquoted field is null; `""` is an empty
/// string (null for non-string columns). With `header`, the first record names the columns
/// and a declared schema is matched to them by name (extra columns are ignored, a missing one
/// is an error); without it, declared fields are taken in order and inferred columns are named
/// c1, c2, ... Inference looks at the first `infer_rows` records and picks int64, float64,
/// bool (true/false) or string per column. A record with the wrong number of fields, a quote
/// inside an unquoted field, or a value that does not parse as its column's type is an error
/// naming the line where the record starts. Blank lines are skipped (in a one-column file they
/// are nulls).
class CsvDecoder final : public Decoder {
 public:
  static Result<std::unique_ptr<CsvDecoder>> Make(DecodeOptions options);
  ~CsvDecoder() override;

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) override;
  Status Finish(std::vector<BatchPtr>* out) override;
  SchemaPtr schema() const override;
  int64_t skipped_rows() const override;

 private:
  class Impl;
  explicit CsvDecoder(std::unique_ptr<Impl> impl);

  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::io
