#include <cctype>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sluice/core/time.h"
#include "sluice/expr/expr.h"
#include "sluice/expr/expr_internal.h"

namespace sluice {

using expr_internal::ArithOp;
using expr_internal::CmpOp;
using expr_internal::EvalContext;
using expr_internal::Node;
using expr_internal::Operand;
using expr_internal::TruncUnit;

namespace {

class FieldNode final : public Node {
 public:
  FieldNode(int index, const Field& field, std::string text)
      : Node(field.type, std::move(text)), index_(index), name_(field.name) {}

  Result<Operand> Eval(const EvalContext& ctx) const override {
    const Batch& batch = *ctx.batch;
    if (index_ >= batch.num_columns() || batch.schema()->field(index_).name != name_ ||
        batch.column(index_).type() != type()) {
      return Status::Invalid(
          "field '{}' ({}) is not at position {} of this batch's schema [{}]; the expression was "
          "bound against a different schema",
          name_, TypeName(type()), index_ + 1, batch.schema()->ToString());
    }
    const Column& column = batch.column(index_);
    if (ctx.begin == 0 && ctx.rows == column.length()) return Operand{column, false};
    return Operand{column.Slice(ctx.begin, ctx.rows), false};
  }

 private:
  int index_;
  std::string name_;
};

class LiteralNode final : public Node {
 public:
  LiteralNode(Operand value, std::string text)
      : Node(value.column.type(), std::move(text)), value_(std::move(value)) {}
  Result<Operand> Eval(const EvalContext&) const override { return value_; }

 private:
  Operand value_;
};

class NowNode final : public Node {
 public:
  explicit NowNode(std::string text) : Node(TypeId::kTimestamp, std::move(text)) {}
  Result<Operand> Eval(const EvalContext& ctx) const override {
    return expr_internal::Int64Scalar(TypeId::kTimestamp, ctx.now_micros);
  }
};

using Kernel = std::function<Result<Operand>(const std::vector<Operand>&, const EvalContext&)>;

// An operator or function: evaluates its arguments, then runs a kernel over them.
class KernelNode final : public Node {
 public:
  KernelNode(TypeId type, std::string text, std::vector<std::unique_ptr<Node>> args, Kernel kernel)
      : Node(type, std::move(text)), args_(std::move(args)), kernel_(std::move(kernel)) {}

  Result<Operand> Eval(const EvalContext& ctx) const override {
    std::vector<Operand> values;
    values.reserve(args_.size());
    for (const auto& a : args_) {
      SLUICE_ASSIGN_OR_RETURN(Operand v, a->Eval(ctx));
      values.push_back(std::move(v));
    }
    return kernel_(values, ctx);
  }

  bool MakesVarWidth() const override {
    if (IsVarWidth(type())) return true;
    for (const auto& a : args_) {
      if (a->MakesVarWidth()) return true;
    }
    return false;
  }

 private:
  std::vector<std::unique_ptr<Node>> args_;
  Kernel kernel_;
};

// A bound subtree together with the syntax it came from, so that literals can still be
// coerced (a null takes the type of its context, an ISO string next to a timestamp is parsed).
struct Bound {
  std::unique_ptr<Node> node;
  const Expr* expr = nullptr;

