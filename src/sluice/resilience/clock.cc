#include "sluice/resilience/clock.h"

#include <chrono>
#include <thread>

namespace sluice {

namespace {

class SteadyClock final : public Clock {
 public:
  int64_t NowMicros() override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void SleepMicros(int64_t micros) override {
    if (micros > 0) std::this_thread::sleep_for(std::chrono::microseconds(micros));
  }
};

}  // namespace

Clock* SystemClock() {
  // Leaked on purpose: callers on other threads may still use it during static destruction.
  static Clock* const kClock = new SteadyClock();
  return kClock;
}

void FakeClock::SleepMicros(int64_t micros) {
  sleep_calls_.fetch_add(1, std::memory_order_acq_rel);
  if (micros <= 0) return;
  slept_.fetch_add(micros, std::memory_order_acq_rel);
  now_.fetch_add(micros, std::memory_order_acq_rel);
}

void FakeClock::Advance(int64_t micros) {
  if (micros > 0) now_.fetch_add(micros, std::memory_order_acq_rel);
}

}  // namespace sluice
