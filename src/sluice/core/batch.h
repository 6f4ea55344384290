#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/core/column.h"
#include "sluice/core/result.h"
#include "sluice/core/schema.h"

namespace sluice {

class Batch;
/// Batches are immutable and shared: fan-out hands the same pointer to every consumer.
using BatchPtr = std::shared_ptr<const Batch>;

/// Names of the tags the engine's own nodes set and read (see BatchTags).
namespace tag {
/// The database the rows were read from; fills {database} in object keys.
inline constexpr std::string_view kDatabase = "database";
/// The table the rows were read from; fills {table} in object keys.
inline constexpr std::string_view kTable = "table";
/// The UTC day the batch belongs to, yyyy-mm-dd; fills {date} in object keys.
inline constexpr std::string_view kDate = "date";
/// A deterministic identity of the batch, the same when a rerun redoes it (for example
/// "<table>-<first key>"); fills {batch_id} in object keys.
inline constexpr std::string_view kBatchId = "batch_id";
/// A JSON object mapping column names to the source's type text ("numeric(30,10)"), which
/// the object_store sink records in its manifest so a restore can recreate the table.
inline constexpr std::string_view kPgTypes = "pg_types";
}  // namespace tag

/// Immutable key -> value strings describing a whole batch rather than its rows: where the
/// rows came from (database, table), the day they belong to, their source types. They travel
/// with the batch instead of as columns, so they can never clash with a user's column names.
/// Keys are unique and kept sorted; the entries are shared by pointer, so copying is cheap and
/// a copy is safe to read from any thread.
class BatchTags {
 public:
  using Entry = std::pair<std::string, std::string>;

  /// Make an empty set of tags.
  BatchTags() = default;
  /// Make tags from `entries`; when a key repeats, the last value wins.
  BatchTags(std::initializer_list<Entry> entries);
  explicit BatchTags(std::vector<Entry> entries);

  /// Return the value of `key`, or nullptr when absent. Valid while this object lives.
  const std::string* Find(std::string_view key) const;
  /// Return the value of `key`, or `fallback` when absent.
  std::string_view Get(std::string_view key, std::string_view fallback = {}) const;
  /// Return a copy with `key` set to `value` (added or replaced).
  BatchTags With(std::string_view key, std::string_view value) const;

  bool empty() const { return entries_ == nullptr || entries_->empty(); }
  size_t size() const { return entries_ == nullptr ? 0 : entries_->size(); }
  /// Return the entries, sorted by key.
  const std::vector<Entry>& entries() const;

  bool operator==(const BatchTags& other) const { return entries() == other.entries(); }

 private:
  std::shared_ptr<const std::vector<Entry>> entries_;  // null when empty
};

/// An immutable, columnar set of rows with a schema. Thread-safe to read from many threads.
class Batch {
 public:
  /// Return a batch over `columns`, which must match `schema` in count, type and length.
  static Result<BatchPtr> Make(SchemaPtr schema, std::vector<Column> columns);
  /// Like Make, for callers that built the columns from the schema themselves.
  static BatchPtr MakeUnchecked(SchemaPtr schema, std::vector<Column> columns, int64_t num_rows,
                                BatchTags tags = {});

  const SchemaPtr& schema() const { return schema_; }
  int num_columns() const { return static_cast<int>(columns_.size()); }
  int64_t num_rows() const { return num_rows_; }
  const Column& column(int i) const { return columns_[static_cast<size_t>(i)]; }
  const std::vector<Column>& columns() const { return columns_; }
  /// Return the column called `name`, or nullptr.
  const Column* GetColumn(std::string_view name) const;

  /// Return the batch's tags (metadata of the whole batch, not columns; see BatchTags).
  const BatchTags& tags() const { return tags_; }
  /// Return a batch over the same columns (shared, not copied) with `tags` instead.
  BatchPtr WithTags(BatchTags tags) const;

  /// Slice, Filter and Take keep the batch's tags.
  /// Return rows [offset, offset + length) without copying any data.
  BatchPtr Slice(int64_t offset, int64_t length) const;
  /// Return the rows whose `mask` byte is non-zero (mask has num_rows() entries).
  BatchPtr Filter(const uint8_t* mask) const;
  /// Return the rows at `indices`, in that order.
  BatchPtr Take(const std::vector<int32_t>& indices) const;

  /// Return the bytes the rows occupy in memory, summed over columns (exact for slices).
  int64_t ByteSize() const { return byte_size_; }

  /// Return the rows as a JSON array of arrays, for tests and debugging.
  std::string ToString() const;

 private:
  Batch(SchemaPtr schema, std::vector<Column> columns, int64_t num_rows, BatchTags tags);

  SchemaPtr schema_;
  std::vector<Column> columns_;
  int64_t num_rows_;
  int64_t byte_size_;
  BatchTags tags_;
};

/// Return one batch with the rows of `batches`, which must all have equal schemas. It keeps
/// the tags every batch has with the same value.
Result<BatchPtr> Concatenate(const std::vector<BatchPtr>& batches);

/// Build a batch from a JSON array of rows, each an array of values in schema order
/// (`[[1, "a"], [2, null]]`). Timestamps are ISO-8601 strings or integers (µs); bytes and
/// geometry are hex strings; json columns take any JSON value. Meant for tests.
Result<BatchPtr> BatchFromJson(const SchemaPtr& schema, std::string_view json);

}  // namespace sluice
