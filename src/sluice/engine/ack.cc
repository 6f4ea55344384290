#include "sluice/engine/ack.h"

#include <chrono>

namespace sluice {

AckHandle::~AckHandle() {
  // Cancellation wins over a clean drop: a batch still in flight when the run stops is abandoned
  // (its source redelivers it next run) rather than committed without proof it was written.
  const bool delivered = !failed_.load(std::memory_order_acquire) && !queue_->run_cancelled();
  queue_->Finalize(seq_, delivered);
}

void AckQueue::Finalize(uint64_t seq, bool delivered) {
  {
    std::lock_guard lock(mu_);
    events_.push_back({seq, delivered});
  }
  cv_.notify_all();
}

void AckQueue::Drain(std::vector<Event>* out, int max_wait_ms) {
  std::unique_lock lock(mu_);
  if (max_wait_ms > 0 && events_.empty() && !woken_) {
    cv_.wait_for(lock, std::chrono::milliseconds(max_wait_ms),
                 [&] { return !events_.empty() || woken_; });
  }
  woken_ = false;
  out->insert(out->end(), events_.begin(), events_.end());
  events_.clear();
}

void AckQueue::Cancel() {
  cancelled_.store(true, std::memory_order_release);
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  cv_.notify_all();
}

}  // namespace sluice
