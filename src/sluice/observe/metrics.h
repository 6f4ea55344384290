#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "sluice/core/status.h"

namespace sluice::observe {

/// Name/value pairs that identify one series of a metric family, e.g. {{"node", "src"}}.
/// The registry sorts them by name, so the order a caller writes them in does not matter.
using Labels = std::vector<std::pair<std::string, std::string>>;

/// The kind of a metric family.
enum class MetricType : uint8_t { kCounter, kGauge, kHistogram };

/// Return "counter", "gauge" or "histogram".
std::string_view MetricTypeName(MetricType type);

/// The size the hot metrics are padded to, so two of them never share a cache line.
inline constexpr std::size_t kCacheLineBytes = 64;

/// A monotonically increasing integer. Add() is one relaxed atomic add: no lock, no allocation;
/// safe from any thread.
class alignas(kCacheLineBytes) Counter {
 public:
  /// Add `delta` (expected >= 0) to the counter.
  void Add(int64_t delta = 1) { value_.fetch_add(delta, std::memory_order_relaxed); }
  /// Return the current total.
  int64_t Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<int64_t> value_{0};
};

/// A value that goes up and down. Set/Add are relaxed atomics; safe from any thread.
class alignas(kCacheLineBytes) Gauge {
 public:
  /// Replace the value with `value`.
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  /// Add `delta` (may be negative) to the value.
  void Add(double delta) { value_.fetch_add(delta, std::memory_order_relaxed); }
  /// Return the current value.
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

/// A point-in-time copy of a Histogram: count, sum, min, max and the non-empty fine buckets.
/// Values are recorded as raw int64 (e.g. microseconds) and exposed multiplied by `scale()`
/// (e.g. 1e-6, to expose seconds); every accessor below returns exposed units.
/// A plain value type: copyable, not thread-safe.
class HistogramSnapshot {
 public:
  /// Create an empty snapshot with the given unit ("s", "rows", "bytes") and scale.
  explicit HistogramSnapshot(std::string unit = "", double scale = 1.0)
      : unit_(std::move(unit)), scale_(scale) {}

  const std::string& unit() const { return unit_; }
  double scale() const { return scale_; }
  /// Return the number of recorded values.
  int64_t count() const { return count_; }
  /// Return the sum of the recorded values, in exposed units.
  double sum() const { return static_cast<double>(sum_raw_) * scale_; }
  /// Return the smallest recorded value (exposed units); 0 when empty.
  double min() const { return count_ == 0 ? 0.0 : static_cast<double>(min_raw_) * scale_; }
  /// Return the largest recorded value (exposed units); 0 when empty.
  double max() const { return count_ == 0 ? 0.0 : static_cast<double>(max_raw_) * scale_; }

  /// Return the q-quantile (0 <= q <= 1) by nearest rank: the smallest recorded value v such that
  /// at least ceil(q * count) values are <= v, to within the bucket error (<= 1/64 relative).
  /// Quantile(0) is min() and Quantile(1) is max(), exactly. Returns 0 when empty.
  double Quantile(double q) const;

  /// Add the observations of `other`. When the scales differ, other's buckets are mapped onto
  /// this snapshot's scale (approximately, to within the bucket error). The unit is kept.
  void Merge(const HistogramSnapshot& other);

  /// Return, for each of the ascending `upper_bounds` (exposed units), how many values are <= it.
  /// A fine bucket counts under a bound only if all of it is <= the bound, so each count is a
  /// lower bound of the exact one (exact for values below 64 raw units).
  std::vector<int64_t> CumulativeCounts(const std::vector<double>& upper_bounds) const;

  /// Return coarse buckets for people: [(upper_bound, count_in_bucket)] with upper bounds at
  /// 1, 2.5, 5 per decade from the first one >= max(min, 1 raw unit) to the first one >= max;
  /// counts are not cumulative and add up to count(). Empty when count() == 0.
  std::vector<std::pair<double, int64_t>> CoarseBuckets() const;

  /// Return {"unit", "count", "sum", "min", "max", "p50", "p95", "p99",
  /// "buckets": [[upper_bound, count], ...]}, the shape of run.json's nodes[i].histograms.
  nlohmann::json ToJson() const;

  /// Return the smallest value worth a bucket bound (exposed units): max(min, 1 raw unit).
  double PositiveMin() const;

  /// Set the raw state directly; for tests and for converting foreign histograms.
  /// `buckets` are (fine bucket index, count) pairs in ascending index order.
  void SetRaw(int64_t count, int64_t sum_raw, int64_t min_raw, int64_t max_raw,
              std::vector<std::pair<uint32_t, int64_t>> buckets);

