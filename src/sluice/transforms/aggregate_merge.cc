// Merging groups of aggregate cells (windows built from slices, sessions that meet) and writing
// their results as output columns; the layout, parsing and folding of rows are in aggregate.cc.
#include "sluice/transforms/aggregate.h"

#include <algorithm>
#include <cmath>
#include <limits>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace sluice::window_internal {

namespace {

/// Fold stddev cells `b` into `a`: Chan et al.'s combination of two (count, mean, M2).
inline void MergeStddev(Cell* a, const Cell* b) {
  if (b[0].i == 0) return;
  if (a[0].i == 0) {
    a[0] = b[0];
    a[1] = b[1];
    a[2] = b[2];
    return;
  }
  const auto na = static_cast<double>(a[0].i), nb = static_cast<double>(b[0].i);
  const double delta = b[1].d - a[1].d;
  const double n = na + nb;
  a[1].d += delta * nb / n;
  a[2].d += b[2].d + delta * delta * na * nb / n;
  a[0].i += b[0].i;
}

/// Fold first (or last) cells `b` — value, time, count — into `a`.
inline void MergeFirstLast(Cell* a, const Cell* b, bool first) {
  if (b[2].i == 0) return;
  const bool take = a[2].i == 0 || (first ? b[1].i < a[1].i : b[1].i >= a[1].i);
  if (take) {
    a[0] = b[0];
    a[1] = b[1];
  }
  a[2].i += b[2].i;
}

template <AggKind K>
using KindTag = std::integral_constant<AggKind, K>;

/// Call f(KindTag<kind>) for aggregate `s`: the kind is decided here, once, and the loop f
/// runs is compiled for it.
template <typename F>
void WithKind(const AggSpec& s, F&& f) {
  switch (s.kind) {
    case AggKind::kCountRows:
    case AggKind::kCount:
      return f(KindTag<AggKind::kCount>{});
    case AggKind::kSum:
      return f(KindTag<AggKind::kSum>{});
    case AggKind::kAvg:
      return f(KindTag<AggKind::kAvg>{});
    case AggKind::kMin:
      return f(KindTag<AggKind::kMin>{});
    case AggKind::kMax:
      return f(KindTag<AggKind::kMax>{});
    case AggKind::kStddev:
      return f(KindTag<AggKind::kStddev>{});
    case AggKind::kFirst:
      return f(KindTag<AggKind::kFirst>{});
    case AggKind::kLast:
      return f(KindTag<AggKind::kLast>{});
    case AggKind::kQuantile:
      return f(KindTag<AggKind::kQuantile>{});
  }
}

}  // namespace

void AggLayout::MergeGroup(Cell* a, const Cell* b, AggStore* to, const AggStore& from,
                           bool* ok) const {
  for (const int o : plan_.add_int) a[o].i += b[o].i;
  for (const int o : plan_.add_int_sum) *ok &= !__builtin_add_overflow(a[o].i, b[o].i, &a[o].i);
  for (const int o : plan_.add_double) a[o].d += b[o].d;
  // An empty b holds a value that never replaces a's (Bind).
  for (const int o : plan_.min_double) SelectInto(a + o, b[o], PgGreater(a[o].d, b[o].d));
  for (const int o : plan_.max_double) SelectInto(a + o, b[o], PgGreater(b[o].d, a[o].d));
  for (const int o : plan_.min_int) SelectInto(a + o, b[o], b[o].i < a[o].i);
  for (const int o : plan_.max_int) SelectInto(a + o, b[o], b[o].i > a[o].i);
  for (const int o : plan_.quantiles) {
    MergeQuantile(reinterpret_cast<SmallQuantile*>(a + o), to,
                  *reinterpret_cast<const SmallQuantile*>(b + o), from);
  }
  for (const int o : plan_.stddev) MergeStddev(a + o, b + o);
  for (const int o : plan_.first) MergeFirstLast(a + o, b + o, /*first=*/true);
  for (const int o : plan_.last) MergeFirstLast(a + o, b + o, /*first=*/false);
}

