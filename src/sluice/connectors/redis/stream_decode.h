#pragma once

// Stream entries (field/value pairs) into typed columns, by a declared schema.

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <simdjson.h>

#include "sluice/connectors/redis/flat_reply.h"
#include "sluice/connectors/redis/redis_client.h"
#include "sluice/core/batch.h"
#include "sluice/core/column.h"
#include "sluice/core/schema.h"

namespace sluice::redis {

/// Builds one batch from stream entries. Each schema column takes the entry's field of the
/// same name: a missing field is NULL; a value that does not parse as the column's type
/// (int64 and float64 by std::from_chars over the whole text, bool true/false/1/0,
/// timestamp ISO-8601) is an error, and then nothing of that entry is appended. Strings,
/// JSON and bytes are taken as they are. Fields not in the schema are ignored.
///
/// With `json_field`, an entry carries its columns in that one field, as a JSON object with a
/// key per column (a missing key or null is NULL; other keys are ignored): strings are taken
/// as their text, numbers and booleans as JSON writes them, objects and arrays as JSON text
/// (for json and string columns); the texts are then parsed as above. An entry without the
/// field, or whose field is not a JSON object, is an error.
class EntryDecoder {
 public:
  explicit EntryDecoder(SchemaPtr schema, std::string json_field = "");

  /// Append the entry whose fields are the flat array `fields` ([name, value, name, value,
  /// ...]: a RedisValue or FlatFields) as the next row. Errors (kInvalidArgument) name the
  /// field and the value.
  template <class Fields>
  Status Append(const Fields& fields) {
    for (auto& p : row_) p = Parsed{};
    const size_t n = fields.is_array() ? fields.size() : 0;
    if (json_ != nullptr) {
      size_t k = 0;
      while (k + 1 < n && FieldText(fields, k) != json_field_) k += 2;
      if (k + 1 >= n) return Status::Invalid("no field '{}' (json_field)", json_field_);
      SLUICE_RETURN_NOT_OK(ParseJson(FieldText(fields, k + 1)));
    } else {
      for (size_t k = 0; k + 1 < n; k += 2) {
        SLUICE_RETURN_NOT_OK(ParseField(k / 2, FieldText(fields, k), FieldText(fields, k + 1)));
      }
    }
    AppendRow();
    return Status::OK();
  }
  int64_t rows() const { return rows_; }
  static std::string_view FieldText(const RedisValue& fields, size_t k) { return fields[k].str(); }
  static std::string_view FieldText(const FlatFields& fields, size_t k) { return fields.str(k); }
  /// Return the rows appended since the last Finish (possibly none) and start anew.
  BatchPtr Finish();

 private:
  struct Parsed {
    bool present = false;
    int64_t i = 0;
    double d = 0;
    std::string_view s;
  };
  // Parse the field `name` at place `place` of the entry into its column, if the schema has it.
  Status ParseField(size_t place, std::string_view name, std::string_view value);
  // Append row_ to the builders.
  void AppendRow();
  Status Parse(size_t column, std::string_view text, Parsed* out) const;
  // Fill row_ from the JSON object `text` (json_field mode).
  Status ParseJson(std::string_view text);
  void Reset();

  SchemaPtr schema_;
  std::vector<ColumnBuilder> builders_;
  std::vector<Parsed> row_;
  std::vector<size_t> column_at_;  // the column of each field place in the last entry
  int64_t rows_ = 0;
  std::string json_field_;
  std::unique_ptr<simdjson::dom::parser> json_;  // json_field mode only
  std::vector<std::string> json_text_;           // per column: its text in the current entry
};

/// Return fields (name, value pairs) as the text of a JSON object of strings, for a
/// dead-letter record; bytes that are not UTF-8 become U+FFFD.
std::string FieldsAsJson(const std::vector<std::pair<std::string_view, std::string_view>>& fields);

/// The same for an entry's fields ([name, value, ...]: a RedisValue or FlatFields).
template <class Fields>
std::string FieldsAsJson(const Fields& fields) {
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  const size_t n = fields.is_array() ? fields.size() : 0;
  for (size_t k = 0; k + 1 < n; k += 2) {
    pairs.emplace_back(EntryDecoder::FieldText(fields, k), EntryDecoder::FieldText(fields, k + 1));
  }
  return FieldsAsJson(pairs);
}

}  // namespace sluice::redis
