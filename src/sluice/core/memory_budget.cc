#include "sluice/core/memory_budget.h"

namespace sluice {

void MemoryBudget::NotePeak(int64_t now) {
  int64_t prev = peak_.load(std::memory_order_relaxed);
  while (now > prev && !peak_.compare_exchange_weak(prev, now, std::memory_order_relaxed)) {
  }
}

bool MemoryBudget::Acquire(int64_t bytes) {
  std::unique_lock lock(mu_);
  if (limit_ > 0) {
    bool waited = false;
    cv_.wait(lock, [&] {
      const int64_t used = used_.load(std::memory_order_relaxed);
      const bool fits =
          cancelled_ || used == held_.load(std::memory_order_relaxed) || used + bytes <= limit_;
      if (!fits) waited = true;
      return fits;
    });
    if (waited) waits_.fetch_add(1, std::memory_order_relaxed);
  }
  if (cancelled_) return false;
  NotePeak(used_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  return true;
}

void MemoryBudget::Adjust(int64_t bytes) {
  std::lock_guard lock(mu_);
  NotePeak(used_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  if (bytes < 0) cv_.notify_all();
}

void MemoryBudget::Hold(int64_t bytes) {
  std::lock_guard lock(mu_);
  held_.fetch_add(bytes, std::memory_order_relaxed);
  NotePeak(used_.fetch_add(bytes, std::memory_order_relaxed) + bytes);
  if (bytes < 0) cv_.notify_all();
}

void MemoryBudget::Release(int64_t bytes) {
  {
    std::lock_guard lock(mu_);
    used_.fetch_sub(bytes, std::memory_order_relaxed);
  }
  cv_.notify_all();
}

void MemoryBudget::Cancel() {
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }
  cv_.notify_all();
}

}  // namespace sluice
