#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace sluice {

/// A run-wide budget of bytes held by in-flight batches. Sources Acquire before producing and
/// wait while the budget is exhausted; bytes are Released when the batch is acknowledged.
/// A request larger than the whole budget is granted when nothing else is held, so a single
/// oversized batch slows the run down but never deadlocks it. Thread-safe.
class MemoryBudget {
 public:
  /// `limit_bytes` <= 0 means unlimited (still tracked).
  explicit MemoryBudget(int64_t limit_bytes) : limit_(limit_bytes) {}

  /// Block until `bytes` fit, or until Cancel(); return false when cancelled.
  bool Acquire(int64_t bytes);
  /// Add `bytes` (may be negative) without waiting: corrects an estimate after the fact.
  void Adjust(int64_t bytes);
  void Release(int64_t bytes);
  /// Add `bytes` (may be negative) of state a node keeps across batches (a window's open
  /// groups), without waiting. It counts against the limit like batches do, but Acquire still
  /// grants a request when nothing but such state is held, so that held state slows sources
  /// down without ever stopping the run: the batches that let it be released must flow.
  void Hold(int64_t bytes);
  int64_t held() const { return held_.load(std::memory_order_relaxed); }
  /// Wake every waiter; later Acquire calls return false at once.
  void Cancel();

  int64_t limit() const { return limit_; }
  int64_t used() const { return used_.load(std::memory_order_relaxed); }
  int64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  /// Return the number of times an Acquire had to wait.
  int64_t waits() const { return waits_.load(std::memory_order_relaxed); }

 private:
  void NotePeak(int64_t now);

  const int64_t limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool cancelled_ = false;  // guarded by mu_
  std::atomic<int64_t> used_{0};
  std::atomic<int64_t> peak_{0};
  std::atomic<int64_t> held_{0};
  std::atomic<int64_t> waits_{0};
};

}  // namespace sluice
