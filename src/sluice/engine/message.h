#pragma once

#include <cstdint>
#include <memory>

#include "sluice/core/batch.h"
#include "sluice/core/memory_budget.h"
#include "sluice/engine/ack.h"

namespace sluice {

/// A share of the run's memory budget held while a source batch (or what was derived from it)
/// is in a queue or being processed. Released when the last message holding it is destroyed;
/// deliberately separate from acknowledgement, so a sink that holds acks until a file rolls
/// does not pin memory it no longer uses.
class MemoryLease {
 public:
  MemoryLease(MemoryBudget* budget, int64_t bytes) : budget_(budget), bytes_(bytes) {}
  ~MemoryLease() {
    if (budget_ != nullptr && bytes_ > 0) budget_->Release(bytes_);
  }
  MemoryLease(const MemoryLease&) = delete;
  MemoryLease& operator=(const MemoryLease&) = delete;

 private:
  MemoryBudget* budget_;
  int64_t bytes_;
};

/// "No watermark yet": smaller than every event time.
inline constexpr int64_t kNoWatermark = INT64_MIN;

/// What flows along an edge of the DAG: a batch, the acks of the source batches it came from,
/// and the memory lease that accounts for it — or, with no batch, a watermark: no row older
/// than `watermark` (event time, µs) will follow on this input.
struct Message {
  BatchPtr batch;
  AckSet acks;
  std::shared_ptr<MemoryLease> lease;
  int input = 0;     ///< Index of the consumer's input this arrived on.
  int port = 0;      ///< The producer's output it left on: 0 its rows, 1 its dead letters.
  uint64_t seq = 0;  ///< Order of arrival at the consumer (for ordered parallel transforms).
  int64_t watermark = kNoWatermark;  ///< A watermark marker's time (when `batch` is null).

  bool is_watermark() const { return batch == nullptr; }
  static Message Watermark(int64_t watermark) {
    Message m;
    m.watermark = watermark;
    return m;
  }
};

}  // namespace sluice