bool AggLayout::Merge(AggStore* to, int32_t dst, const AggStore& from, int32_t src) const {
  bool ok = true;
  MergeGroup(to->cells.data() + static_cast<ptrdiff_t>(dst) * width_,
             from.cells.data() + static_cast<ptrdiff_t>(src) * width_, to, from, &ok);
  return ok;
}

bool AggLayout::MergeGroups(AggStore* to, const int32_t* dst, const AggStore& from,
                            int32_t n) const {
  bool ok = true;
  Cell* const d = to->cells.data();
  const Cell* const f = from.cells.data();
  const ptrdiff_t w = width_;
  // Group by group: each group's cells are loaded once for all its aggregates, and a merge is
  // a few short loops of the same lengths for every group (MergePlan) — about half the
  // instructions of one pass per aggregate over runs of groups. (Prefetching the groups a few
  // ahead made it slower: the accesses are sequential enough for the hardware's.)
  for (int32_t g = 0; g < n; ++g) {
    MergeGroup(d + dst[g] * w, f + g * w, to, from, &ok);
  }
  return ok;
}

std::vector<ColumnBuilder> AggLayout::MakeBuilders(int64_t capacity) const {
  std::vector<ColumnBuilder> out;
  out.reserve(specs_.size());
  for (const auto& s : specs_) out.emplace_back(s.output_type, capacity);
  return out;
}

namespace {

/// The largest (top) or smallest of the first n of 16 keys: one pass over all 16 slots, those
/// past n masked, with SSE2's 8-lane min/max where there is SSE2 (p95 of up to 20 values is the
/// largest: this is most of a window row's quantile).
inline int16_t ExtremeKey(const int16_t* keys, uint32_t n, bool top) {
  static_assert(SmallQuantile::kCapacity == 16);
  const int16_t pad = top ? INT16_MIN : INT16_MAX;
#ifdef __SSE2__
  const __m128i lanes = _mm_setr_epi16(0, 1, 2, 3, 4, 5, 6, 7);
  const __m128i count = _mm_set1_epi16(static_cast<int16_t>(n));
  const __m128i fill = _mm_set1_epi16(pad);
  const __m128i lo_in = _mm_cmplt_epi16(lanes, count);
  const __m128i hi_in = _mm_cmplt_epi16(_mm_add_epi16(lanes, _mm_set1_epi16(8)), count);
  const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(keys));
  const __m128i hi = _mm_loadu_si128(reinterpret_cast<const __m128i*>(keys + 8));
  const __m128i a = _mm_or_si128(_mm_and_si128(lo_in, lo), _mm_andnot_si128(lo_in, fill));
  const __m128i b = _mm_or_si128(_mm_and_si128(hi_in, hi), _mm_andnot_si128(hi_in, fill));
  auto reduce = [](__m128i v, auto op) {
    v = op(v, _mm_srli_si128(v, 8));
    v = op(v, _mm_srli_si128(v, 4));
    v = op(v, _mm_srli_si128(v, 2));
    return static_cast<int16_t>(_mm_cvtsi128_si32(v));
  };
  if (top)
    return reduce(_mm_max_epi16(a, b), [](__m128i x, __m128i y) { return _mm_max_epi16(x, y); });
  return reduce(_mm_min_epi16(a, b), [](__m128i x, __m128i y) { return _mm_min_epi16(x, y); });
#else
  int16_t best = pad;
  for (uint32_t i = 0; i < n; ++i) best = top ? std::max(best, keys[i]) : std::min(best, keys[i]);
  return best;
#endif
}