  TypeId type() const { return node->type(); }
  bool IsLiteral(Expr::LiteralKind kind) const {
    return expr->kind == Expr::Kind::kLiteral && expr->literal_kind == kind;
  }
  bool IsNull() const { return IsLiteral(Expr::LiteralKind::kNull); }
};

std::string Describe(const Bound& b) {
  if (b.IsNull()) return "null";
  return fmt::format("{} '{}'", TypeName(b.type()), b.expr->text);
}

std::string_view OpSymbol(Expr::Op op) {
  switch (op) {
    case Expr::Op::kAdd:
      return "+";
    case Expr::Op::kSub:
      return "-";
    case Expr::Op::kMul:
      return "*";
    case Expr::Op::kDiv:
      return "/";
    case Expr::Op::kMod:
      return "%";
    case Expr::Op::kNeg:
      return "-";
    case Expr::Op::kNot:
      return "not";
    case Expr::Op::kEq:
      return "=";
    case Expr::Op::kNe:
      return "!=";
    case Expr::Op::kLt:
      return "<";
    case Expr::Op::kLe:
      return "<=";
    case Expr::Op::kGt:
      return ">";
    case Expr::Op::kGe:
      return ">=";
    case Expr::Op::kAnd:
      return "and";
    case Expr::Op::kOr:
      return "or";
    case Expr::Op::kNone:
      break;
  }
  return "?";
}

// What type two values are compared (or coalesced) as: equal types, int64 with float64 as
// float64, a timestamp with a string literal as a timestamp; a null literal takes the other's.
struct TypeInfo {
  TypeId type;
  bool null_literal;
  bool string_literal;
};

TypeInfo InfoOf(const Bound& b) {
  return {b.type(), b.IsNull(), b.IsLiteral(Expr::LiteralKind::kString)};
}

std::optional<TypeInfo> Common(const TypeInfo& a, const TypeInfo& b) {
  if (a.null_literal) return b;
  if (b.null_literal) return a;
  if (a.type == b.type) return TypeInfo{a.type, false, a.string_literal && b.string_literal};
  if (IsNumeric(a.type) && IsNumeric(b.type)) return TypeInfo{TypeId::kFloat64, false, false};
  if (a.type == TypeId::kTimestamp && b.string_literal) return a;
  if (b.type == TypeId::kTimestamp && a.string_literal) return b;
  return std::nullopt;
}

constexpr std::string_view kFunctions[] = {"abs",   "coalesce", "date_trunc", "length",
                                           "lower", "now",      "upper"};

class Binder {
 public:
  explicit Binder(const Schema& schema) : schema_(schema) {}

  Result<Bound> BindNode(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kField:
        return BindField(e);
      case Expr::Kind::kLiteral:
        return BindLiteral(e);
      case Expr::Kind::kUnary:
        return BindUnary(e);
      case Expr::Kind::kBinary:
        switch (e.op) {
          case Expr::Op::kAnd:
          case Expr::Op::kOr:
            return BindLogic(e);
          case Expr::Op::kEq:
          case Expr::Op::kNe:
          case Expr::Op::kLt:
          case Expr::Op::kLe:
          case Expr::Op::kGt:
          case Expr::Op::kGe:
            return BindComparison(e);
          default:
            return BindArithmetic(e);
        }
      case Expr::Kind::kIn:
        return BindIn(e);
      case Expr::Kind::kIsNull:
        return BindIsNull(e);
      case Expr::Kind::kCall:
        return BindCall(e);
    }
    return Status::Internal("unknown expression node");
  }

 private:
  static Bound Make(const Expr& e, TypeId type, std::vector<Bound> args, Kernel kernel) {
    std::vector<std::unique_ptr<Node>> nodes;
    nodes.reserve(args.size());
    for (auto& a : args) nodes.push_back(std::move(a.node));
    return Bound{std::make_unique<KernelNode>(type, e.text, std::move(nodes), std::move(kernel)),
                 &e};
  }

  static Bound Literal(const Expr& e, Operand value) {
    return Bound{std::make_unique<LiteralNode>(std::move(value), e.text), &e};
  }

  Result<Bound> BindField(const Expr& e) {
    const int index = schema_.FieldIndex(e.name);
    if (index < 0) return Status::Invalid("{}", UnknownFieldMessage(e.name, schema_));
    return Bound{std::make_unique<FieldNode>(index, schema_.field(index), e.text), &e};
  }