 private:
  friend class Histogram;

  std::string unit_;
  double scale_ = 1.0;
  int64_t count_ = 0;
  int64_t sum_raw_ = 0;
  int64_t min_raw_ = 0;
  int64_t max_raw_ = 0;
  std::vector<std::pair<uint32_t, int64_t>> buckets_;  // (fine index, count), ascending, > 0
};

/// A log-linear (HDR-style) histogram of non-negative int64 values: 32 linear sub-buckets per
/// power of two, so any value is known to within 1/32 of itself (quantiles within 1/64), over
/// the whole range 0 .. 2^63-1 in a fixed 15 KiB. Record() takes no lock and allocates nothing:
/// one relaxed add on a bucket, one on the sum, and min/max updates that only write when a new
/// extreme arrives. Safe from any thread; Snapshot() may run concurrently with Record().
class alignas(kCacheLineBytes) Histogram {
 public:
  static constexpr int kSubBucketBits = 5;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;                  // 32
  static constexpr int kNumBuckets = (64 - kSubBucketBits) * kSubBuckets;  // 1888

  /// Create an empty histogram whose values are exposed as `value * scale` in `unit`
  /// (e.g. unit "s" and scale 1e-6 for values recorded in microseconds).
  explicit Histogram(std::string unit = "", double scale = 1.0);

  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  /// Record one value. Negative values are recorded as 0. The raw sum wraps past 2^63.
  void Record(int64_t value) {
    if (value < 0) value = 0;
    buckets_[BucketIndex(value)].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
    int64_t cur = min_.load(std::memory_order_relaxed);
    while (value < cur && !min_.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
    }
    cur = max_.load(std::memory_order_relaxed);
    while (value > cur && !max_.compare_exchange_weak(cur, value, std::memory_order_relaxed)) {
    }
  }

  /// Return a copy of the current state. Concurrent Records may be partly included.
  HistogramSnapshot Snapshot() const;

  const std::string& unit() const { return unit_; }
  double scale() const { return scale_; }

  /// Return the fine bucket of a non-negative `value`.
  static int BucketIndex(int64_t value) {
    const auto v = static_cast<uint64_t>(value);
    if (v < static_cast<uint64_t>(kSubBuckets)) return static_cast<int>(v);
    const int exponent = 63 - __builtin_clzll(v);  // >= kSubBucketBits
    const int shift = exponent - kSubBucketBits;
    return (shift + 1) * kSubBuckets + static_cast<int>((v >> shift) - kSubBuckets);
  }
  /// Return the smallest value that falls in fine bucket `index`.
  static int64_t BucketLowerBound(int index);
  /// Return the largest value that falls in fine bucket `index`.
  static int64_t BucketUpperBound(int index);

 private:
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> min_;
  std::atomic<int64_t> max_;
  std::string unit_;
  double scale_;
  alignas(kCacheLineBytes) std::array<std::atomic<int64_t>, kNumBuckets> buckets_{};
};

/// Receives the samples a collector emits at scrape time. Samples with the same name and labels
/// as another (registered or collected) are combined: counters and gauges are summed,
/// histograms merged, so per-instance stats of a parallel node add up under one label set.
/// A sample whose name is invalid or already used with another type is dropped and reported by
/// MetricsRegistry::status().
class CollectorSink {
 public:
  virtual ~CollectorSink() = default;
  /// Emit a counter sample; `name` should end in "_total".
  virtual void AddCounter(std::string_view name, std::string_view help, const Labels& labels,
                          double value) = 0;
  /// Emit a gauge sample.
  virtual void AddGauge(std::string_view name, std::string_view help, const Labels& labels,
                        double value) = 0;
  /// Emit a histogram sample (exposed units come from the snapshot's scale).
  virtual void AddHistogram(std::string_view name, std::string_view help, const Labels& labels,
                            const HistogramSnapshot& snapshot) = 0;
};

/// A scrape-time callback: reads values that live elsewhere (e.g. NodeStats) into the sink.
using Collector = std::function<void(CollectorSink&)>;

/// One series of a family at scrape time.
struct SeriesSnapshot {
  Labels labels;                ///< Sorted by name.
  double value = 0.0;           ///< Counters and gauges.
  HistogramSnapshot histogram;  ///< Histograms.
};

/// One metric family at scrape time: every series of one name.
struct FamilySnapshot {
  std::string name;
  std::string help;
  MetricType type = MetricType::kCounter;
  std::vector<SeriesSnapshot> series;  ///< Sorted by labels.
  /// Histograms: the finite `le` bounds to expose. MetricsRegistry::Collect() fills them from
  /// the widest range the family has ever shown in this registry, so bounds only get added over
  /// time and an `le` series never disappears between scrapes. Empty: derive from `series`.
  std::vector<double> bucket_bounds;

