#pragma once

// Private to src/sluice/expr: the bound expression tree and the column kernels it runs.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/column.h"
#include "sluice/core/result.h"

namespace sluice::expr_internal {

/// A value during evaluation: either one value per row, or a scalar (a 1-row column) that
/// stands for the same value in every row. Literals and now() are scalars, so `x = 5` runs a
/// loop over x against a constant instead of materializing a column of fives.
struct Operand {
  Column column;
  bool scalar = false;

  bool IsNullScalar() const { return scalar && column.null_count() > 0; }
};

/// What one evaluation needs besides the tree: the rows of the batch it covers and the instant
/// now() returns. An evaluation covers rows [begin, begin + rows) of `batch`; its operands have
/// `rows` rows, the first being row `begin`.
struct EvalContext {
  const Batch* batch = nullptr;
  int64_t rows = 0;
  int64_t now_micros = 0;
  int64_t begin = 0;
};

/// A node of a bound expression. Immutable; Eval may run on several threads at once.
class Node {
 public:
  Node(TypeId type, std::string text) : type_(type), text_(std::move(text)) {}
  virtual ~Node() = default;

  /// Return the values of this node for the rows ctx covers.
  virtual Result<Operand> Eval(const EvalContext& ctx) const = 0;
  /// Return true when this node or one below it runs a kernel that makes a string, bytes, json
  /// or geometry value: a temporary as large as its input when it is not the root.
  virtual bool MakesVarWidth() const { return false; }

  TypeId type() const { return type_; }
  const std::string& text() const { return text_; }

 private:
  TypeId type_;
  std::string text_;
};

enum class ArithOp : uint8_t { kAdd, kSub, kMul, kDiv, kMod };
enum class CmpOp : uint8_t { kEq, kNe, kLt, kLe, kGt, kGe };
enum class TruncUnit : uint8_t { kYear, kMonth, kWeek, kDay, kHour, kMinute, kSecond };

// Scalars.
Operand NullScalar(TypeId type);
Operand Int64Scalar(TypeId type, int64_t value);  ///< int64 or timestamp
Operand Float64Scalar(double value);
Operand BoolScalar(bool value);
Operand VarScalar(TypeId type, std::string_view value);  ///< string, bytes, json, geometry

/// Return `op` as a column of `rows` rows (a scalar is repeated).
Result<Column> Materialize(const Operand& op, int64_t rows);

// Kernels. Each returns a scalar when every input is a scalar, else a column of `rows` rows.
// Inputs were type-checked by Bind: both sides of a binary kernel share a storage class.

/// int64 storage (int64, timestamp) or float64; `out_type` is the logical result type.
Operand Arithmetic(ArithOp op, TypeId out_type, const Operand& a, const Operand& b, int64_t rows);
Operand Negate(const Operand& a);
Operand Abs(const Operand& a);
Operand Int64ToFloat64(const Operand& a);
Operand Compare(CmpOp op, const Operand& a, const Operand& b, int64_t rows);
Operand Not(const Operand& a);
Operand And(const Operand& a, const Operand& b, int64_t rows);
Operand Or(const Operand& a, const Operand& b, int64_t rows);
Operand IsNull(const Operand& a, bool negated);
Operand ChangeCase(const Operand& a, bool upper);
Operand Length(const Operand& a);
Operand DateTrunc(TruncUnit unit, const Operand& a);
/// Return, per row, the first non-null of `args` (all of type `type`).
Result<Operand> Coalesce(TypeId type, const std::vector<Operand>& args, int64_t rows);

/// Return a mask with 1 for rows where the bool column `pred` is true and 0 for false or null,
/// pointing into `pred` when it has no nulls or into `scratch` otherwise; set *kept to the
/// number of ones.
const uint8_t* SelectionMask(const Column& pred, std::vector<uint8_t>* scratch, int64_t* kept);

}  // namespace sluice::expr_internal
