#include "sluice/transforms/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include <fmt/format.h>

#include "sluice/engine/pipeline.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::window_internal {

namespace {

struct FunctionInfo {
  const char* name;
  AggKind kind;
};

constexpr FunctionInfo kFunctions[] = {
    {"count", AggKind::kCount}, {"sum", AggKind::kSum},   {"min", AggKind::kMin},
    {"max", AggKind::kMax},     {"avg", AggKind::kAvg},   {"stddev", AggKind::kStddev},
    {"first", AggKind::kFirst}, {"last", AggKind::kLast},
};

int CellsOf(AggKind kind) {
  switch (kind) {
    case AggKind::kCountRows:
    case AggKind::kCount:
    case AggKind::kSum:  // and a count cell shared per column (AggSpec::count)
    case AggKind::kMin:
    case AggKind::kMax:
    case AggKind::kAvg:
      return 1;
    case AggKind::kStddev:
    case AggKind::kFirst:
    case AggKind::kLast:
      return 3;
    case AggKind::kQuantile:  // a SmallQuantile
      return static_cast<int>(sizeof(SmallQuantile) / sizeof(Cell));
  }
  return 1;
}

/// Whether aggregate `kind` counts its column's non-null values in a shared cell.
bool SharesCount(AggKind kind) {
  return kind == AggKind::kSum || kind == AggKind::kAvg || kind == AggKind::kMin ||
         kind == AggKind::kMax;
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

}  // namespace

Result<AggSpec> ParseAggregate(const std::string& output, const std::string& text) {
  const std::string t = Trim(text);
  const size_t open = t.find('(');
  if (open == std::string::npos || t.back() != ')') {
    return Status::ConfigError("'{}: {}': expected fn(column), e.g. avg(voltage); functions: {}",
                               output, text, kAggregateFunctions);
  }
  const std::string fn = Trim(t.substr(0, open));
  AggSpec spec;
  spec.output = output;
  spec.column = Trim(t.substr(open + 1, t.size() - open - 2));
  bool known = false;
  for (const auto& f : kFunctions) {
    if (fn == f.name) {
      spec.kind = f.kind;
      known = true;
    }
  }
  if (!known && fn.size() >= 2 && fn[0] == 'p' &&
      fn.find_first_not_of("0123456789", 1) == std::string::npos) {
    // pNN: p0..p99 are percents (p5 = 0.05, p95 = 0.95); longer ones continue the nines
    // (p999 = 0.999, p9999 = 0.9999).
    const std::string digits = fn.substr(1);
    if (digits.size() <= 2) {
      spec.q = std::stoi(digits) / 100.0;
    } else if (digits.starts_with("99")) {
      spec.q = std::stod("0." + digits);
    } else {
      return Status::ConfigError(
          "'{}: {}': '{}' is not a percentile: write p0 to p99 (p95 = the 95th), or p999, "
          "p9999 for the 99.9th, 99.99th; max() is the largest value",
          output, text, fn);
    }
    spec.kind = AggKind::kQuantile;
    known = true;
  }
  if (!known) {
    // Names from SQL and other tools, then the nearest spelling.
    static const std::pair<const char*, const char*> kAliases[] = {
        {"average", "avg"},    {"mean", "avg"},           {"median", "p50"},
        {"stdev", "stddev"},   {"std", "stddev"},         {"stddev_samp", "stddev"},
        {"total", "sum"},      {"minimum", "min"},        {"maximum", "max"},
        {"percentile", "p95"}, {"percentile_disc", "p95"}};
    std::string hint;
    for (const auto& [alias, name] : kAliases) {
      if (fn == alias) hint = name;
    }
    if (hint.empty()) {
      std::vector<std::string> names = {"p50", "p95", "p99"};
      for (const auto& f : kFunctions) names.emplace_back(f.name);
      hint = SuggestNearest(fn, names);
    }
    return Status::ConfigError("'{}: {}': unknown function '{}'{}; functions: {}", output, text, fn,
                               hint.empty() ? "" : " — did you mean '" + hint + "'?",
                               kAggregateFunctions);
  }
  if (spec.column == "*" && spec.kind == AggKind::kCount) spec.column.clear();  // SQL's count(*)
  if (spec.column.find(',') != std::string::npos) {
    return Status::ConfigError("'{}: {}': {}() takes one column", output, text, fn);
  }
  if (spec.column.empty()) {
    if (spec.kind != AggKind::kCount) {
      return Status::ConfigError("'{}: {}': {}() needs a column, e.g. {}(kwh)", output, text, fn,
                                 fn);
    }
    spec.kind = AggKind::kCountRows;
  }
  return spec;
}

int64_t AggStore::Bytes() const {
  return static_cast<int64_t>(cells.capacity() * sizeof(Cell) +
                              sketches.capacity() * sizeof(QuantileSketch)) +
         sketch_heap;
}

int32_t AggStore::NewSketch() {
  if (sketches_used == sketches.size()) {
    sketches.emplace_back();
  } else {
    sketches[sketches_used].Clear();
  }
  return static_cast<int32_t>(sketches_used++);
}

namespace {

/// Move the values of `q` to a sketch of `store` unless they are there already; return it.
QuantileSketch& Spill(SmallQuantile* q, AggStore* store) {
  if (q->spill < 0) {
    q->spill = store->NewSketch();
    QuantileSketch& sk = store->sketches[static_cast<size_t>(q->spill)];
    const int64_t before = sk.HeapBytes();
    for (uint32_t i = 0; i < q->n; ++i) sk.AddKey(QuantileSketch::LongKey(q->keys[i]));
    store->sketch_heap += sk.HeapBytes() - before;
    q->n = 0;
  }
  return store->sketches[static_cast<size_t>(q->spill)];
}

}  // namespace

void AddToQuantileSlow(SmallQuantile* q, int32_t key, AggStore* store) {
  // Past kCapacity values, or one whose key needs 32 bits.
  QuantileSketch& sk = Spill(q, store);
  const int64_t before = sk.HeapBytes();
  sk.AddKey(key);
  store->sketch_heap += sk.HeapBytes() - before;
}

void MergeQuantileSlow(SmallQuantile* a, AggStore* to, const SmallQuantile& b,
                       const AggStore& from) {
  if (b.spill < 0) {
    for (uint32_t i = 0; i < b.n; ++i) AddToQuantile(a, QuantileSketch::LongKey(b.keys[i]), to);
    return;
  }
  QuantileSketch& sk = Spill(a, to);  // first: it may grow to->sketches, which can be from's
  const int64_t before = sk.HeapBytes();
  sk.Merge(from.sketches[static_cast<size_t>(b.spill)]);
  to->sketch_heap += sk.HeapBytes() - before;
}

void AggStore::CopyFrom(const AggStore& o) {
  cells = o.cells;
  groups = o.groups;
  if (sketches.size() < o.sketches_used) sketches.resize(o.sketches_used);
  sketch_heap = 0;
  for (size_t i = 0; i < sketches.size(); ++i) {
    if (i < o.sketches_used) sketches[i] = o.sketches[i];
    sketch_heap += sketches[i].HeapBytes();
  }
  sketches_used = o.sketches_used;
}

Status AggLayout::Bind(std::vector<AggSpec> specs, const Schema& schema, int time_col) {
  specs_ = std::move(specs);
  time_col_ = time_col;
  width_ = 0;
  counts_.clear();
  for (auto& s : specs_) {
    s.offset = width_;
    width_ += CellsOf(s.kind);
    if (s.kind == AggKind::kCountRows) {
      s.output_type = TypeId::kInt64;
      continue;
    }
    s.input = schema.FieldIndex(s.column);
    if (s.input < 0) {
      return Status::ConfigError("aggregate '{}': {}", s.output,
                                 transforms_internal::NoColumn(s.column, schema));
    }
    s.input_type = schema.field(s.input).type;
    const bool numeric = s.input_type == TypeId::kInt64 || s.input_type == TypeId::kFloat64;
    const bool ordered = numeric || s.input_type == TypeId::kTimestamp;
    switch (s.kind) {
      case AggKind::kCountRows:
      case AggKind::kCount:
        s.output_type = TypeId::kInt64;
        break;
      case AggKind::kSum:
        if (!numeric) break;
        s.output_type = s.input_type;
        break;
      case AggKind::kAvg:
      case AggKind::kStddev:
      case AggKind::kQuantile:
        s.output_type = TypeId::kFloat64;
        break;
      case AggKind::kMin:
      case AggKind::kMax:
      case AggKind::kFirst:
      case AggKind::kLast:
        s.output_type = s.input_type;
        break;
    }
    const bool needs_numeric = s.kind == AggKind::kSum || s.kind == AggKind::kAvg ||
                               s.kind == AggKind::kStddev || s.kind == AggKind::kQuantile;
    if ((needs_numeric && !numeric) || (s.kind != AggKind::kCount && !ordered)) {
      return Status::ConfigError(
          "aggregate '{}': column '{}' is {}; {} needs {}", s.output, s.column,
          TypeName(s.input_type), needs_numeric ? "this function" : "min/max/first/last",
          needs_numeric ? "int64 or float64" : "int64, float64 or timestamp");
    }
    if (SharesCount(s.kind)) {
      for (const auto& [input, cell] : counts_) {
        if (input == s.input) s.count = cell;
      }
      if (s.count < 0) {
        s.count = width_++;
        counts_.emplace_back(s.input, s.count);
      }
    }
  }
  plan_ = PlanMerges();
  // An empty group: zeros, and min/max at a value every other one replaces (they keep no count
  // of their own: the shared count says whether there is a value).
  empty_.assign(static_cast<size_t>(width_), Cell{.i = 0});
  for (const auto& s : specs_) {
    if (s.kind == AggKind::kQuantile) {
      const SmallQuantile none{.n = 0, .spill = -1, .keys = {}};
      std::memcpy(&empty_[static_cast<size_t>(s.offset)], &none, sizeof(none));
      continue;
    }
    if (s.kind != AggKind::kMin && s.kind != AggKind::kMax) continue;
    Cell& e = empty_[static_cast<size_t>(s.offset)];
    const bool fl = s.input_type == TypeId::kFloat64;
    if (s.kind == AggKind::kMin) {
      // NaN is above every number: the first value, NaN or not, is at or below it.
      if (fl) {
        e.d = std::numeric_limits<double>::quiet_NaN();
      } else {
        e.i = std::numeric_limits<int64_t>::max();
      }
    } else if (s.kind == AggKind::kMax) {
      if (fl) {
        e.d = -std::numeric_limits<double>::infinity();
      } else {
        e.i = std::numeric_limits<int64_t>::min();
      }
    }
  }
  return Status::OK();
}

AggLayout::MergePlan AggLayout::PlanMerges() const {
  MergePlan plan;
  for (const AggSpec& s : specs_) {
    const bool fl = s.input_type == TypeId::kFloat64;
    switch (s.kind) {
      case AggKind::kCountRows:
      case AggKind::kCount:
        plan.add_int.push_back(s.offset);
        break;
      case AggKind::kSum:
        (fl ? plan.add_double : plan.add_int_sum).push_back(s.offset);
        break;
      case AggKind::kAvg:
        plan.add_double.push_back(s.offset);
        break;
      case AggKind::kMin:
        (fl ? plan.min_double : plan.min_int).push_back(s.offset);
        break;
      case AggKind::kMax:
        (fl ? plan.max_double : plan.max_int).push_back(s.offset);
        break;
      case AggKind::kQuantile:
        plan.quantiles.push_back(s.offset);
        break;
      case AggKind::kStddev:
        plan.stddev.push_back(s.offset);
        break;
      case AggKind::kFirst:
        plan.first.push_back(s.offset);
        break;
      case AggKind::kLast:
        plan.last.push_back(s.offset);
        break;
    }
  }
  for (const auto& [input, cell] : counts_) plan.add_int.push_back(cell);
  return plan;
}

void AggLayout::Reserve(AggStore* store, int32_t groups) const {
  store->cells.reserve(static_cast<size_t>(groups) * static_cast<size_t>(width_));
}

int32_t AggLayout::AddGroup(AggStore* store) const {
  // One copy of the template (not resize, which walks the new cells one by one first).
  store->cells.insert(store->cells.end(), empty_.begin(), empty_.end());
  return store->groups++;
}

namespace {

/// Fold value `r` of a non-null column (int64s `iv` or doubles `dv`) at time `t` into the
/// cells `c` of aggregate `s` (of a group of `store`).
inline void Fold(const AggSpec& s, Cell* c, const int64_t* iv, const double* dv, int64_t r,
                 int64_t t, AggStore* store, bool* overflow) {
  const bool is_float = dv != nullptr;
  switch (s.kind) {
    case AggKind::kCountRows:
    case AggKind::kCount:
      ++c[0].i;
      break;
    // sum, avg, min, max: the column's count is kept in its shared cell (Update, UpdateRow).
    case AggKind::kSum:
      if (is_float) {
        c[0].d += dv[r];
      } else {
        *overflow |= __builtin_add_overflow(c[0].i, iv[r], &c[0].i);
      }
      break;
    case AggKind::kAvg:
      c[0].d += is_float ? dv[r] : static_cast<double>(iv[r]);
      break;
    case AggKind::kMin:
    case AggKind::kMax: {
      // An empty group holds a value the first one replaces (AggLayout::Bind).
      const bool is_max = s.kind == AggKind::kMax;
      if (is_float) {
        const double v = dv[r];
        SelectInto(c, Cell{.d = v}, is_max ? PgGreater(v, c[0].d) : PgGreater(c[0].d, v));
      } else {
        const int64_t v = iv[r];
        SelectInto(c, Cell{.i = v}, is_max ? v > c[0].i : v < c[0].i);
      }
      break;
    }
    case AggKind::kStddev: {
      // Welford: count, mean, sum of squared deviations from the mean.
      const double v = is_float ? dv[r] : static_cast<double>(iv[r]);
      const int64_t n = ++c[0].i;
      const double delta = v - c[1].d;
      c[1].d += delta / static_cast<double>(n);
      c[2].d += delta * (v - c[1].d);
      break;
    }
    case AggKind::kFirst:
    case AggKind::kLast: {
      // Ties keep the first row to arrive for first, the last for last.
      const bool take = c[2].i == 0 || (s.kind == AggKind::kFirst ? t < c[1].i : t >= c[1].i);
      if (take) {
        if (is_float) {
          c[0].d = dv[r];
        } else {
          c[0].i = iv[r];
        }
        c[1].i = t;
      }
      ++c[2].i;
      break;
    }
    case AggKind::kQuantile:
      AddToQuantile(reinterpret_cast<SmallQuantile*>(c),
                    QuantileSketch::KeyOf(is_float ? dv[r] : static_cast<double>(iv[r])), store);
      break;
  }
}

}  // namespace

Status AggLayout::Update(const Batch& batch, const Column& time,
                         const std::vector<AggStore*>& store_of,
                         const std::vector<int32_t>& group_of) const {
  const int64_t rows = batch.num_rows();
  // Each row's first cell, found once (the stores do not grow while aggregates update).
  std::vector<Cell*> base(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    AggStore* st = store_of[static_cast<size_t>(r)];
    base[static_cast<size_t>(r)] =
        st == nullptr
            ? nullptr
            : st->cells.data() + static_cast<ptrdiff_t>(group_of[static_cast<size_t>(r)]) * width_;
  }
  const int64_t* ts = time.int64s();
  bool overflow = false;
  for (const auto& s : specs_) {
    const int o = s.offset;
    if (s.kind == AggKind::kCountRows) {
      for (int64_t r = 0; r < rows; ++r) {
        if (Cell* c = base[static_cast<size_t>(r)]) ++c[o].i;
      }
      continue;
    }
    const Column& col = batch.column(s.input);
    const bool has_nulls = col.null_count() > 0;
    const bool is_float = s.input_type == TypeId::kFloat64;
    const int64_t* iv = is_float ? nullptr : col.int64s();
    const double* dv = is_float ? col.float64s() : nullptr;
    for (int64_t r = 0; r < rows; ++r) {
      Cell* c = base[static_cast<size_t>(r)];
      if (c == nullptr || (has_nulls && col.IsNull(r))) continue;
      Fold(s, c + o, iv, dv, r, ts[r], store_of[static_cast<size_t>(r)], &overflow);
    }
    if (overflow) {
      return Status::Invalid("aggregate '{}': the sum of '{}' overflows int64", s.output, s.column);
    }
  }
  for (const auto& [input, o] : counts_) {
    const Column& col = batch.column(input);
    const bool has_nulls = col.null_count() > 0;
    for (int64_t r = 0; r < rows; ++r) {
      Cell* c = base[static_cast<size_t>(r)];
      if (c == nullptr || (has_nulls && col.IsNull(r))) continue;
      ++c[o].i;
    }
  }
  return Status::OK();
}

Status AggLayout::UpdateRow(const Batch& batch, const Column& time, int64_t r, AggStore* store,
                            int32_t g) const {
  Cell* c = store->cells.data() + static_cast<ptrdiff_t>(g) * width_;
  bool overflow = false;
  for (const auto& s : specs_) {
    if (s.kind == AggKind::kCountRows) {
      ++c[s.offset].i;
      continue;
    }
    const Column& col = batch.column(s.input);
    if (col.IsNull(r)) continue;
    const bool is_float = s.input_type == TypeId::kFloat64;
    Fold(s, c + s.offset, is_float ? nullptr : col.int64s(), is_float ? col.float64s() : nullptr, r,
         time.GetInt64(r), store, &overflow);
    if (overflow) {
      return Status::Invalid("aggregate '{}': the sum of '{}' overflows int64", s.output, s.column);
    }
  }
  for (const auto& [input, o] : counts_) {
    if (!batch.column(input).IsNull(r)) ++c[o].i;
  }
  return Status::OK();
}

}  // namespace sluice::window_internal
