#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include "sluice/core/time.h"
#include "sluice/expr/expr_internal.h"
#include "sluice/expr/text_bytes.h"

namespace sluice::expr_internal {

namespace {

// Allocate an uninitialized buffer of `n` values; every kernel writes each slot.
template <typename T>
std::pair<T*, BufferPtr> Allocate(int64_t n) {
  const auto count = static_cast<size_t>(n > 0 ? n : 1);
  std::shared_ptr<T[]> owner(new T[count]);
  T* data = owner.get();
  auto buffer = std::make_shared<const Buffer>(reinterpret_cast<const uint8_t*>(data),
                                               static_cast<size_t>(n) * sizeof(T),
                                               std::shared_ptr<const void>(owner, data));
  return {data, std::move(buffer)};
}

struct Validity {
  BufferPtr bits;  // bit i set when row i is valid; null when every row is valid
  int64_t null_count = 0;
};

// Return the validity of a (non-null-scalar) operand as a bitmap that starts at bit 0.
Validity ValidityOf(const Operand& a) {
  const Column& c = a.column;
  if (a.scalar || c.null_count() == 0) return {};
  if (c.offset() == 0) return {c.validity_buffer(), c.null_count()};
  const int64_t n = c.length();
  std::vector<uint8_t> bits(static_cast<size_t>((n + 7) / 8), 0);
  const uint8_t* src = c.validity_buffer()->data();
  if (n == 0) return {};
  if (c.offset() % 8 == 0) {
    std::memcpy(bits.data(), src + c.offset() / 8, bits.size());
  } else {
    for (int64_t i = 0; i < n; ++i) {
      if (bits::Get(src, c.offset() + i)) bits::Set(bits.data(), i);
    }
  }
  return {Buffer::FromVector(std::move(bits)), c.null_count()};
}

// Return the rows valid in both `a` and `b`, over `n` rows.
Validity AndValidity(const Operand& a, const Operand& b, int64_t n) {
  Validity va = ValidityOf(a);
  Validity vb = ValidityOf(b);
  if (!va.bits) return vb;
  if (!vb.bits) return va;
  const auto bytes = static_cast<size_t>((n + 7) / 8);
  std::vector<uint8_t> out(bytes);
  const uint8_t* x = va.bits->data();
  const uint8_t* y = vb.bits->data();
  for (size_t i = 0; i < bytes; ++i) out[i] = x[i] & y[i];
  const int64_t nulls = n - bits::CountSet(out.data(), 0, n);
  return {Buffer::FromVector(std::move(out)), nulls};
}

// Write 1 or 0 per row for valid or null rows of `a`.
void ValidBytes(const Operand& a, int64_t n, uint8_t* out) {
  const Column& c = a.column;
  if (n <= 0) return;
  if (a.scalar) {
    std::memset(out, c.null_count() == 0 ? 1 : 0, static_cast<size_t>(n));
  } else if (c.null_count() == 0) {
    std::memset(out, 1, static_cast<size_t>(n));
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = c.IsValid(i) ? 1 : 0;
  }
}

// Turn one byte per row (non-zero = valid) into a bitmap.
Validity PackValidity(const uint8_t* valid, int64_t n) {
  std::vector<uint8_t> bits(static_cast<size_t>((n + 7) / 8), 0);
  int64_t nulls = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (valid[i]) {
      bits::Set(bits.data(), i);
    } else {
      ++nulls;
    }
  }
  if (nulls == 0) return {};
  return {Buffer::FromVector(std::move(bits)), nulls};
}

Operand MakeOperand(TypeId type, int64_t n, BufferPtr values, const Validity& v, bool scalar,
                    BufferPtr data = nullptr) {
  return {Column(type, n, v.null_count, v.bits, std::move(values), std::move(data)), scalar};
}

int64_t WrapAdd(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
}
int64_t WrapSub(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b));
}
int64_t WrapMul(int64_t a, int64_t b) {
  return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
}
// Division by zero yields a placeholder the caller turns into null; INT64_MIN / -1 wraps.
int64_t SafeDiv(int64_t a, int64_t b) { return b == 0 ? 0 : b == -1 ? WrapSub(0, a) : a / b; }
int64_t SafeMod(int64_t a, int64_t b) { return b == 0 || b == -1 ? 0 : a % b; }
int64_t FloorDiv(int64_t a, int64_t b) {  // b > 0
  const int64_t q = a / b;
  return (a % b != 0 && a < 0) ? q - 1 : q;
}

