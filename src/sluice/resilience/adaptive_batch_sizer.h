#pragma once

#include <cstdint>

namespace sluice {

/// Settings of an AdaptiveBatchSizer. Sizes are in rows; latencies in microseconds.
struct AdaptiveBatchSizerOptions {
  int64_t min_rows = 100;
  int64_t max_rows = 10'000;
  /// The first read size; 0 picks it from `expected_rows` (see AdaptiveBatchSizer).
  int64_t initial_rows = 0;
  /// The time one batch should take end to end (read, or read + write).
  int64_t target_latency_us = 1'000'000;
  /// Rows the whole run is expected to move; -1 when unknown.
  int64_t expected_rows = -1;
  /// Write batches are this fraction of read batches (writes may be smaller than reads).
  double write_ratio = 0.5;
};

/// Choose batch sizes: a starting size from the expected volume, then AIMD feedback toward a
/// target latency per batch, always within [min_rows, max_rows].
///
/// Start (when initial_rows is 0), by expected volume, at the upper bound of its tier:
///   < 1k rows: 500; 1k-10k: 1000; 10k-100k: 5000; >= 100k: 10000; unknown (-1): 1000, so
///   that a surprisingly small input is not over-read;
/// then clamped to [min_rows, max_rows].
///
/// After each observed batch (AIMD, as TCP does for its window):
///   latency < 0.8 x target and the batch was full: add max(1, max_rows / 16) rows;
///   latency > 1.2 x target: halve;
///   otherwise: keep.
/// A batch smaller than the current size (the end of a stream) cannot justify growing, so it
/// never triggers an increase. Deterministic; not thread-safe (one sizer per node instance).
class AdaptiveBatchSizer {
 public:
  explicit AdaptiveBatchSizer(const AdaptiveBatchSizerOptions& options);

  /// Return the starting size the tiers give for `expected_rows`, before clamping.
  static int64_t TierStartRows(int64_t expected_rows);

  /// Record that a batch of `rows` took `latency_us`, and adjust the size.
  void Observe(int64_t rows, int64_t latency_us);

  /// Return the number of rows to read in the next batch.
  int64_t read_size() const { return read_size_; }
  /// Return the number of rows to write per request: read_size() x write_ratio, at least 1.
  int64_t write_size() const;
  /// Return how many times the size grew or shrank (for metrics).
  int64_t increases() const { return increases_; }
  int64_t decreases() const { return decreases_; }
  const AdaptiveBatchSizerOptions& options() const { return options_; }

 private:
  int64_t Clamp(int64_t rows) const;

  AdaptiveBatchSizerOptions options_;
  int64_t step_;
  int64_t read_size_;
  int64_t increases_ = 0;
  int64_t decreases_ = 0;
};

}  // namespace sluice
