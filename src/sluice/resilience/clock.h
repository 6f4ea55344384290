#pragma once

#include <atomic>
#include <cstdint>

namespace sluice {

/// A source of monotonic time and a way to wait, so that timing logic (backoff, breakers,
/// batch sizing) can be tested without sleeping. Implementations are thread-safe.
class Clock {
 public:
  virtual ~Clock() = default;
  /// Return a monotonic time in microseconds; only differences between calls are meaningful.
  virtual int64_t NowMicros() = 0;
  /// Block the calling thread for `micros` microseconds (no-op when <= 0).
  virtual void SleepMicros(int64_t micros) = 0;
};

/// Return the process-wide clock backed by std::chrono::steady_clock. Never null; never freed.
Clock* SystemClock();

/// A clock that moves only when told to: Advance() moves it, and SleepMicros() moves it by the
/// requested amount instead of blocking. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_micros = 0) : now_(start_micros) {}

  int64_t NowMicros() override { return now_.load(std::memory_order_acquire); }
  void SleepMicros(int64_t micros) override;

  /// Move the clock forward by `micros` (negative values are ignored: time never goes back).
  void Advance(int64_t micros);
  /// Return the total time callers asked to sleep, for tests that check backoff.
  int64_t slept_micros() const { return slept_.load(std::memory_order_acquire); }
  /// Return how many times SleepMicros was called.
  int64_t sleep_calls() const { return sleep_calls_.load(std::memory_order_acquire); }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> slept_{0};
  std::atomic<int64_t> sleep_calls_{0};
};

}  // namespace sluice
