#include "sluice/resilience/circuit_breaker.h"

#include <algorithm>

namespace sluice {

CircuitBreaker::CircuitBreaker(const CircuitBreakerOptions& options, Clock* clock)
    : options_(options), clock_(clock) {}

bool CircuitBreaker::Allow() {
  std::lock_guard lock(mu_);
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen: {
      const int64_t now = clock_->NowMicros();
      if (now - opened_at_us_ < options_.recovery_timeout_us) return false;
      state_ = State::kHalfOpen;
      probe_started_us_ = now;
      return true;
    }
    case State::kHalfOpen: {
      const int64_t now = clock_->NowMicros();
      if (now - probe_started_us_ < options_.recovery_timeout_us) return false;
      probe_started_us_ = now;  // the previous probe never reported; let another one through
      return true;
    }
  }
  return false;
}

void CircuitBreaker::RecordSuccess() {
  std::lock_guard lock(mu_);
  state_ = State::kClosed;
  consecutive_failures_ = 0;
}

void CircuitBreaker::RecordFailure() {
  std::lock_guard lock(mu_);
  const int64_t now = clock_->NowMicros();
  switch (state_) {
    case State::kClosed:
      if (++consecutive_failures_ >= std::max(1, options_.failure_threshold)) TripLocked(now);
      break;
    case State::kHalfOpen:
      TripLocked(now);
      break;
    case State::kOpen:
      // A call let through before the breaker opened; the breaker already knows.
      break;
  }
}

void CircuitBreaker::TripLocked(int64_t now) {
  state_ = State::kOpen;
  opened_at_us_ = now;
  ++trips_;
}

CircuitBreaker::State CircuitBreaker::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

int64_t CircuitBreaker::trips() const {
  std::lock_guard lock(mu_);
  return trips_;
}

int CircuitBreaker::consecutive_failures() const {
  std::lock_guard lock(mu_);
  return consecutive_failures_;
}

std::string_view CircuitStateName(CircuitBreaker::State state) {
  switch (state) {
    case CircuitBreaker::State::kClosed:
      return "closed";
    case CircuitBreaker::State::kOpen:
      return "open";
    case CircuitBreaker::State::kHalfOpen:
      return "half-open";
  }
  return "?";
}

}  // namespace sluice