  /// Return the series with exactly `labels` (any order), or nullptr.
  const SeriesSnapshot* Find(Labels labels) const;
};

/// Owns the process's (or one run's) metrics and renders them for Prometheus and as JSON.
///
/// Get*() look a series up by name and labels, creating it on first use, and return a reference
/// that stays valid for the registry's lifetime: call them once at setup and keep the reference,
/// not per batch (they take a lock). Everything else on a metric is lock-free.
///
/// Precondition: a name is used with one type only, names match [a-zA-Z_:][a-zA-Z0-9_:]*, label
/// names match [a-zA-Z_][a-zA-Z0-9_]* (not "__"-prefixed, not "le" on histograms) and are not
/// repeated. A violation is a programmer error: the call still returns a working metric, but it
/// is never exported, and status() reports the first such error.
///
/// Thread-safe. Collectors run one scrape at a time, outside the registry lock (so they may call
/// Get*), but must not call AddCollector/RemoveCollector.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  /// Return the counter `name`{labels}, creating it (with `help`) on first use.
  Counter& GetCounter(std::string_view name, std::string_view help, Labels labels = {});
  /// Return the gauge `name`{labels}, creating it on first use.
  Gauge& GetGauge(std::string_view name, std::string_view help, Labels labels = {});
  /// Return the histogram `name`{labels}, creating it with `unit` and `scale` on first use
  /// (later calls return the existing one whatever unit and scale they pass).
  Histogram& GetHistogram(std::string_view name, std::string_view help, Labels labels = {},
                          std::string_view unit = "", double scale = 1.0);

  /// Add a callback run at every Collect()/PrometheusText()/Json(); return its id.
  int64_t AddCollector(Collector collector);
  /// Remove a collector. When this returns, the collector is not running and will not run again,
  /// so what it reads may be destroyed. Unknown ids are ignored.
  void RemoveCollector(int64_t id);

  /// Return every family (registered and collected), sorted by name, series sorted by labels.
  std::vector<FamilySnapshot> Collect() const;
  /// Return the Prometheus text exposition (format 0.0.4) of Collect().
  std::string PrometheusText() const;
  /// Return {"metrics": [{"name", "type", "help", "series": [{"labels": {..}, "value": x} or
  /// {"labels": {..}, <HistogramSnapshot::ToJson() fields>}]}]} of Collect().
  nlohmann::json Json() const;

  /// Return OK, or the first precondition violation (see the class comment).
  Status status() const;

 private:
  struct Series;
  struct Family;

  Series& GetSeries(std::string_view name, std::string_view help, Labels labels, MetricType type,
                    std::string_view unit, double scale);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_;  // guarded by mu_
  std::vector<std::unique_ptr<Series>> orphans_;                          // guarded by mu_
  mutable Status status_;                                                 // guarded by mu_
  // Widest (low, high) range each histogram family has shown, in exposed units.
  mutable std::map<std::string, std::pair<double, double>, std::less<>> histogram_ranges_;  // mu_

  mutable std::mutex collect_mu_;            // held while collectors run
  std::map<int64_t, Collector> collectors_;  // guarded by collect_mu_
  int64_t next_collector_id_ = 1;            // guarded by collect_mu_
};

/// Return `families` in the Prometheus text exposition format 0.0.4: one HELP and TYPE per
/// family; histograms as _bucket{le=...} (the family's bucket_bounds, or 1, 2.5, 5 per decade
/// over its observed range; the same bounds for every series of the family; then +Inf), _sum
/// and _count.
std::string RenderPrometheusText(const std::vector<FamilySnapshot>& families);

/// Return `families` as JSON (the shape MetricsRegistry::Json() documents).
nlohmann::json RenderJson(const std::vector<FamilySnapshot>& families);

/// Return the bucket bounds 1, 2.5, 5 x 10^k from the first >= `lo` to the first >= `hi`
/// (both > 0, lo <= hi); empty when hi <= 0.
std::vector<double> DecadeBounds(double lo, double hi);

/// Return `value` escaped for a label value: backslash, double quote and newline.
std::string EscapeLabelValue(std::string_view value);

/// Return `value` as Prometheus writes a sample value: shortest round-trip, "+Inf", "NaN".
std::string FormatSampleValue(double value);

}  // namespace sluice::observe
