#include "sluice/transforms/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <vector>

namespace sluice {

namespace {

constexpr double kGamma =
    (1 + QuantileSketch::kRelativeError) / (1 - QuantileSketch::kRelativeError);
const double kInvLogGamma = 1.0 / std::log(kGamma);

// Keys of the special values and the bases of the bucket ranges. A finite double's bucket index
// is within +-40,000 (log(1.8e308) / log(gamma) ~ 35,500), far from the bases' 2^24.
constexpr int32_t kNegInf = INT32_MIN;
constexpr int32_t kNegBase = -(1 << 24);
constexpr int32_t kZero = 0;
constexpr int32_t kPosBase = 1 << 24;
constexpr int32_t kPosInf = INT32_MAX - 1;
constexpr int32_t kNaNKey = INT32_MAX;

/// The bucket of a finite x > 0: the i with gamma^(i-1) < x <= gamma^i.
int32_t IndexOf(double x) { return static_cast<int32_t>(std::ceil(std::log(x) * kInvLogGamma)); }

/// The value that stands for bucket i: within kRelativeError of every value in it. Buckets
/// of values between about 1e-17 and 1e17 come from a table (pow was a few % of a window run).
constexpr int32_t kTable = 2000;
// Built on the first lookup (a window's first quantile), not when the program starts: its 4,001
// pow calls were 5 % of the instructions of a one-row run of any pipeline. Lookups are one per
// quantile emitted, so the guard checked on each costs nothing measurable.
const std::vector<double>& ValueTable() {
  static const std::vector<double> table = [] {
    std::vector<double> t(2 * kTable + 1);
    for (int32_t k = -kTable; k <= kTable; ++k) {
      t[static_cast<size_t>(k + kTable)] = 2.0 * std::pow(kGamma, k) / (kGamma + 1.0);
    }
    return t;
  }();
  return table;
}

double ValueOf(int32_t i) {
  if (i >= -kTable && i <= kTable) return ValueTable()[static_cast<size_t>(i + kTable)];
  return 2.0 * std::pow(kGamma, i) / (kGamma + 1.0);
}

}  // namespace

int32_t QuantileSketch::KeyOf(double v) {
  if (std::isnan(v)) return kNaNKey;
  if (v == 0) return kZero;
  if (std::isinf(v)) return v > 0 ? kPosInf : kNegInf;
  return v > 0 ? kPosBase + IndexOf(v) : kNegBase - IndexOf(-v);
}

double QuantileSketch::ValueOfKey(int32_t key) {
  if (key == kNaNKey) return std::numeric_limits<double>::quiet_NaN();
  if (key == kPosInf) return std::numeric_limits<double>::infinity();
  if (key == kNegInf) return -std::numeric_limits<double>::infinity();
  if (key == kZero) return 0.0;
  return key > kZero ? ValueOf(key - kPosBase) : -ValueOf(kNegBase - key);
}

// 16-bit keys: NaN, +inf and -inf at the ends, zero at 0, positive buckets around +kShortBase
// and negative ones around -kShortBase (mirrored, as the 32-bit keys are).
namespace {
constexpr int16_t kShortNaN = INT16_MAX;
constexpr int16_t kShortPosInf = INT16_MAX - 1;
constexpr int16_t kShortNegInf = INT16_MIN;
constexpr int32_t kShortBase = 16384;
static_assert(kShortBase + QuantileSketch::kShortIndex < kShortPosInf);
static_assert(-kShortBase - QuantileSketch::kShortIndex > kShortNegInf);
}  // namespace

bool QuantileSketch::ShortKey(int32_t key, int16_t* out) {
  int32_t s;
  if (key == kNaNKey) {
    s = kShortNaN;
  } else if (key == kPosInf) {
    s = kShortPosInf;
  } else if (key == kNegInf) {
    s = kShortNegInf;
  } else if (key == kZero) {
    s = 0;
  } else {
    const int32_t index = key > kZero ? key - kPosBase : kNegBase - key;
    if (index < -kShortIndex || index > kShortIndex) return false;
    s = key > kZero ? kShortBase + index : -kShortBase - index;
  }
  *out = static_cast<int16_t>(s);
  return true;
}

int32_t QuantileSketch::LongKey(int16_t key) {
  switch (key) {
    case kShortNaN:
      return kNaNKey;
    case kShortPosInf:
      return kPosInf;
    case kShortNegInf:
      return kNegInf;
    case 0:
      return kZero;
    default:
      return key > 0 ? kPosBase + (key - kShortBase) : kNegBase - (-kShortBase - key);
  }
}

namespace {

/// Sort `n` keys into (key, count) pairs written to `out` (room for 2 * n); return the pairs.
uint32_t SortedPairs(const int32_t* keys, uint32_t n, int32_t* out) {
  int32_t sorted[QuantileSketch::kRawMax];
  std::memcpy(sorted, keys, n * sizeof(int32_t));
  std::sort(sorted, sorted + n);
  uint32_t pairs = 0;
  for (uint32_t i = 0; i < n;) {
    uint32_t j = i + 1;
    while (j < n && sorted[j] == sorted[i]) ++j;
    out[2 * pairs] = sorted[i];
    out[2 * pairs + 1] = static_cast<int32_t>(j - i);
    ++pairs;
    i = j;
  }
  return pairs;
}

/// Return the key at 0-based `rank` of `n` unsorted keys. The quantiles asked for most are near
/// an end (p95 of 15 values is the largest): those keep the few keys from that end in one pass.
template <typename Key>
Key NthKey(const Key* keys, uint32_t n, uint32_t rank) {
  constexpr uint32_t kFew = 8;
  const bool top = rank >= n / 2;
  const uint32_t k = top ? n - rank : rank + 1;  // the answer is the k-th from that end
  if (k == 1) {
    // A reduction over values (not max_element's iterator), which the compiler vectorises.
    Key best = keys[0];
    if (top) {
      for (uint32_t i = 1; i < n; ++i) best = std::max(best, keys[i]);
    } else {
      for (uint32_t i = 1; i < n; ++i) best = std::min(best, keys[i]);
    }
    return best;
  }
  if (k <= kFew) {
    // best[0, kept) sorted from the end outwards: best[k - 1] is the k-th from the end.
    Key best[kFew];
    uint32_t kept = 0;
    for (uint32_t i = 0; i < n; ++i) {
      const Key x = keys[i];
      auto before = [top](Key a, Key b) { return top ? a > b : a < b; };
      if (kept == k && !before(x, best[k - 1])) continue;
      uint32_t j = kept < k ? kept++ : k - 1;
      for (; j > 0 && before(x, best[j - 1]); --j) best[j] = best[j - 1];
      best[j] = x;
    }
    return best[k - 1];
  }
  Key copy[QuantileSketch::kRawMax];
  std::memcpy(copy, keys, n * sizeof(Key));
  std::nth_element(copy, copy + rank, copy + n);
  return copy[rank];
}

}  // namespace

int32_t QuantileSketch::KeyAtRank(const int32_t* keys, uint32_t n, uint32_t rank) {
  return NthKey(keys, n, rank);
}

int16_t QuantileSketch::KeyAtRank(const int16_t* keys, uint32_t n, uint32_t rank) {
  return NthKey(keys, n, rank);
}

QuantileSketch& QuantileSketch::operator=(const QuantileSketch& o) {
  if (this == &o) return *this;
  Clear();
  const uint32_t n = o.used();
  Reserve(n);
  if (n > 0) std::memcpy(data(), o.data(), n * sizeof(int32_t));
  count_ = o.count_;
  size_ = o.size_;
  return *this;
}

QuantileSketch& QuantileSketch::operator=(QuantileSketch&& o) noexcept {
  if (this == &o) return *this;
  Free();
  if (o.on_heap()) {
    heap_ = o.heap_;
    cap_ = o.cap_;
    o.cap_ = kInline;
  } else {
    std::memcpy(inline_, o.inline_, sizeof(inline_));
  }
  count_ = o.count_;
  size_ = o.size_;
  o.Clear();
  return *this;
}

void QuantileSketch::Reserve(uint32_t n) {
  if (n <= cap_) return;
  const uint32_t cap = std::max(n, 2 * cap_);
  auto* p = new int32_t[cap];
  std::memcpy(p, data(), used() * sizeof(int32_t));
  Free();
  heap_ = p;
  cap_ = cap;
}

void QuantileSketch::Free() {
  if (on_heap()) delete[] heap_;
  cap_ = kInline;
}

void QuantileSketch::ToBuckets() {
  int32_t pairs[2 * kRawMax];
  const uint32_t n = SortedPairs(data(), size_, pairs);
  Reserve(2 * n);
  std::memcpy(data(), pairs, 2 * n * sizeof(int32_t));
  size_ = n;
}

void QuantileSketch::MergeBuckets(const int32_t* b, uint32_t nb) {
  // Merge from the back into the tail of the pairs grown by nb (no allocation once the
  // capacity is there), then close the gap equal keys left.
  const uint32_t na = size_;
  Reserve(2 * (na + nb));
  int32_t* a = data();
  uint32_t i = na, j = nb, k = na + nb;
  auto put = [a](uint32_t at, int32_t key, uint32_t n) {
    a[2 * at] = key;
    a[2 * at + 1] = static_cast<int32_t>(n);
  };
  auto count = [](const int32_t* p, uint32_t at) { return static_cast<uint32_t>(p[2 * at + 1]); };
  while (j > 0) {
    if (i > 0 && a[2 * (i - 1)] > b[2 * (j - 1)]) {
      --i;
      put(--k, a[2 * i], count(a, i));
    } else if (i > 0 && a[2 * (i - 1)] == b[2 * (j - 1)]) {
      --i;
      --j;
      put(--k, b[2 * j], count(a, i) + count(b, j));
    } else {
      --j;
      put(--k, b[2 * j], count(b, j));
    }
  }
  // Pairs [0, i) are in place; the merged rest starts at k >= i.
  const uint32_t rest = na + nb - k;
  if (k > i) std::memmove(a + 2 * i, a + 2 * k, 2 * rest * sizeof(int32_t));
  size_ = i + rest;
}

void QuantileSketch::AddKey(int32_t key) {
  if (count_ < kRawMax) {  // stays raw
    Reserve(size_ + 1);
    data()[size_++] = key;
    ++count_;
    return;
  }
  if (count_ == kRawMax) ToBuckets();
  ++count_;
  const int32_t pair[2] = {key, 1};
  MergeBuckets(pair, 1);
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  if (&other == this) {
    const QuantileSketch copy(other);
    Merge(copy);
    return;
  }
  if (other.count_ == 0) return;
  if (count_ + other.count_ <= kRawMax) {  // both raw, and staying so: append the keys
    Reserve(size_ + other.size_);
    std::memcpy(data() + size_, other.data(), other.size_ * sizeof(int32_t));
    size_ += other.size_;
    count_ += other.count_;
    return;
  }
  if (count_ == 0) {
    *this = other;  // other has more than kRawMax values: pairs
    return;
  }
  if (raw()) ToBuckets();
  count_ += other.count_;  // past kRawMax: pairs from here on
  if (!other.raw()) {
    MergeBuckets(other.data(), other.size_);
    return;
  }
  int32_t pairs[2 * kRawMax];
  MergeBuckets(pairs, SortedPairs(other.data(), other.size_, pairs));
}

int64_t QuantileSketch::Rank(double q, int64_t n) {
  q = std::clamp(q, 0.0, 1.0);
  return std::max<int64_t>(0, static_cast<int64_t>(std::ceil(q * static_cast<double>(n))) - 1);
}

double QuantileSketch::ValueAtRank(int64_t rank) const {
  const int32_t* d = data();
  if (raw()) return ValueOfKey(KeyAtRank(d, size_, static_cast<uint32_t>(rank)));
  for (uint32_t b = 0; b < size_; ++b) {
    const auto n = static_cast<uint32_t>(d[2 * b + 1]);
    if (rank < n) return ValueOfKey(d[2 * b]);
    rank -= n;
  }
  return ValueOfKey(d[2 * (size_ - 1)]);
}

}  // namespace sluice