  Result<Bound> BindLiteral(const Expr& e) {
    switch (e.literal_kind) {
      case Expr::LiteralKind::kNull:
        return Literal(e, expr_internal::NullScalar(TypeId::kBool));
      case Expr::LiteralKind::kBool:
        return Literal(e, expr_internal::BoolScalar(e.bool_value));
      case Expr::LiteralKind::kInt:
      case Expr::LiteralKind::kDuration:
        return Literal(e, expr_internal::Int64Scalar(TypeId::kInt64, e.int_value));
      case Expr::LiteralKind::kFloat:
        return Literal(e, expr_internal::Float64Scalar(e.float_value));
      case Expr::LiteralKind::kString:
        return Literal(e, expr_internal::VarScalar(TypeId::kString, e.string_value));
    }
    return Status::Internal("unknown literal kind");
  }

  // Convert `b` to `target`, which Common() or the caller's rules chose for it.
  static Result<Bound> Coerce(Bound b, TypeId target) {
    if (b.IsNull()) return Literal(*b.expr, expr_internal::NullScalar(target));
    if (b.type() == target) return b;
    if (target == TypeId::kTimestamp && b.IsLiteral(Expr::LiteralKind::kString)) {
      auto ts = ParseTimestamp(b.expr->string_value);
      if (!ts.ok()) return ts.status();
      return Literal(*b.expr, expr_internal::Int64Scalar(TypeId::kTimestamp, *ts));
    }
    if (target == TypeId::kFloat64 && b.type() == TypeId::kInt64) {
      if (b.IsLiteral(Expr::LiteralKind::kInt)) {
        return Literal(*b.expr,
                       expr_internal::Float64Scalar(static_cast<double>(b.expr->int_value)));
      }
      const Expr* e = b.expr;
      std::vector<Bound> args;
      args.push_back(std::move(b));
      return Make(*e, TypeId::kFloat64, std::move(args),
                  [](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                    return expr_internal::Int64ToFloat64(v[0]);
                  });
    }
    return Status::Internal("cannot convert {} to {}", Describe(b), TypeName(target));
  }

  Result<std::vector<Bound>> BindArgs(const Expr& e) {
    std::vector<Bound> out;
    out.reserve(e.args.size());
    for (const auto& a : e.args) {
      SLUICE_ASSIGN_OR_RETURN(Bound b, BindNode(*a));
      out.push_back(std::move(b));
    }
    return out;
  }

  static Result<Bound> ExpectBool(Bound b, std::string_view what) {
    if (b.IsNull()) return Coerce(std::move(b), TypeId::kBool);
    if (b.type() != TypeId::kBool) {
      return Status::Invalid("'{}' expects bool operands, got {}", what, Describe(b));
    }
    return b;
  }

  Result<Bound> BindUnary(const Expr& e) {
    SLUICE_ASSIGN_OR_RETURN(Bound operand, BindNode(*e.args[0]));
    if (e.op == Expr::Op::kNot) {
      SLUICE_ASSIGN_OR_RETURN(operand, ExpectBool(std::move(operand), "not"));
      std::vector<Bound> args;
      args.push_back(std::move(operand));
      return Make(e, TypeId::kBool, std::move(args),
                  [](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                    return expr_internal::Not(v[0]);
                  });
    }
    if (operand.IsNull()) {
      SLUICE_ASSIGN_OR_RETURN(operand, Coerce(std::move(operand), TypeId::kInt64));
    }
    if (!IsNumeric(operand.type())) {
      return Status::Invalid("cannot negate {} (expected int64 or float64)", Describe(operand));
    }
    const TypeId type = operand.type();
    std::vector<Bound> args;
    args.push_back(std::move(operand));
    return Make(e, type, std::move(args),
                [](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                  return expr_internal::Negate(v[0]);
                });
  }

  Result<Bound> BindLogic(const Expr& e) {
    SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
    const std::string_view name = OpSymbol(e.op);
    for (auto& a : args) {
      SLUICE_ASSIGN_OR_RETURN(a, ExpectBool(std::move(a), name));
    }
    const bool is_and = e.op == Expr::Op::kAnd;
    return Make(e, TypeId::kBool, std::move(args),
                [is_and](const std::vector<Operand>& v, const EvalContext& ctx) -> Result<Operand> {
                  return is_and ? expr_internal::And(v[0], v[1], ctx.rows)
                                : expr_internal::Or(v[0], v[1], ctx.rows);
                });
  }

