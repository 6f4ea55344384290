#include "sluice/transforms/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

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
constexpr int32_t kNaN = INT32_MAX;

/// The bucket of a finite x > 0: the i with gamma^(i-1) < x <= gamma^i.
int32_t IndexOf(double x) { return static_cast<int32_t>(std::ceil(std::log(x) * kInvLogGamma)); }

/// The value that stands for bucket i: within kRelativeError of every value in it. Buckets
/// of values between about 1e-17 and 1e17 come from a table (pow was a few % of a window run).
double ValueOf(int32_t i) {
  constexpr int32_t kTable = 2000;
  static const std::vector<double> table = [] {
    std::vector<double> t(2 * kTable + 1);
    for (int32_t k = -kTable; k <= kTable; ++k) {
      t[static_cast<size_t>(k + kTable)] = 2.0 * std::pow(kGamma, k) / (kGamma + 1.0);
    }
    return t;
  }();
  if (i >= -kTable && i <= kTable) return table[static_cast<size_t>(i + kTable)];
  return 2.0 * std::pow(kGamma, i) / (kGamma + 1.0);
}

int32_t KeyOf(double v) {
  if (std::isnan(v)) return kNaN;
  if (v == 0) return kZero;
  if (std::isinf(v)) return v > 0 ? kPosInf : kNegInf;
  return v > 0 ? kPosBase + IndexOf(v) : kNegBase - IndexOf(-v);
}

double ValueOfKey(int32_t key) {
  if (key == kNaN) return std::numeric_limits<double>::quiet_NaN();
  if (key == kPosInf) return std::numeric_limits<double>::infinity();
  if (key == kNegInf) return -std::numeric_limits<double>::infinity();
  if (key == kZero) return 0.0;
  return key > kZero ? ValueOf(key - kPosBase) : -ValueOf(kNegBase - key);
}

}  // namespace

void QuantileSketch::AddTo(std::vector<Bucket>* store, int32_t key, uint32_t n) {
  auto it = std::lower_bound(store->begin(), store->end(), key,
                             [](const Bucket& b, int32_t k) { return b.first < k; });
  if (it != store->end() && it->first == key) {
    it->second += n;
  } else {
    store->insert(it, {key, n});
  }
}

void QuantileSketch::Add(double v) {
  ++count_;
  AddTo(&buckets_, KeyOf(v), 1);
}

void QuantileSketch::Merge(const QuantileSketch& other) {
  count_ += other.count_;
  const auto& b = other.buckets_;
  if (b.empty()) return;
  if (buckets_.empty()) {
    buckets_.assign(b.begin(), b.end());
    return;
  }
  if (b.size() <= 4) {  // the usual case: a slice saw a key a few times
    for (const auto& [key, n] : b) AddTo(&buckets_, key, n);
    return;
  }
  // Merge from the back into the tail of buckets_ grown by b's size (no allocation once the
  // capacity is there), then close the gap equal keys left.
  const size_t n = buckets_.size();
  buckets_.resize(n + b.size());
  size_t i = n, j = b.size(), k = n + b.size();
  while (j > 0) {
    if (i > 0 && buckets_[i - 1].first > b[j - 1].first) {
      buckets_[--k] = buckets_[--i];
    } else if (i > 0 && buckets_[i - 1].first == b[j - 1].first) {
      buckets_[--k] = {b[j - 1].first, buckets_[i - 1].second + b[j - 1].second};
      --i;
      --j;
    } else {
      buckets_[--k] = b[--j];
    }
  }
  // buckets_[0, i) are in place; the merged rest starts at k >= i.
  if (k > i) {
    std::copy(buckets_.begin() + static_cast<std::ptrdiff_t>(k), buckets_.end(),
              buckets_.begin() + static_cast<std::ptrdiff_t>(i));
    buckets_.resize(buckets_.size() - (k - i));
  }
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return std::numeric_limits<double>::quiet_NaN();
  q = std::clamp(q, 0.0, 1.0);
  // The rank of the sample asked for, 0-based, in ascending order (NaN last): percentile_disc's.
  auto rank =
      std::max<int64_t>(0, static_cast<int64_t>(std::ceil(q * static_cast<double>(count_))) - 1);
  for (const auto& [key, n] : buckets_) {
    if (rank < n) return ValueOfKey(key);
    rank -= n;
  }
  return ValueOfKey(buckets_.back().first);
}

}  // namespace sluice
