#include "sluice/resilience/retry_policy.h"

#include <algorithm>
#include <cmath>

namespace sluice {

namespace {

// SplitMix64: tiny, seedable, and good enough for jitter.
uint64_t NextRandom(uint64_t* state) {
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// Sleeping in slices bounds how long a cancelled run waits for a sleeping retry loop.
constexpr int64_t kSleepSliceMicros = 100'000;
constexpr int64_t kMicrosPerSecondWindow = 1'000'000;
constexpr int64_t kMilli = 1000;

}  // namespace

int64_t RetryPolicy::BackoffMicros(int retry) const {
  const auto cap = static_cast<double>(std::max<int64_t>(0, max_us));
  double delay = static_cast<double>(std::max<int64_t>(0, initial_us));
  for (int i = 1; i < retry && delay < cap; ++i) delay *= multiplier;
  return static_cast<int64_t>(std::min(delay, cap));
}

int64_t RetryPolicy::JitteredBackoffMicros(int retry, RetryStats* stats) const {
  const int64_t base = BackoffMicros(retry);
  if (jitter <= 0 || base <= 0) return base;
  if (!stats->rng_seeded) {
    stats->rng_state = seed;
    stats->rng_seeded = true;
  }
  // 53 random bits give a uniform double in [0, 1).
  const double u =
      static_cast<double>(NextRandom(&stats->rng_state) >> 11) * (1.0 / 9007199254740992.0);
  return base + static_cast<int64_t>(static_cast<double>(base) * jitter * u);
}

bool RetryPolicy::TryAcquireRetry(RetryStats* stats, int64_t now_us) const {
  if (!use_budget) return true;
  if (!stats->budget_window_started ||
      now_us - stats->budget_window_start_us >= kMicrosPerSecondWindow) {
    stats->budget_window_started = true;
    stats->budget_window_start_us = now_us;
    stats->budget_window_retries = 0;
  }
  if (stats->budget_window_retries < budget_min_per_second) {
    ++stats->budget_window_retries;
    return true;
  }
  if (stats->budget_millitokens >= kMilli) {
    stats->budget_millitokens -= kMilli;
    return true;
  }
  return false;
}

void RetryPolicy::RecordSuccess(RetryStats* stats) const {
  if (!use_budget || budget_ratio <= 0) return;
  const auto earned = static_cast<int64_t>(std::llround(budget_ratio * kMilli));
  const int64_t cap = earned * std::max<int64_t>(1, budget_window);
  stats->budget_millitokens = std::min(cap, stats->budget_millitokens + earned);
}

namespace retry_internal {

bool SleepUnlessCancelled(Clock* clock, int64_t micros, const std::atomic<bool>* cancelled) {
  while (micros > 0) {
    if (IsCancelled(cancelled)) return false;
    const int64_t slice = std::min(micros, kSleepSliceMicros);
    clock->SleepMicros(slice);
    micros -= slice;
  }
  return !IsCancelled(cancelled);
}

}  // namespace retry_internal

}  // namespace sluice