  static CmpOp ToCmpOp(Expr::Op op) {
    switch (op) {
      case Expr::Op::kNe:
        return CmpOp::kNe;
      case Expr::Op::kLt:
        return CmpOp::kLt;
      case Expr::Op::kLe:
        return CmpOp::kLe;
      case Expr::Op::kGt:
        return CmpOp::kGt;
      case Expr::Op::kGe:
        return CmpOp::kGe;
      default:
        return CmpOp::kEq;
    }
  }

  Result<Bound> BindComparison(const Expr& e) {
    SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
    auto common = Common(InfoOf(args[0]), InfoOf(args[1]));
    if (!common) {
      return Status::Invalid("cannot compare {} with {}", Describe(args[0]), Describe(args[1]));
    }
    const TypeId type = common->null_literal ? TypeId::kBool : common->type;
    for (auto& a : args) {
      SLUICE_ASSIGN_OR_RETURN(a, Coerce(std::move(a), type));
    }
    const CmpOp op = ToCmpOp(e.op);
    return Make(e, TypeId::kBool, std::move(args),
                [op](const std::vector<Operand>& v, const EvalContext& ctx) -> Result<Operand> {
                  return expr_internal::Compare(op, v[0], v[1], ctx.rows);
                });
  }

  Result<Bound> BindArithmetic(const Expr& e) {
    SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
    Bound& l = args[0];
    Bound& r = args[1];
    // A null takes a type that makes the operation valid; the result is null anyway.
    auto null_type = [](const Bound& other) {
      return other.IsNull() || other.type() == TypeId::kTimestamp ? TypeId::kInt64 : other.type();
    };
    if (l.IsNull()) {
      SLUICE_ASSIGN_OR_RETURN(l, Coerce(std::move(l), null_type(r)));
    }
    if (r.IsNull()) {
      SLUICE_ASSIGN_OR_RETURN(r, Coerce(std::move(r), null_type(l)));
    }
    // `ts - '2024-01-01'` subtracts a timestamp written as a string.
    if (e.op == Expr::Op::kSub && l.type() == TypeId::kTimestamp &&
        r.IsLiteral(Expr::LiteralKind::kString)) {
      SLUICE_ASSIGN_OR_RETURN(r, Coerce(std::move(r), TypeId::kTimestamp));
    }
    const TypeId lt = l.type();
    const TypeId rt = r.type();
    const bool add_sub = e.op == Expr::Op::kAdd || e.op == Expr::Op::kSub;
    TypeId out;
    if (IsNumeric(lt) && IsNumeric(rt)) {
      out = lt == TypeId::kInt64 && rt == TypeId::kInt64 ? TypeId::kInt64 : TypeId::kFloat64;
      SLUICE_ASSIGN_OR_RETURN(l, Coerce(std::move(l), out));
      SLUICE_ASSIGN_OR_RETURN(r, Coerce(std::move(r), out));
    } else if ((add_sub && lt == TypeId::kTimestamp && rt == TypeId::kInt64) ||
               (e.op == Expr::Op::kAdd && lt == TypeId::kInt64 && rt == TypeId::kTimestamp)) {
      out = TypeId::kTimestamp;
    } else if (e.op == Expr::Op::kSub && lt == TypeId::kTimestamp && rt == TypeId::kTimestamp) {
      out = TypeId::kInt64;
    } else {
      return Status::Invalid("cannot apply '{}' to {} and {}", OpSymbol(e.op), Describe(l),
                             Describe(r));
    }
    ArithOp op = ArithOp::kAdd;
    switch (e.op) {
      case Expr::Op::kSub:
        op = ArithOp::kSub;
        break;
      case Expr::Op::kMul:
        op = ArithOp::kMul;
        break;
      case Expr::Op::kDiv:
        op = ArithOp::kDiv;
        break;
      case Expr::Op::kMod:
        op = ArithOp::kMod;
        break;
      default:
        break;
    }
    return Make(
        e, out, std::move(args),
        [op, out](const std::vector<Operand>& v, const EvalContext& ctx) -> Result<Operand> {
          return expr_internal::Arithmetic(op, out, v[0], v[1], ctx.rows);
        });
  }