// The loop every fixed-width binary kernel runs: one version per scalar/column combination so
// that the column-against-literal case is a tight loop the compiler can vectorize.
template <typename A, typename B, typename O, typename F>
void BinaryLoop(const Operand& a, const Operand& b, O* __restrict out, int64_t n, F f) {
  const A* __restrict pa = a.column.template values<A>();
  const B* __restrict pb = b.column.template values<B>();
  if (a.scalar && !b.scalar) {
    const A x = pa[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(x, pb[i]);
  } else if (!a.scalar && b.scalar) {
    const B y = pb[0];
    for (int64_t i = 0; i < n; ++i) out[i] = f(pa[i], y);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = f(pa[i], pb[i]);
  }
}

template <typename A, typename B, typename O, typename F>
Operand Binary(TypeId out_type, const Operand& a, const Operand& b, int64_t rows, F f) {
  if (a.IsNullScalar() || b.IsNullScalar()) return NullScalar(out_type);
  const bool scalar = a.scalar && b.scalar;
  const int64_t n = scalar ? 1 : rows;
  auto [out, buffer] = Allocate<O>(n);
  BinaryLoop<A, B, O>(a, b, out, n, f);
  return MakeOperand(out_type, n, std::move(buffer), AndValidity(a, b, n), scalar);
}

template <typename A, typename O, typename F>
Operand Unary(TypeId out_type, const Operand& a, F f) {
  if (a.IsNullScalar()) return NullScalar(out_type);
  const int64_t n = a.column.length();
  auto [out, buffer] = Allocate<O>(n);
  const A* __restrict in = a.column.template values<A>();
  for (int64_t i = 0; i < n; ++i) out[i] = f(in[i]);
  return MakeOperand(out_type, n, std::move(buffer), ValidityOf(a), a.scalar);
}

// Make rows whose divisor is zero null (division by zero gives null, as in SQL engines that
// do not raise).
template <typename T>
Operand NullWhereZeroDivisor(Operand result, const Operand& divisor) {
  if (result.scalar || divisor.scalar) return result;  // scalar divisors were checked upfront
  const int64_t n = result.column.length();
  const T* d = divisor.column.template values<T>();
  int64_t zeros = 0;
  for (int64_t i = 0; i < n; ++i) zeros += d[i] == 0;
  if (zeros == 0) return result;
  std::vector<uint8_t> valid(static_cast<size_t>(n));
  ValidBytes(result, n, valid.data());
  for (int64_t i = 0; i < n; ++i) valid[i] &= d[i] != 0;
  const Validity v = PackValidity(valid.data(), n);
  return MakeOperand(result.column.type(), n, result.column.values_buffer(), v, false);
}

template <typename T>
bool IsZeroScalar(const Operand& op) {
  return op.scalar && op.column.template values<T>()[0] == 0;
}

template <typename T, typename Key>
Operand CompareFixed(CmpOp op, const Operand& a, const Operand& b, int64_t rows, Key key) {
  switch (op) {
    case CmpOp::kEq:
      return Binary<T, T, uint8_t>(TypeId::kBool, a, b, rows,
                                   [key](T x, T y) -> uint8_t { return key(x) == key(y); });
    case CmpOp::kNe:
      return Binary<T, T, uint8_t>(TypeId::kBool, a, b, rows,
                                   [key](T x, T y) -> uint8_t { return key(x) != key(y); });
    case CmpOp::kLt:
      return Binary<T, T, uint8_t>(TypeId::kBool, a, b, rows,
                                   [key](T x, T y) -> uint8_t { return key(x) < key(y); });
    case CmpOp::kLe:
      return Binary<T, T, uint8_t>(TypeId::kBool, a, b, rows,
                                   [key](T x, T y) -> uint8_t { return key(x) <= key(y); });
    case CmpOp::kGt:
      return Binary<T, T, uint8_t>(TypeId::kBool, a, b, rows,
                                   [key](T x, T y) -> uint8_t { return key(x) > key(y); });
    case CmpOp::kGe:
      return Binary<T, T, uint8_t>(TypeId::kBool, a, b, rows,
                                   [key](T x, T y) -> uint8_t { return key(x) >= key(y); });
  }
  return NullScalar(TypeId::kBool);
}

bool CmpResult(CmpOp op, int c) {
  switch (op) {
    case CmpOp::kEq:
      return c == 0;
    case CmpOp::kNe:
      return c != 0;
    case CmpOp::kLt:
      return c < 0;
    case CmpOp::kLe:
      return c <= 0;
    case CmpOp::kGt:
      return c > 0;
    case CmpOp::kGe:
      return c >= 0;
  }
  return false;
}

Operand CompareVar(CmpOp op, const Operand& a, const Operand& b, int64_t rows) {
  if (a.IsNullScalar() || b.IsNullScalar()) return NullScalar(TypeId::kBool);
  const bool scalar = a.scalar && b.scalar;
  const int64_t n = scalar ? 1 : rows;
  auto [out, buffer] = Allocate<uint8_t>(n);
  const int64_t sa = a.scalar ? 0 : 1;
  const int64_t sb = b.scalar ? 0 : 1;
  if (op == CmpOp::kEq || op == CmpOp::kNe) {
    const bool eq = op == CmpOp::kEq;
    for (int64_t i = 0; i < n; ++i) {
      out[i] = (a.column.GetView(i * sa) == b.column.GetView(i * sb)) == eq;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      out[i] = CmpResult(op, a.column.GetView(i * sa).compare(b.column.GetView(i * sb)));
    }
  }
  return MakeOperand(TypeId::kBool, n, std::move(buffer), AndValidity(a, b, n), scalar);
}

Operand Logic(bool is_and, const Operand& a, const Operand& b, int64_t rows) {
  const bool scalar = a.scalar && b.scalar;
  const int64_t n = scalar ? 1 : rows;
  const bool no_nulls = a.column.null_count() == 0 && b.column.null_count() == 0;
  if (no_nulls) {
    if (is_and) {
      return Binary<uint8_t, uint8_t, uint8_t>(
          TypeId::kBool, a, b, rows,
          [](uint8_t x, uint8_t y) -> uint8_t { return (x != 0) & (y != 0); });
    }
    return Binary<uint8_t, uint8_t, uint8_t>(
        TypeId::kBool, a, b, rows,
        [](uint8_t x, uint8_t y) -> uint8_t { return (x != 0) | (y != 0); });
  }
  // Three-valued logic: false and null = false, true or null = true, otherwise null wins.
  std::vector<uint8_t> va(static_cast<size_t>(n)), vb(static_cast<size_t>(n));
  ValidBytes(a, n, va.data());
  ValidBytes(b, n, vb.data());
  auto [out, buffer] = Allocate<uint8_t>(n);
  std::vector<uint8_t> valid(static_cast<size_t>(n));
  const uint8_t* xa = a.column.bools();
  const uint8_t* xb = b.column.bools();
  const int64_t sa = a.scalar ? 0 : 1;
  const int64_t sb = b.scalar ? 0 : 1;
  for (int64_t i = 0; i < n; ++i) {
    const bool av = va[i] != 0;
    const bool bv = vb[i] != 0;
    const bool at = av && xa[i * sa] != 0;
    const bool bt = bv && xb[i * sb] != 0;
    if (is_and) {
      const bool af = av && !at;
      const bool bf = bv && !bt;
      valid[i] = af || bf || (av && bv);
      out[i] = at && bt;
    } else {
      valid[i] = at || bt || (av && bv);
      out[i] = at || bt;
    }
  }
  return MakeOperand(TypeId::kBool, n, std::move(buffer), PackValidity(valid.data(), n), scalar);
}

Column AllNullColumn(TypeId type, int64_t n) {
  std::vector<uint8_t> validity(static_cast<size_t>((n + 7) / 8), 0);
  BufferPtr bits = Buffer::FromVector(std::move(validity));
  if (IsVarWidth(type)) {
    std::vector<int32_t> offsets(static_cast<size_t>(n) + 1, 0);
    return Column(type, n, n, bits, Buffer::FromVector(std::move(offsets)),
                  Buffer::FromVector(std::vector<char>()));
  }
  std::vector<uint8_t> values(static_cast<size_t>(n * FixedWidth(type)), 0);
  return Column(type, n, n, bits, Buffer::FromVector(std::move(values)));
}

}  // namespace