/// The result of aggregate `s` of kind K (of the group whose cells start at `group`, in `store`)
/// into *out, as the 8 bytes of its output column (int64, timestamp or float64); false when it
/// is null. `rank_of[n]` is a quantile's rank among n values, for n up to
/// QuantileSketch::kRawMax (null: none).
template <AggKind K>
inline bool ResultOf(const AggSpec& s, const Cell* group, const AggStore& store,
                     const int64_t* rank_of, Cell* out) {
  const Cell* a = group + s.offset;
  if constexpr (K == AggKind::kCountRows || K == AggKind::kCount) {
    *out = a[0];
    return true;
  } else if constexpr (K == AggKind::kSum || K == AggKind::kMin || K == AggKind::kMax) {
    *out = a[0];
    return group[s.count].i != 0;
  } else if constexpr (K == AggKind::kAvg) {
    const int64_t n = group[s.count].i;
    if (n == 0) return false;
    out->d = a[0].d / static_cast<double>(n);
    return true;
  } else if constexpr (K == AggKind::kStddev) {
    if (a[0].i < 2) return false;
    out->d = std::sqrt(a[2].d / static_cast<double>(a[0].i - 1));
    return true;
  } else if constexpr (K == AggKind::kFirst || K == AggKind::kLast) {
    *out = a[0];
    return a[2].i != 0;
  } else {
    static_assert(K == AggKind::kQuantile);
    const auto* q = reinterpret_cast<const SmallQuantile*>(a);
    if (q->spill < 0) {
      if (q->n == 0) return false;
      const int64_t rank = rank_of != nullptr ? rank_of[q->n] : QuantileSketch::Rank(s.q, q->n);
      int16_t key;
      if (rank == 0 || rank + 1 == q->n) {
        key = ExtremeKey(q->keys, q->n, /*top=*/rank != 0);
      } else {
        key = QuantileSketch::KeyAtRank(q->keys, q->n, static_cast<uint32_t>(rank));
      }
      out->d = QuantileSketch::ValueOfKey(QuantileSketch::LongKey(key));
      return true;
    }
    const QuantileSketch& sk = store.sketches[static_cast<size_t>(q->spill)];
    const int64_t n = sk.count();
    if (n == 0) return false;
    out->d = rank_of != nullptr && n <= QuantileSketch::kRawMax ? sk.ValueAtRank(rank_of[n])
                                                                : sk.Quantile(s.q);
    return true;
  }
}

}  // namespace

void AggLayout::Append(const AggStore& store, int32_t g,
                       std::vector<ColumnBuilder>* builders) const {
  const Cell* c = store.cells.data() + static_cast<ptrdiff_t>(g) * width_;
  for (size_t k = 0; k < specs_.size(); ++k) {
    const AggSpec& s = specs_[k];
    ColumnBuilder& b = (*builders)[k];
    WithKind(s, [&](auto kind) {
      Cell v;
      if (ResultOf<decltype(kind)::value>(s, c, store, nullptr, &v)) {
        b.AppendInt64(v.i);  // every output type is 8 bytes: int64, timestamp, float64's bits
      } else {
        b.AppendNull();
      }
    });
  }
}

void AggLayout::AppendGroups(const AggStore& store, int32_t n,
                             std::vector<ColumnBuilder>* builders) const {
  const Cell* c = store.cells.data();
  const ptrdiff_t w = width_;
  int64_t rank_of[QuantileSketch::kRawMax + 1] = {};
  for (size_t k = 0; k < specs_.size(); ++k) {
    const AggSpec& s = specs_[k];
    ColumnBuilder& b = (*builders)[k];
    if (s.kind == AggKind::kQuantile) {
      for (int64_t m = 1; m <= QuantileSketch::kRawMax; ++m)
        rank_of[m] = QuantileSketch::Rank(s.q, m);
    }
    // Every output type is 8 bytes wide: the values go straight into the column's memory.
    const int64_t base = b.length();
    Cell* out = b.AppendUninitialized<Cell>(n);
    WithKind(s, [&](auto kind) {
      for (int32_t g = 0; g < n; ++g) {
        if (!ResultOf<decltype(kind)::value>(s, c + g * w, store, rank_of, &out[g])) {
          b.SetNull(base + g);
        }
      }
    });
  }
}

}  // namespace sluice::window_internal