  Result<Bound> BindIn(const Expr& e) {
    SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
    TypeInfo common = InfoOf(args[0]);
    for (size_t i = 1; i < args.size(); ++i) {
      auto next = Common(common, InfoOf(args[i]));
      if (!next) {
        return Status::Invalid("cannot compare {} with {} in the list of 'in'", Describe(args[0]),
                               Describe(args[i]));
      }
      common = *next;
    }
    const TypeId type = common.null_literal ? TypeId::kBool : common.type;
    for (auto& a : args) {
      SLUICE_ASSIGN_OR_RETURN(a, Coerce(std::move(a), type));
    }
    const bool negated = e.negated;
    return Make(
        e, TypeId::kBool, std::move(args),
        [negated](const std::vector<Operand>& v, const EvalContext& ctx) -> Result<Operand> {
          // x in (a, b) is x = a or x = b, with SQL's treatment of nulls.
          Operand acc = expr_internal::Compare(CmpOp::kEq, v[0], v[1], ctx.rows);
          for (size_t i = 2; i < v.size(); ++i) {
            acc = expr_internal::Or(acc, expr_internal::Compare(CmpOp::kEq, v[0], v[i], ctx.rows),
                                    ctx.rows);
          }
          return negated ? expr_internal::Not(acc) : acc;
        });
  }

  Result<Bound> BindIsNull(const Expr& e) {
    SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
    const bool negated = e.negated;
    return Make(e, TypeId::kBool, std::move(args),
                [negated](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                  return expr_internal::IsNull(v[0], negated);
                });
  }

  static Status Arity(const Expr& e, size_t count) {
    if (e.args.size() == count) return Status::OK();
    return Status::Invalid("{}() takes {} argument{}, got {}", e.name, count, count == 1 ? "" : "s",
                           e.args.size());
  }

  Result<Bound> BindCall(const Expr& e) {
    const std::string& f = e.name;
    if (f == "now") {
      SLUICE_RETURN_NOT_OK(Arity(e, 0));
      return Bound{std::make_unique<NowNode>(e.text), &e};
    }
    if (f == "coalesce") return BindCoalesce(e);
    if (f == "lower" || f == "upper") {
      SLUICE_RETURN_NOT_OK(Arity(e, 1));
      SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
      if (args[0].IsNull()) {
        SLUICE_ASSIGN_OR_RETURN(args[0], Coerce(std::move(args[0]), TypeId::kString));
      }
      if (args[0].type() != TypeId::kString) {
        return Status::Invalid("{}() expects a string, got {}", f, Describe(args[0]));
      }
      const bool upper = f == "upper";
      return Make(e, TypeId::kString, std::move(args),
                  [upper](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                    return expr_internal::ChangeCase(v[0], upper);
                  });
    }
    if (f == "length") {
      SLUICE_RETURN_NOT_OK(Arity(e, 1));
      SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
      if (args[0].IsNull()) {
        SLUICE_ASSIGN_OR_RETURN(args[0], Coerce(std::move(args[0]), TypeId::kString));
      }
      if (!IsVarWidth(args[0].type())) {
        return Status::Invalid("length() expects a string, bytes, json or geometry, got {}",
                               Describe(args[0]));
      }
      return Make(e, TypeId::kInt64, std::move(args),
                  [](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                    return expr_internal::Length(v[0]);
                  });
    }
    if (f == "abs") {
      SLUICE_RETURN_NOT_OK(Arity(e, 1));
      SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
      if (args[0].IsNull()) {
        SLUICE_ASSIGN_OR_RETURN(args[0], Coerce(std::move(args[0]), TypeId::kInt64));
      }
      if (!IsNumeric(args[0].type())) {
        return Status::Invalid("abs() expects int64 or float64, got {}", Describe(args[0]));
      }
      const TypeId type = args[0].type();
      return Make(e, type, std::move(args),
                  [](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                    return expr_internal::Abs(v[0]);
                  });
    }
    if (f == "date_trunc") return BindDateTrunc(e);
    std::vector<std::string> names(std::begin(kFunctions), std::end(kFunctions));
    const std::string closest = ClosestName(f, names);
    if (!closest.empty()) {
      return Status::Invalid("unknown function '{}' \u2014 did you mean '{}'?", f, closest);
    }
    return Status::Invalid("unknown function '{}' (functions: {})", f, fmt::join(names, ", "));
  }

