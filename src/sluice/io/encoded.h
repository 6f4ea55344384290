#pragma once

// Objects: a batch serialized (JSONL or CSV) and compressed, as the `encode` transform and the
// `object_store` sink make them — both through ObjectEncoder, so an object and its key are the
// same whichever node encoded it.

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/core/schema.h"
#include "sluice/io/compression.h"
#include "sluice/io/format.h"

namespace sluice::io {

/// Return row `row` of `column` as text fit for an object key, escaped by EscapeKeyText:
/// integers in decimal, floats in their shortest round-trip form, bools as true/false,
/// timestamps as yyyymmddThhmmss[.ffffff]Z, bytes and geometry as lower-case hex, strings and
/// JSON as their text. Null is "%null", which no escaped value can be. Within one column type,
/// different values give different texts.
std::string FormatKeyValue(const Column& column, int64_t row);

/// Return `text` fit for one piece of an object key, without losing what it was: every byte
/// other than [A-Za-z0-9._-] becomes %XX (upper-case hex; '%' itself is %25), so two different
/// texts never give the same result and a value can add no '/' to a key. The empty text is
/// "%empty", and "." and ".." are "%2E" and "%2E%2E", so that a value alone in a path segment
/// always makes a valid segment.
std::string EscapeKeyText(std::string_view text);

/// Return true when `text` could be a result of EscapeKeyText or FormatKeyValue (only
/// [A-Za-z0-9._-] and '%' escapes), so it is safe to put into a key as it is.
bool IsEscapedKeyText(std::string_view text);

/// How batches become objects: shared by the `encode` transform and the `object_store` sink.
struct ObjectEncoding {
  Format format = Format::kJsonl;
  Codec codec = Codec::kGzip;
  int level = kDefaultLevel;  ///< 0: the codec's default.
  /// Column whose first and last values name the object and whose range the manifest records;
  /// empty: none.
  std::string key_column = "id";

  /// Return the extension of the objects: ".jsonl.gz", ".csv.zst", ".jsonl", ...
  std::string Extension() const;
};

/// One encoded object and what a manifest says of it.
struct EncodedObject {
  std::string bytes;  ///< The object as stored (compressed).
  int64_t rows = 0;
  int64_t raw_bytes = 0;   ///< Size before compression.
  bool has_keys = false;   ///< The batch had the key column: the four fields below are set.
  std::string first_key;   ///< FormatKeyValue of the key column's first row.
  std::string last_key;    ///< FormatKeyValue of the key column's last row.
  nlohmann::json min_key;  ///< Smallest non-null key value (see ColumnRange), or null.
  nlohmann::json max_key;  ///< Largest non-null key value, or null.
  std::string ext;         ///< ObjectEncoding::Extension().
  /// The columns: [{"name", "type" (sluice type), "pg_type" (when the batch's tag `pg_types`
  /// names it)}], so that a restore can recreate the table.
  nlohmann::json columns;
  int64_t serialize_ns = 0;
  int64_t compress_ns = 0;
};

/// Encode batches into objects: every column of the batch (names starting with '_' included),
/// one object per call. Not thread-safe; an instance caches its encoder for the last schema.
class ObjectEncoder {
 public:
  explicit ObjectEncoder(ObjectEncoding encoding) : encoding_(std::move(encoding)) {}

  const ObjectEncoding& encoding() const { return encoding_; }

  /// Encode every row of `batch` into `out`. When the batch lacks the key column, `out` has
  /// no keys (has_keys false; the caller decides whether that is an error). InvalidArgument
  /// when the batch's `pg_types` tag is not a JSON object of strings.
  Status Encode(const Batch& batch, EncodedObject* out);

 private:
  ObjectEncoding encoding_;
  SchemaPtr schema_;  // of the batches encoder_ was made for
  std::unique_ptr<Encoder> encoder_;
  nlohmann::json columns_;  // for schema_ and pg_types_
  std::string pg_types_;    // the tag columns_ was made with
  std::string raw_;         // reused between batches
  BufferCompressor compressor_{encoding_.codec, encoding_.level};
};

/// Return the columns of a batch of `schema` as the manifest records them (see
/// EncodedObject::columns), with the PostgreSQL types of tag `pg_types` (a JSON object of
/// column name -> type text; empty: none).
Result<nlohmann::json> ColumnsJson(const Schema& schema, std::string_view pg_types);

/// Return the smallest and largest non-null values of `column` as JSON (numbers, strings,
/// ISO-8601 timestamps; nulls when the column has no value or a type without an order).
std::pair<nlohmann::json, nlohmann::json> ColumnRange(const Column& column);

}  // namespace sluice::io

namespace sluice {

/// Batches of finished objects, as the `encode` transform emits them for an `object_store`
/// sink: one row per object. The batch carries the tags of the batch it was made from (the
/// database, table and date for key templates); no column of the user's data is a column here.
namespace encoded {
inline constexpr const char* kObject = "_object";       ///< bytes: the compressed payload
inline constexpr const char* kRows = "_rows";           ///< int64: rows in the object
inline constexpr const char* kRawBytes = "_raw_bytes";  ///< int64: bytes before compression
inline constexpr const char* kFirstKey = "_first_key";  ///< string: FormatKeyValue, first row
inline constexpr const char* kLastKey = "_last_key";    ///< string: FormatKeyValue, last row
inline constexpr const char* kMinKey = "_min_key";      ///< json: smallest key value
inline constexpr const char* kMaxKey = "_max_key";      ///< json: largest key value
inline constexpr const char* kExtension = "_ext";       ///< string: ".jsonl.gz", ".csv.zst", ...
inline constexpr const char* kColumns = "_columns";     ///< json: EncodedObject::columns

/// Return the schema of encoded batches.
SchemaPtr Schema();
/// Return true when `schema` is that of encoded batches.
bool IsEncoded(const sluice::Schema& schema);
/// Return a one-row encoded batch holding `object`, with `tags`.
BatchPtr ToBatch(const io::EncodedObject& object, BatchTags tags);
/// Return row `row` of an encoded batch as an object whose `bytes` are empty (the payload
/// stays in the batch: read it with PayloadAt). InvalidArgument for a malformed row.
Result<io::EncodedObject> ObjectAt(const Batch& batch, int64_t row);
/// Return the payload of row `row` of an encoded batch (valid while the batch lives).
std::string_view PayloadAt(const Batch& batch, int64_t row);
}  // namespace encoded

}  // namespace sluice
