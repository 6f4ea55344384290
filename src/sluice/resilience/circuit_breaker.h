#pragma once

#include <cstdint>
#include <mutex>
#include <string_view>

#include "sluice/resilience/clock.h"

namespace sluice {

/// Settings of a CircuitBreaker.
struct CircuitBreakerOptions {
  int failure_threshold = 5;                 ///< Consecutive failures that open the breaker.
  int64_t recovery_timeout_us = 60'000'000;  ///< Time open before one probe is let through.
};

/// Stop calling a server that keeps failing, and probe it now and then until it recovers.
///
/// closed --(failure_threshold consecutive failures)--> open
/// open --(recovery_timeout elapsed; the next Allow() is the probe)--> half-open
/// half-open --(probe succeeds)--> closed;  half-open --(probe fails)--> open again
///
/// In half-open exactly one caller is allowed through; the others are refused until the probe
/// reports. A probe that never reports (its caller died) is replaced by a new one after another
/// recovery_timeout. Thread-safe: every method takes the breaker's mutex.
class CircuitBreaker {
 public:
  enum class State : uint8_t { kClosed, kOpen, kHalfOpen };

  /// Create a closed breaker on `clock` (not owned; must outlive the breaker).
  explicit CircuitBreaker(const CircuitBreakerOptions& options, Clock* clock = SystemClock());

  /// Return whether a call may proceed now. When this returns true the caller must report the
  /// outcome with RecordSuccess() or RecordFailure().
  bool Allow();
  /// Report a successful call: closes the breaker and resets the failure count.
  void RecordSuccess();
  /// Report a failed call: counts toward opening, or reopens after a failed probe.
  void RecordFailure();

  /// Return the current state (transitions out of open happen in Allow()).
  State state() const;
  /// Return how many times the breaker has opened.
  int64_t trips() const;
  /// Return the current run of consecutive failures.
  int consecutive_failures() const;

 private:
  void TripLocked(int64_t now);

  const CircuitBreakerOptions options_;
  Clock* const clock_;
  mutable std::mutex mu_;
  State state_ = State::kClosed;  // guarded by mu_
  int consecutive_failures_ = 0;  // guarded by mu_
  int64_t opened_at_us_ = 0;      // guarded by mu_
  int64_t probe_started_us_ = 0;  // guarded by mu_
  int64_t trips_ = 0;             // guarded by mu_
};

/// Return "closed", "open" or "half-open".
std::string_view CircuitStateName(CircuitBreaker::State state);

}  // namespace sluice
