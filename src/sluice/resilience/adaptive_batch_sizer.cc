#include "sluice/resilience/adaptive_batch_sizer.h"

#include <algorithm>
#include <cmath>

namespace sluice {

AdaptiveBatchSizer::AdaptiveBatchSizer(const AdaptiveBatchSizerOptions& options)
    : options_(options) {
  options_.min_rows = std::max<int64_t>(1, options_.min_rows);
  options_.max_rows = std::max(options_.min_rows, options_.max_rows);
  if (options_.write_ratio <= 0) options_.write_ratio = 1.0;
  // The smaller of 10% of max and max/16 is always max/16; kept as one rule for clarity.
  step_ = std::max<int64_t>(1, options_.max_rows / 16);
  const int64_t start =
      options_.initial_rows > 0 ? options_.initial_rows : TierStartRows(options_.expected_rows);
  read_size_ = Clamp(start);
}

int64_t AdaptiveBatchSizer::TierStartRows(int64_t expected_rows) {
  if (expected_rows < 0) return 1'000;
  if (expected_rows < 1'000) return 500;
  if (expected_rows < 10'000) return 1'000;
  if (expected_rows < 100'000) return 5'000;
  return 10'000;
}

int64_t AdaptiveBatchSizer::Clamp(int64_t rows) const {
  return std::clamp(rows, options_.min_rows, options_.max_rows);
}

void AdaptiveBatchSizer::Observe(int64_t rows, int64_t latency_us) {
  if (rows <= 0 || latency_us < 0) return;
  const double target = static_cast<double>(options_.target_latency_us);
  const auto latency = static_cast<double>(latency_us);
  int64_t next = read_size_;
  if (latency > 1.2 * target) {
    next = Clamp(read_size_ / 2);
  } else if (latency < 0.8 * target && rows >= read_size_) {
    next = Clamp(read_size_ + step_);
  }
  if (next > read_size_) ++increases_;
  if (next < read_size_) ++decreases_;
  read_size_ = next;
}

int64_t AdaptiveBatchSizer::write_size() const {
  const auto w =
      static_cast<int64_t>(std::llround(static_cast<double>(read_size_) * options_.write_ratio));
  return std::max<int64_t>(1, w);
}

}  // namespace sluice