Operand NullScalar(TypeId type) { return {AllNullColumn(type, 1), true}; }

Operand Int64Scalar(TypeId type, int64_t value) {
  ColumnBuilder b(type, 1);
  b.AppendInt64(value);
  return {b.Finish(), true};
}

Operand Float64Scalar(double value) {
  ColumnBuilder b(TypeId::kFloat64, 1);
  b.AppendFloat64(value);
  return {b.Finish(), true};
}

Operand BoolScalar(bool value) {
  ColumnBuilder b(TypeId::kBool, 1);
  b.AppendBool(value);
  return {b.Finish(), true};
}

Operand VarScalar(TypeId type, std::string_view value) {
  ColumnBuilder b(type, 1);
  b.AppendString(value);
  return {b.Finish(), true};
}

Result<Column> Materialize(const Operand& op, int64_t rows) {
  if (!op.scalar) return op.column;
  const Column& c = op.column;
  const TypeId type = c.type();
  if (op.IsNullScalar()) return AllNullColumn(type, rows);
  if (IsVarWidth(type)) {
    const std::string_view v = c.GetView(0);
    if (!v.empty() && static_cast<int64_t>(v.size()) * rows > std::numeric_limits<int32_t>::max()) {
      return Status::Invalid("a {}-byte value repeated over {} rows exceeds 2 GiB", v.size(), rows);
    }
    auto [offsets, offsets_buffer] = Allocate<int32_t>(rows + 1);
    auto [data, data_buffer] = Allocate<char>(static_cast<int64_t>(v.size()) * rows);
    offsets[0] = 0;
    for (int64_t i = 0; i < rows; ++i) {
      if (!v.empty()) std::memcpy(data + i * static_cast<int64_t>(v.size()), v.data(), v.size());
      offsets[i + 1] = static_cast<int32_t>((i + 1) * static_cast<int64_t>(v.size()));
    }
    return Column(type, rows, 0, nullptr, std::move(offsets_buffer), std::move(data_buffer));
  }
  if (type == TypeId::kBool) {
    auto [out, buffer] = Allocate<uint8_t>(rows);
    std::memset(out, c.bools()[0], static_cast<size_t>(rows));
    return Column(type, rows, 0, nullptr, std::move(buffer));
  }
  auto [out, buffer] = Allocate<int64_t>(rows);
  const int64_t v = c.int64s()[0];  // float64 is copied bit for bit
  for (int64_t i = 0; i < rows; ++i) out[i] = v;
  return Column(type, rows, 0, nullptr, std::move(buffer));
}

