#pragma once

// Keyed parallelism: which instance of a transform run with `parallelism: N` and
// `partition_by: <expression>` owns each row.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/expr/expr.h"

namespace sluice {

/// Splits batches by the value of an expression, so that every row with the same value goes to
/// the same one of `instances` instances (NULL goes to instance 0). The expression is bound to
/// each input schema the first time a batch of it comes. Thread-safe.
class KeyPartitioner {
 public:
  /// Parse `expression`; kInvalidArgument (with the column) when it does not parse.
  static Result<std::unique_ptr<KeyPartitioner>> Make(const std::string& expression, int instances);

  /// Return, for each instance, the rows of `batch` it owns, in their order. An error when the
  /// expression does not fit the batch's schema (an unknown field, with a suggestion).
  Result<std::vector<std::vector<int32_t>>> Split(const Batch& batch) const;

  int instances() const { return instances_; }

 private:
  KeyPartitioner(std::unique_ptr<Expr> expr, int instances)
      : expr_(std::move(expr)), instances_(instances) {}

  std::unique_ptr<Expr> expr_;
  int instances_;
  mutable std::mutex mu_;
  // Bound per schema; the SchemaPtr keeps the key's address from being reused.
  mutable std::map<const Schema*, std::pair<SchemaPtr, std::unique_ptr<BoundExpr>>> bound_;
};

/// Return the instance in [0, instances) that owns `value`'s row: a 64-bit FNV-1a hash of
/// `column`'s value at `row` (its bytes for strings, its 8 bytes for numbers), modulo.
int PartitionOf(const Column& column, int64_t row, int instances);

}  // namespace sluice
