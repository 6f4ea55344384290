#pragma once

#include <atomic>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "sluice/core/result.h"
#include "sluice/resilience/clock.h"

namespace sluice {

/// What Retry() did, accumulated over every call that shares this object, plus the state of
/// the retry budget and the jitter generator those calls share. Not thread-safe: give each
/// thread (or node instance) its own, or guard it.
struct RetryStats {
  int64_t calls = 0;               ///< Calls to Retry().
  int64_t attempts = 0;            ///< Calls of the operation, first tries included.
  int64_t retries = 0;             ///< Attempts after a retryable failure.
  int64_t successes = 0;           ///< Calls that ended OK.
  int64_t permanent_failures = 0;  ///< Calls that ended on a non-retryable error.
  int64_t attempts_exhausted = 0;  ///< Calls that stopped at max_attempts.
  int64_t budget_exhausted = 0;    ///< Calls that stopped because the budget was empty.
  int64_t slept_us = 0;            ///< Total backoff slept.

  // Retry budget state (see RetryPolicy): earned tokens in thousandths (integers, so that five
  // successes at ratio 0.2 make exactly one retry), and the current one-second window.
  int64_t budget_millitokens = 0;
  int64_t budget_window_start_us = 0;
  int64_t budget_window_retries = 0;
  bool budget_window_started = false;

  // Jitter generator state (SplitMix64), seeded from RetryPolicy::seed on first use.
  uint64_t rng_state = 0;
  bool rng_seeded = false;
};

/// How to retry an operation that failed with a retryable Status (IsRetryable()).
///
/// Backoff: retry n (1-based) waits min(initial_us x multiplier^(n-1), max_us), plus a jitter
/// drawn uniformly from [0, jitter) of that delay, so the longest wait is max_us x (1 + jitter).
///
/// Retry budget (after Finagle's RetryBudget), so that a struggling server is not buried under
/// retries: every successful call earns `budget_ratio` tokens, kept up to
/// budget_ratio x budget_window (a sliding count of roughly the last `budget_window` calls);
/// each retry spends one token. On top of that, `budget_min_per_second` retries are always
/// allowed in each one-second window of the clock, so that a cold start or a rare caller can
/// still retry. A retry that finds neither ends the call with the last error. The budget lives
/// in the RetryStats passed to Retry(), so callers sharing a RetryStats share a budget.
///
/// A plain value: copy it freely; it holds no state.
struct RetryPolicy {
  int64_t initial_us = 1'000'000;
  int64_t max_us = 30'000'000;
  double multiplier = 2.0;
  double jitter = 0.1;
  int max_attempts = 0;  ///< Attempts in total, first included; 0 means unlimited.
  bool use_budget = true;
  double budget_ratio = 0.2;
  int64_t budget_window = 100;
  int64_t budget_min_per_second = 10;
  uint64_t seed = 0x5eed5eed5eedULL;

  /// Return the delay before retry `retry` (1-based) without jitter: 1s, 2s, 4s, ... max_us.
  int64_t BackoffMicros(int retry) const;
  /// Return BackoffMicros(retry) plus a jitter in [0, jitter x delay), advancing `stats`'s
  /// generator (seeded from `seed` on first use).
  int64_t JitteredBackoffMicros(int retry, RetryStats* stats) const;

  /// Spend one retry from the budget in `stats` at time `now_us`; return false when empty.
  bool TryAcquireRetry(RetryStats* stats, int64_t now_us) const;
  /// Earn budget for a successful call.
  void RecordSuccess(RetryStats* stats) const;
};

namespace retry_internal {

inline const Status& StatusOf(const Status& s) { return s; }
template <typename T>
const Status& StatusOf(const Result<T>& r) {
  return r.status();
}
inline bool IsCancelled(const std::atomic<bool>* cancelled) {
  return cancelled != nullptr && cancelled->load(std::memory_order_acquire);
}
/// Sleep `micros` in slices, returning false as soon as `cancelled` is set.
bool SleepUnlessCancelled(Clock* clock, int64_t micros, const std::atomic<bool>* cancelled);

}  // namespace retry_internal

/// Call `op` until it succeeds, retrying while its Status IsRetryable(), sleeping the backoff
/// of `policy` on `clock` in between. `op` returns a Status or a Result<T>; Retry returns the
/// same type. Stops and returns:
///   - the first OK result or non-retryable error, unchanged;
///   - the last error, with context, once max_attempts is reached or the budget is empty;
///   - kCancelled when `cancelled` (may be null) is set before an attempt or during a sleep.
/// `stats` (may be null) accumulates counters and holds the budget; see RetryStats.
template <class F>
auto Retry(const RetryPolicy& policy, Clock* clock, F&& op, RetryStats* stats,
           const std::atomic<bool>* cancelled) -> std::invoke_result_t<F&> {
  using R = std::invoke_result_t<F&>;
  RetryStats local;
  if (stats == nullptr) stats = &local;
  ++stats->calls;
  for (int attempt = 1;; ++attempt) {
    if (retry_internal::IsCancelled(cancelled)) {
      return R(Status::Cancelled("cancelled before attempt {}", attempt));
    }
    R result = op();
    ++stats->attempts;
    const Status& st = retry_internal::StatusOf(result);
    if (st.ok()) {
      ++stats->successes;
      policy.RecordSuccess(stats);
      return result;
    }
    if (!st.IsRetryable()) {
      ++stats->permanent_failures;
      return result;
    }
    if (policy.max_attempts > 0 && attempt >= policy.max_attempts) {
      ++stats->attempts_exhausted;
      return R(st.WithContext("giving up after {} attempts", attempt));
    }
    if (!policy.TryAcquireRetry(stats, clock->NowMicros())) {
      ++stats->budget_exhausted;
      return R(st.WithContext("retry budget exhausted after {} attempts", attempt));
    }
    const int64_t delay = policy.JitteredBackoffMicros(attempt, stats);
    if (!retry_internal::SleepUnlessCancelled(clock, delay, cancelled)) {
      return R(Status::Cancelled("cancelled while waiting to retry: {}", st.message()));
    }
    stats->slept_us += delay;
    ++stats->retries;
  }
}

}  // namespace sluice