Operand Arithmetic(ArithOp op, TypeId out_type, const Operand& a, const Operand& b, int64_t rows) {
  if (a.column.type() == TypeId::kFloat64) {
    using D = double;
    switch (op) {
      case ArithOp::kAdd:
        return Binary<D, D, D>(out_type, a, b, rows, [](D x, D y) { return x + y; });
      case ArithOp::kSub:
        return Binary<D, D, D>(out_type, a, b, rows, [](D x, D y) { return x - y; });
      case ArithOp::kMul:
        return Binary<D, D, D>(out_type, a, b, rows, [](D x, D y) { return x * y; });
      case ArithOp::kDiv:
        if (IsZeroScalar<D>(b)) return NullScalar(out_type);
        return NullWhereZeroDivisor<D>(
            Binary<D, D, D>(out_type, a, b, rows, [](D x, D y) { return y == 0 ? 0.0 : x / y; }),
            b);
      case ArithOp::kMod:
        if (IsZeroScalar<D>(b)) return NullScalar(out_type);
        return NullWhereZeroDivisor<D>(
            Binary<D, D, D>(out_type, a, b, rows,
                            [](D x, D y) { return y == 0 ? 0.0 : std::fmod(x, y); }),
            b);
    }
  }
  using I = int64_t;
  switch (op) {
    case ArithOp::kAdd:
      return Binary<I, I, I>(out_type, a, b, rows, WrapAdd);
    case ArithOp::kSub:
      return Binary<I, I, I>(out_type, a, b, rows, WrapSub);
    case ArithOp::kMul:
      return Binary<I, I, I>(out_type, a, b, rows, WrapMul);
    case ArithOp::kDiv:
      if (IsZeroScalar<I>(b)) return NullScalar(out_type);
      return NullWhereZeroDivisor<I>(Binary<I, I, I>(out_type, a, b, rows, SafeDiv), b);
    case ArithOp::kMod:
      if (IsZeroScalar<I>(b)) return NullScalar(out_type);
      return NullWhereZeroDivisor<I>(Binary<I, I, I>(out_type, a, b, rows, SafeMod), b);
  }
  return NullScalar(out_type);
}

