#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace sluice {

/// An approximate quantile sketch with a relative error bound (the DDSketch idea: values fall
/// into logarithmic buckets of ratio gamma = (1 + a) / (1 - a); a bucket's midpoint is within
/// `a` of every value in it, relative). Quantile(q) returns a value within kRelativeError of
/// PostgreSQL's percentile_disc(q): the first sample, in sorted order, at or above which lies a
/// fraction q of them (0-based rank ceil(q * n) - 1). Mergeable (windows built from
/// slices), compact for the few values a key sees in one window (a sorted list of the buckets
/// used, not an array of every possible one). Zero, negatives, infinities and NaN are kept
/// exactly: NaN sorts above +infinity, as PostgreSQL orders it.
class QuantileSketch {
 public:
  static constexpr double kRelativeError = 0.01;

  void Add(double v);
  void Merge(const QuantileSketch& other);
  /// Forget every value, keeping the memory for reuse.
  void Clear() {
    buckets_.clear();
    count_ = 0;
  }
  /// Return the estimate of quantile `q` in [0, 1]; NaN when empty.
  double Quantile(double q) const;
  int64_t count() const { return count_; }
  /// Return the bytes this sketch uses beyond sizeof(*this).
  int64_t HeapBytes() const { return static_cast<int64_t>(buckets_.capacity() * sizeof(Bucket)); }

 private:
  /// (key, count), sorted by key; keys sort as their values do: -infinity, negative values
  /// (by bucket of -value, largest first), zero, positive values (by bucket), +infinity, NaN.
  using Bucket = std::pair<int32_t, uint32_t>;
  static void AddTo(std::vector<Bucket>* store, int32_t key, uint32_t n);

  std::vector<Bucket> buckets_;
  int64_t count_ = 0;
};

}  // namespace sluice