  Result<Bound> BindCoalesce(const Expr& e) {
    if (e.args.empty()) return Status::Invalid("coalesce() takes at least 1 argument, got 0");
    SLUICE_ASSIGN_OR_RETURN(auto args, BindArgs(e));
    TypeInfo common = InfoOf(args[0]);
    for (size_t i = 1; i < args.size(); ++i) {
      auto next = Common(common, InfoOf(args[i]));
      if (!next) {
        return Status::Invalid("coalesce() arguments must share a type, got {} and {}",
                               Describe(args[0]), Describe(args[i]));
      }
      common = *next;
    }
    const TypeId type = common.null_literal ? TypeId::kBool : common.type;
    for (auto& a : args) {
      SLUICE_ASSIGN_OR_RETURN(a, Coerce(std::move(a), type));
    }
    return Make(e, type, std::move(args),
                [type](const std::vector<Operand>& v, const EvalContext& ctx) -> Result<Operand> {
                  return expr_internal::Coalesce(type, v, ctx.rows);
                });
  }

  Result<Bound> BindDateTrunc(const Expr& e) {
    SLUICE_RETURN_NOT_OK(Arity(e, 2));
    const Expr& unit_expr = *e.args[0];
    static constexpr std::pair<std::string_view, TruncUnit> kUnits[] = {
        {"year", TruncUnit::kYear},     {"month", TruncUnit::kMonth},
        {"week", TruncUnit::kWeek},     {"day", TruncUnit::kDay},
        {"hour", TruncUnit::kHour},     {"minute", TruncUnit::kMinute},
        {"second", TruncUnit::kSecond},
    };
    std::optional<TruncUnit> unit;
    if (unit_expr.kind == Expr::Kind::kLiteral &&
        unit_expr.literal_kind == Expr::LiteralKind::kString) {
      std::string u = unit_expr.string_value;
      for (auto& c : u) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const auto& [name, value] : kUnits) {
        if (u == name) unit = value;
      }
    }
    if (!unit) {
      return Status::Invalid(
          "date_trunc() takes a unit 'year', 'month', 'week', 'day', 'hour', 'minute' or "
          "'second' as its first argument, got '{}'",
          unit_expr.text);
    }
    SLUICE_ASSIGN_OR_RETURN(Bound ts, BindNode(*e.args[1]));
    if (ts.IsNull() || ts.IsLiteral(Expr::LiteralKind::kString)) {
      SLUICE_ASSIGN_OR_RETURN(ts, Coerce(std::move(ts), TypeId::kTimestamp));
    }
    if (ts.type() != TypeId::kTimestamp) {
      return Status::Invalid("date_trunc() expects a timestamp, got {}", Describe(ts));
    }
    std::vector<Bound> args;
    args.push_back(std::move(ts));
    const TruncUnit u = *unit;
    return Make(e, TypeId::kTimestamp, std::move(args),
                [u](const std::vector<Operand>& v, const EvalContext&) -> Result<Operand> {
                  return expr_internal::DateTrunc(u, v[0]);
                });
  }

