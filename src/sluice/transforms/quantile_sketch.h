#pragma once

#include <cstdint>

namespace sluice {

/// An approximate quantile sketch with a relative error bound (the DDSketch idea: values fall
/// into logarithmic buckets of ratio gamma = (1 + a) / (1 - a); a bucket's midpoint is within
/// `a` of every value in it, relative). Quantile(q) returns a value within kRelativeError of
/// PostgreSQL's percentile_disc(q): the first sample, in sorted order, at or above which lies a
/// fraction q of them (0-based rank ceil(q * n) - 1). Mergeable (windows built from
/// slices). Zero, negatives, infinities and NaN are kept exactly: NaN sorts above +infinity,
/// as PostgreSQL orders it.
///
/// Sized for the few values a key sees in one window: up to kRawMax values are kept as their
/// bucket keys, unsorted — a merge appends, an Add is a store, and the first kInline live in
/// the object itself (no heap) — and sorted only when a quantile is asked for. Past kRawMax the
/// keys become a sorted list of (bucket, count), only of the buckets used. Both forms answer
/// every quantile alike: the bucket of the value at the rank.
class QuantileSketch {
 public:
  static constexpr double kRelativeError = 0.01;
  /// Int32s held in the object: 16 values (8 buckets) need no heap. (A window group keeps its
  /// first 16 values in its own cells — window_internal::SmallQuantile — and a sketch only
  /// past that, or for values whose keys need 32 bits.)
  static constexpr uint32_t kInline = 16;
  /// Up to this many values a sketch keeps one key per value.
  static constexpr int64_t kRawMax = 64;

  QuantileSketch() = default;
  QuantileSketch(const QuantileSketch& o) { *this = o; }
  QuantileSketch(QuantileSketch&& o) noexcept { *this = static_cast<QuantileSketch&&>(o); }
  QuantileSketch& operator=(const QuantileSketch& o);
  QuantileSketch& operator=(QuantileSketch&& o) noexcept;
  ~QuantileSketch() { Free(); }

  void Add(double v) { AddKey(KeyOf(v)); }
  /// Add a value by its bucket key (KeyOf).
  void AddKey(int32_t key);
  void Merge(const QuantileSketch& other);
  /// Forget every value, keeping the memory for reuse.
  void Clear() {
    size_ = 0;
    count_ = 0;
  }
  /// Return the estimate of quantile `q` in [0, 1]; NaN when empty.
  double Quantile(double q) const { return count_ == 0 ? kNaN : ValueAtRank(Rank(q, count_)); }
  /// Return the 0-based rank, in ascending order, of quantile `q` among `n` > 0 values: that of
  /// percentile_disc(q), ceil(q * n) - 1.
  static int64_t Rank(double q, int64_t n);
  /// Return the estimate of the value at 0-based `rank` in [0, count()) in ascending order
  /// (Quantile with the rank found once for many sketches of the same count).
  double ValueAtRank(int64_t rank) const;
  int64_t count() const { return count_; }

  /// The bucket key of `v`: what a sketch keeps of it. Keys order as their values do.
  static int32_t KeyOf(double v);
  /// The value that stands for the bucket of `key`: within kRelativeError of every value in it.
  static double ValueOfKey(int32_t key);
  /// A key in 16 bits, order kept, for what most data holds: zero, the infinities, NaN, and
  /// every value whose magnitude is within about 1e-138 to 1e138 (bucket index within
  /// +-kShortIndex). False for the rest, which need the 32-bit key.
  static bool ShortKey(int32_t key, int16_t* out);
  static int32_t LongKey(int16_t key);
  static constexpr int32_t kShortIndex = 16000;
  /// Return the key at 0-based `rank` of `n` (up to kRawMax) unsorted keys.
  static int32_t KeyAtRank(const int32_t* keys, uint32_t n, uint32_t rank);
  static int16_t KeyAtRank(const int16_t* keys, uint32_t n, uint32_t rank);
  /// Return the bytes this sketch uses beyond sizeof(*this).
  int64_t HeapBytes() const { return on_heap() ? static_cast<int64_t>(cap_) * 4 : 0; }

 private:
  static constexpr double kNaN = __builtin_nan("");
  bool raw() const { return count_ <= kRawMax; }
  bool on_heap() const { return cap_ > kInline; }
  int32_t* data() { return on_heap() ? heap_ : inline_; }
  const int32_t* data() const { return on_heap() ? heap_ : inline_; }
  /// The int32s in use: a key per value (raw) or a (key, count) pair per bucket.
  uint32_t used() const { return raw() ? size_ : 2 * size_; }
  /// Make room for `n` int32s, keeping the first used().
  void Reserve(uint32_t n);
  void Free();
  /// Turn the raw keys into sorted (key, count) pairs (count_ is about to pass kRawMax).
  void ToBuckets();
  /// Merge sorted (key, count) pairs `b` (nb of them) into this sketch's, in place.
  void MergeBuckets(const int32_t* b, uint32_t nb);

  int64_t count_ = 0;
  uint32_t size_ = 0;  // keys (raw) or buckets held
  uint32_t cap_ = kInline;
  union {
    int32_t inline_[kInline] = {};
    int32_t* heap_;
  };
};

}  // namespace sluice