Operand Negate(const Operand& a) {
  if (a.column.type() == TypeId::kFloat64) {
    return Unary<double, double>(TypeId::kFloat64, a, [](double x) { return -x; });
  }
  return Unary<int64_t, int64_t>(a.column.type(), a, [](int64_t x) { return WrapSub(0, x); });
}

Operand Abs(const Operand& a) {
  if (a.column.type() == TypeId::kFloat64) {
    return Unary<double, double>(TypeId::kFloat64, a, [](double x) { return std::fabs(x); });
  }
  return Unary<int64_t, int64_t>(a.column.type(), a,
                                 [](int64_t x) { return x < 0 ? WrapSub(0, x) : x; });
}

Operand Int64ToFloat64(const Operand& a) {
  return Unary<int64_t, double>(TypeId::kFloat64, a,
                                [](int64_t x) { return static_cast<double>(x); });
}

Operand Compare(CmpOp op, const Operand& a, const Operand& b, int64_t rows) {
  switch (a.column.type()) {
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return CompareFixed<int64_t>(op, a, b, rows, [](int64_t x) { return x; });
    case TypeId::kFloat64:
      return CompareFixed<double>(op, a, b, rows, [](double x) { return x; });
    case TypeId::kBool:
      return CompareFixed<uint8_t>(op, a, b, rows, [](uint8_t x) { return x != 0; });
    default:
      return CompareVar(op, a, b, rows);
  }
}

Operand Not(const Operand& a) {
  return Unary<uint8_t, uint8_t>(TypeId::kBool, a, [](uint8_t x) -> uint8_t { return x == 0; });
}

Operand And(const Operand& a, const Operand& b, int64_t rows) { return Logic(true, a, b, rows); }
Operand Or(const Operand& a, const Operand& b, int64_t rows) { return Logic(false, a, b, rows); }

