#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/core/schema.h"

// sluice's expression language, used by `filter` and `map`:
//
//   created_at < now() - 90d and status in ('done', 'failed') and "Odd Name" is not null
//
// Field references are bare identifiers or "double-quoted" names; literals are integers,
// floats, 'strings' ('' escapes a quote), true, false, null and durations (90d, 12h, 30m, 15s,
// 500ms, 250us, 1h30m) that mean int64 microseconds. Operators, loosest first: or (||),
// and (&&), not (!), comparisons (= == != <> < <= > >=, in, not in, is [not] null), + -,
// * / %, unary -. Functions: now(), coalesce(a, ...), lower(s), upper(s), length(s),
// date_trunc('year'|'month'|'week'|'day'|'hour'|'minute'|'second', ts), abs(x).
//
// Semantics follow SQL: nulls propagate, and/or/not use three-valued logic, int64 / int64 is
// integer division (truncating), division or modulo by zero gives null, and int64 arithmetic
// wraps on overflow. timestamp ± int64 (µs) gives a timestamp, timestamp − timestamp gives int64
// µs, and a string literal compared with a timestamp is parsed as an ISO-8601 timestamp.
// lower() and upper() change ASCII letters only; length() counts UTF-8 code points of strings
// and json, bytes of bytes and geometry.

namespace sluice {

namespace expr_internal {
class Node;
}  // namespace expr_internal

/// One node of a parsed expression: the syntax tree before types are known.
struct Expr {
  enum class Kind : uint8_t {
    kField,    ///< `name`: a column of the input.
    kLiteral,  ///< See literal_kind.
    kUnary,    ///< op is kNeg or kNot; args[0] is the operand.
    kBinary,   ///< Arithmetic, comparison, and/or; args are the two operands.
    kIn,       ///< args[0] in (args[1], ...); `negated` for `not in`.
    kIsNull,   ///< args[0] is null; `negated` for `is not null`.
    kCall,     ///< name(args...); name is lower-case.
  };
  enum class Op : uint8_t {
    kNone,
    kAdd,
    kSub,
    kMul,
    kDiv,
    kMod,
    kNeg,
    kNot,
    kEq,
    kNe,
    kLt,
    kLe,
    kGt,
    kGe,
    kAnd,
    kOr,
  };
  enum class LiteralKind : uint8_t { kNull, kBool, kInt, kFloat, kString, kDuration };

  Kind kind = Kind::kLiteral;
  Op op = Op::kNone;
  bool negated = false;
  LiteralKind literal_kind = LiteralKind::kNull;
  bool bool_value = false;
  int64_t int_value = 0;  ///< For kInt, and kDuration in microseconds.
  double float_value = 0;
  std::string string_value;  ///< For kString, unescaped.
  std::string name;          ///< Field name (unquoted) or function name.
  std::vector<std::unique_ptr<Expr>> args;

  int position = 0;  ///< Byte offset of this node's first token in the source.
  std::string text;  ///< This node's source text, quoted in error messages.
  int height = 1;    ///< Levels in this subtree (1 for a leaf); the parser bounds it.
};

/// The deepest expression ParseExpr accepts, so that evaluation cannot exhaust the stack.
inline constexpr int kMaxExprHeight = 200;

/// Parse `text` into a syntax tree. Errors are kInvalidArgument and give the 1-based column:
/// "expression 'a +': at column 4: expected a value".
Result<std::unique_ptr<Expr>> ParseExpr(std::string_view text);

/// An expression whose field references and types were resolved against one schema. Immutable
/// after Bind; Evaluate may be called from several threads at once.
class BoundExpr {
 public:
  explicit BoundExpr(std::unique_ptr<expr_internal::Node> root, std::string text);
  ~BoundExpr();
  BoundExpr(const BoundExpr&) = delete;
  BoundExpr& operator=(const BoundExpr&) = delete;

  /// Return the type of the values Evaluate produces.
  TypeId type() const;
  /// Return the source text of the expression.
  const std::string& text() const { return text_; }

  /// Return one value per row of `batch`, which must have the schema the expression was bound
  /// against (an error, not a crash, otherwise). now() is read once per call.
  Result<Column> Evaluate(const Batch& batch) const;
  /// Return the rows of `batch` for which this bool expression is true (false and null rows
  /// are dropped). Return `batch` itself when every row passes, and an empty slice of it when
  /// none does.
  Result<BatchPtr> Filter(const BatchPtr& batch) const;

 private:
  std::unique_ptr<expr_internal::Node> root_;
  std::string text_;
  bool sliced_;  ///< Evaluated a slice of rows at a time: see EvalRows in bind.cc.
};

/// Resolve the fields of `expr` in `schema` and check its types. Errors are kInvalidArgument
/// and name the expression: "expression 'name > 5': cannot compare string 'name' with int64
/// '5'", "expression 'nmae = 1': unknown field 'nmae' — did you mean 'name'?".
Result<std::unique_ptr<BoundExpr>> Bind(const Expr& expr, const Schema& schema);

/// Parse `text` and bind it against `schema`.
Result<std::unique_ptr<BoundExpr>> ParseAndBind(std::string_view text, const Schema& schema);

/// Return "unknown field 'x'" followed by " — did you mean 'y'?" when a field of `schema` is
/// a likely misspelling of `name`, or by the list of fields otherwise.
std::string UnknownFieldMessage(std::string_view name, const Schema& schema);

/// Return the candidate closest to `name` by edit distance (case-insensitive, transpositions
/// count once), or "" when none is close enough to be a likely misspelling.
std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace sluice
