#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sluice/core/column.h"
#include "sluice/core/result.h"
#include "sluice/core/schema.h"

namespace sluice {

class Batch;
/// Batches are immutable and shared: fan-out hands the same pointer to every consumer.
using BatchPtr = std::shared_ptr<const Batch>;

/// An immutable, columnar set of rows with a schema. Thread-safe to read from many threads.
class Batch {
 public:
  /// Return a batch over `columns`, which must match `schema` in count, type and length.
  static Result<BatchPtr> Make(SchemaPtr schema, std::vector<Column> columns);
  /// Like Make, for callers that built the columns from the schema themselves.
  static BatchPtr MakeUnchecked(SchemaPtr schema, std::vector<Column> columns, int64_t num_rows);

  const SchemaPtr& schema() const { return schema_; }
  int num_columns() const { return static_cast<int>(columns_.size()); }
  int64_t num_rows() const { return num_rows_; }
  const Column& column(int i) const { return columns_[static_cast<size_t>(i)]; }
  const std::vector<Column>& columns() const { return columns_; }
  /// Return the column called `name`, or nullptr.
  const Column* GetColumn(std::string_view name) const;

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
  Batch(SchemaPtr schema, std::vector<Column> columns, int64_t num_rows);

  SchemaPtr schema_;
  std::vector<Column> columns_;
  int64_t num_rows_;
  int64_t byte_size_;
};

/// Return one batch with the rows of `batches`, which must all have equal schemas.
Result<BatchPtr> Concatenate(const std::vector<BatchPtr>& batches);

/// Build a batch from a JSON array of rows, each an array of values in schema order
/// (`[[1, "a"], [2, null]]`). Timestamps are ISO-8601 strings or integers (µs); bytes and
/// geometry are hex strings; json columns take any JSON value. Meant for tests.
Result<BatchPtr> BatchFromJson(const SchemaPtr& schema, std::string_view json);

}  // namespace sluice