Operand IsNull(const Operand& a, bool negated) {
  if (a.scalar) return BoolScalar(a.IsNullScalar() != negated);
  // Without nulls every row gives the same answer.
  if (a.column.null_count() == 0) return BoolScalar(negated);
  const int64_t n = a.column.length();
  auto [out, buffer] = Allocate<uint8_t>(n);
  for (int64_t i = 0; i < n; ++i) out[i] = a.column.IsNull(i) != negated;
  return MakeOperand(TypeId::kBool, n, std::move(buffer), {}, false);
}

Operand ChangeCase(const Operand& a, bool upper) {
  if (a.IsNullScalar()) return a;
  const Column& c = a.column;
  const int64_t n = c.length();
  const int32_t* off = c.offsets();
  const int32_t base = off[0];
  const int64_t size = off[n] - base;
  auto [offsets, offsets_buffer] = Allocate<int32_t>(n + 1);
  for (int64_t i = 0; i <= n; ++i) offsets[i] = off[i] - base;
  auto [data, data_buffer] = Allocate<char>(size);
  const char* in = c.var_data() + base;
  FlipCase(in, data, size, upper ? 'a' : 'A', upper ? 'z' : 'Z');
  return MakeOperand(c.type(), n, std::move(offsets_buffer), ValidityOf(a), a.scalar,
                     std::move(data_buffer));
}

Operand Length(const Operand& a) {
  if (a.IsNullScalar()) return NullScalar(TypeId::kInt64);
  const Column& c = a.column;
  const int64_t n = c.length();
  auto [out, buffer] = Allocate<int64_t>(n);
  const int32_t* off = c.offsets();
  const bool text = c.type() == TypeId::kString || c.type() == TypeId::kJson;
  if (text && !IsAscii(c.var_data() + off[0], off[n] - off[0])) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t bytes = off[i + 1] - off[i];
      out[i] = bytes - ContinuationBytes(c.var_data() + off[i], bytes);
    }
  } else {  // bytes, geometry, or text whose every code point is one byte
    for (int64_t i = 0; i < n; ++i) out[i] = off[i + 1] - off[i];
  }
  return MakeOperand(TypeId::kInt64, n, std::move(buffer), ValidityOf(a), a.scalar);
}

Operand DateTrunc(TruncUnit unit, const Operand& a) {
  constexpr int64_t kMinute = 60 * kMicrosPerSecond;
  constexpr int64_t kHour = 60 * kMinute;
  const auto fixed = [&a](int64_t width) {
    return Unary<int64_t, int64_t>(
        TypeId::kTimestamp, a, [width](int64_t t) { return WrapMul(FloorDiv(t, width), width); });
  };
  switch (unit) {
    case TruncUnit::kSecond:
      return fixed(kMicrosPerSecond);
    case TruncUnit::kMinute:
      return fixed(kMinute);
    case TruncUnit::kHour:
      return fixed(kHour);
    case TruncUnit::kDay:
      return fixed(kMicrosPerDay);
    case TruncUnit::kWeek:
      // Weeks start on Monday; 1970-01-01 was a Thursday.
      return Unary<int64_t, int64_t>(TypeId::kTimestamp, a, [](int64_t t) {
        const int64_t days = FloorDiv(t, kMicrosPerDay);
        return WrapMul(FloorDiv(days + 3, 7) * 7 - 3, kMicrosPerDay);
      });
    case TruncUnit::kMonth:
    case TruncUnit::kYear: {
      const bool year = unit == TruncUnit::kYear;
      return Unary<int64_t, int64_t>(TypeId::kTimestamp, a, [year](int64_t t) {
        int64_t y;
        unsigned m, d;
        CivilFromDays(FloorDiv(t, kMicrosPerDay), &y, &m, &d);
        return WrapMul(DaysFromCivil(y, year ? 1 : m, 1), kMicrosPerDay);
      });
    }
  }
  return NullScalar(TypeId::kTimestamp);
}

