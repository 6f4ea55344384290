#include "sluice/engine/ack.h"

#include "sluice/core/memory_budget.h"

namespace sluice {

AckHandle::~AckHandle() {
  // Cancellation wins over a clean drop: a batch still in flight when the run stops is abandoned
  // (its source redelivers it next run) rather than committed without proof it was written.
  const bool delivered = !failed_.load(std::memory_order_acquire) && !queue_->run_cancelled();
  queue_->Finalize(seq_, delivered, reserved_bytes_);
}

void AckQueue::Finalize(uint64_t seq, bool delivered, int64_t reserved_bytes) {
  if (budget_ != nullptr && reserved_bytes > 0) budget_->Release(reserved_bytes);
  {
    std::lock_guard lock(mu_);
    events_.push_back({seq, delivered});
    outstanding_.fetch_sub(1, std::memory_order_relaxed);
  }
  cv_.notify_all();
}

void AckQueue::Drain(std::vector<Event>* out, bool wait_all) {
  std::unique_lock lock(mu_);
  if (wait_all) {
    cv_.wait(lock, [&] { return outstanding_.load(std::memory_order_relaxed) == 0; });
  }
  out->insert(out->end(), events_.begin(), events_.end());
  events_.clear();
}

}  // namespace sluice