  const Schema& schema_;
};

// Rows an expression with string temporaries evaluates at a time: a slice of 447-byte strings
// (bench/diamond's payloads) is 457 KB, so that one and the string made from it fit in a
// 1 MiB L2 cache. Whole 8192-row batches made every temporary a trip to L3 or memory, which two
// cores share.
constexpr int64_t kSliceRows = 1024;

// Return the value of `root` for every row of `batch`: at once, or a slice of rows at a time
// when `sliced`.
Result<Operand> EvalRows(const Node& root, bool sliced, const std::string& text,
                         const Batch& batch) {
  const int64_t rows = batch.num_rows();
  const int64_t now = NowMicros();
  if (!sliced || rows <= kSliceRows) {
    auto value = root.Eval(EvalContext{&batch, rows, now});
    if (!value.ok()) return value.status().WithContext("expression '{}'", text);
    return value;
  }
  // The strings made between kernels stay in the core's cache when made a slice at a time;
  // the slices' numbers (8 bytes a row at most) are then copied into one column.
  ColumnBuilder out(root.type(), rows);
  for (int64_t begin = 0; begin < rows; begin += kSliceRows) {
    const int64_t n = std::min(kSliceRows, rows - begin);
    auto value = root.Eval(EvalContext{&batch, n, now, begin});
    if (!value.ok()) return value.status().WithContext("expression '{}'", text);
    auto slice = expr_internal::Materialize(*value, n);
    if (!slice.ok()) return slice.status().WithContext("expression '{}'", text);
    out.AppendColumn(*slice);
  }
  return Operand{out.Finish(), false};
}

}  // namespace

BoundExpr::BoundExpr(std::unique_ptr<expr_internal::Node> root, std::string text)
    : root_(std::move(root)),
      text_(std::move(text)),
      sliced_(!IsVarWidth(root_->type()) && root_->MakesVarWidth()) {}

BoundExpr::~BoundExpr() = default;

TypeId BoundExpr::type() const { return root_->type(); }

Result<Column> BoundExpr::Evaluate(const Batch& batch) const {
  SLUICE_ASSIGN_OR_RETURN(Operand value, EvalRows(*root_, sliced_, text_, batch));
  auto column = expr_internal::Materialize(value, batch.num_rows());
  if (!column.ok()) return column.status().WithContext("expression '{}'", text_);
  return column;
}

Result<BatchPtr> BoundExpr::Filter(const BatchPtr& batch) const {
  if (type() != TypeId::kBool) {
    return Status::Invalid("expression '{}' is {}, not bool, and cannot filter rows", text_,
                           TypeName(type()));
  }
  SLUICE_ASSIGN_OR_RETURN(Operand value, EvalRows(*root_, sliced_, text_, *batch));
  const Column& pred = value.column;
  if (value.scalar) {
    const bool keep = pred.null_count() == 0 && pred.GetBool(0);
    return keep ? batch : batch->Slice(0, 0);
  }
  std::vector<uint8_t> scratch;
  int64_t kept = 0;
  const uint8_t* mask = expr_internal::SelectionMask(pred, &scratch, &kept);
  if (kept == batch->num_rows()) return batch;
  if (kept == 0) return batch->Slice(0, 0);
  return batch->Filter(mask);
}

Result<std::unique_ptr<BoundExpr>> Bind(const Expr& expr, const Schema& schema) {
  Binder binder(schema);
  auto bound = binder.BindNode(expr);
  if (!bound.ok()) return bound.status().WithContext("expression '{}'", expr.text);
  return std::make_unique<BoundExpr>(std::move(bound->node), expr.text);
}

Result<std::unique_ptr<BoundExpr>> ParseAndBind(std::string_view text, const Schema& schema) {
  SLUICE_ASSIGN_OR_RETURN(auto expr, ParseExpr(text));
  return Bind(*expr, schema);
}

}  // namespace sluice