Result<Operand> Coalesce(TypeId type, const std::vector<Operand>& args, int64_t rows) {
  size_t first = 0;
  while (first < args.size() && args[first].IsNullScalar()) ++first;
  if (first == args.size()) return NullScalar(type);
  if (args[first].column.null_count() == 0) return args[first];
  // args[first] is a column with nulls: pick, per row, the first argument that has a value.
  const int64_t n = rows;
  std::vector<int32_t> pick(static_cast<size_t>(n), -1);
  int64_t missing = n;
  for (size_t k = first; k < args.size() && missing > 0; ++k) {
    const Operand& a = args[k];
    if (a.IsNullScalar()) continue;
    for (int64_t i = 0; i < n; ++i) {
      if (pick[static_cast<size_t>(i)] < 0 && (a.scalar || a.column.IsValid(i))) {
        pick[static_cast<size_t>(i)] = static_cast<int32_t>(k);
        --missing;
      }
    }
  }
  std::vector<uint8_t> valid(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) valid[static_cast<size_t>(i)] = pick[static_cast<size_t>(i)] >= 0;
  const Validity validity = PackValidity(valid.data(), n);
  auto row_of = [&](int64_t i) -> std::pair<const Column*, int64_t> {
    const Operand& a = args[static_cast<size_t>(pick[static_cast<size_t>(i)])];
    return {&a.column, a.scalar ? 0 : i};
  };
  if (IsVarWidth(type)) {
    int64_t total = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (pick[static_cast<size_t>(i)] < 0) continue;
      auto [col, row] = row_of(i);
      total += static_cast<int64_t>(col->GetView(row).size());
    }
    if (total > std::numeric_limits<int32_t>::max()) {
      return Status::Invalid("coalesce() result exceeds 2 GiB");
    }
    auto [offsets, offsets_buffer] = Allocate<int32_t>(n + 1);
    auto [data, data_buffer] = Allocate<char>(total);
    int64_t pos = 0;
    offsets[0] = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (pick[static_cast<size_t>(i)] >= 0) {
        auto [col, row] = row_of(i);
        const std::string_view v = col->GetView(row);
        if (!v.empty()) std::memcpy(data + pos, v.data(), v.size());
        pos += static_cast<int64_t>(v.size());
      }
      offsets[i + 1] = static_cast<int32_t>(pos);
    }
    return MakeOperand(type, n, std::move(offsets_buffer), validity, false, std::move(data_buffer));
  }
  const auto width = static_cast<size_t>(FixedWidth(type));
  auto [out, buffer] = Allocate<uint8_t>(n * static_cast<int64_t>(width));
  for (int64_t i = 0; i < n; ++i) {
    uint8_t* dst = out + static_cast<size_t>(i) * width;
    if (pick[static_cast<size_t>(i)] < 0) {
      std::memset(dst, 0, width);
      continue;
    }
    auto [col, row] = row_of(i);
    std::memcpy(dst,
                col->values_buffer()->data() + static_cast<size_t>(col->offset() + row) * width,
                width);
  }
  return MakeOperand(type, n, std::move(buffer), validity, false);
}

const uint8_t* SelectionMask(const Column& pred, std::vector<uint8_t>* scratch, int64_t* kept) {
  const int64_t n = pred.length();
  const uint8_t* values = pred.bools();
  const uint8_t* mask = values;
  if (pred.null_count() > 0) {
    scratch->resize(static_cast<size_t>(n));
    uint8_t* m = scratch->data();
    for (int64_t i = 0; i < n; ++i) m[i] = static_cast<uint8_t>((values[i] != 0) & pred.IsValid(i));
    mask = m;
  }
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) count += mask[i] != 0;
  *kept = count;
  return mask;
}

}  // namespace sluice::expr_internal
