#include "sluice/resilience/circuit_breaker.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

constexpr int64_t kSecond = 1'000'000;
using State = CircuitBreaker::State;

CircuitBreakerOptions Options() {
  CircuitBreakerOptions o;
  o.failure_threshold = 3;
  o.recovery_timeout_us = 10 * kSecond;
  return o;
}

TEST(CircuitBreakerTest, OpensAfterThresholdConsecutiveFailures) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(breaker.Allow());
    breaker.RecordFailure();
  }
  EXPECT_EQ(breaker.state(), State::kClosed);
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_EQ(breaker.trips(), 1);
  EXPECT_FALSE(breaker.Allow());
}

TEST(CircuitBreakerTest, SuccessResetsTheFailureCount) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  breaker.RecordFailure();
  breaker.RecordFailure();
  breaker.RecordSuccess();
  breaker.RecordFailure();
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_EQ(breaker.consecutive_failures(), 2);
}

TEST(CircuitBreakerTest, StaysOpenUntilTheRecoveryTimeout) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock.Advance(10 * kSecond - 1);
  EXPECT_FALSE(breaker.Allow());
  EXPECT_EQ(breaker.state(), State::kOpen);
  clock.Advance(1);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

TEST(CircuitBreakerTest, HalfOpenLetsExactlyOneProbeThrough) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock.Advance(10 * kSecond);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_FALSE(breaker.Allow());
  EXPECT_FALSE(breaker.Allow());
}

TEST(CircuitBreakerTest, ProbeSuccessCloses) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock.Advance(10 * kSecond);
  ASSERT_TRUE(breaker.Allow());
  breaker.RecordSuccess();
  EXPECT_EQ(breaker.state(), State::kClosed);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_TRUE(breaker.Allow());
  EXPECT_EQ(breaker.consecutive_failures(), 0);
}

TEST(CircuitBreakerTest, ProbeFailureReopensForAnotherTimeout) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock.Advance(10 * kSecond);
  ASSERT_TRUE(breaker.Allow());
  clock.Advance(2 * kSecond);
  breaker.RecordFailure();
  EXPECT_EQ(breaker.state(), State::kOpen);
  EXPECT_EQ(breaker.trips(), 2);
  clock.Advance(10 * kSecond - 1);
  EXPECT_FALSE(breaker.Allow());
  clock.Advance(1);
  EXPECT_TRUE(breaker.Allow());
}

TEST(CircuitBreakerTest, AProbeThatNeverReportsIsReplacedAfterAnotherTimeout) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock.Advance(10 * kSecond);
  ASSERT_TRUE(breaker.Allow());
  clock.Advance(10 * kSecond);
  EXPECT_TRUE(breaker.Allow());
  EXPECT_FALSE(breaker.Allow());
}

TEST(CircuitBreakerTest, OnlyOneOfManyConcurrentCallersProbes) {
  FakeClock clock;
  CircuitBreaker breaker(Options(), &clock);
  for (int i = 0; i < 3; ++i) breaker.RecordFailure();
  clock.Advance(10 * kSecond);
  constexpr int kThreads = 8;
  constexpr int kCallsPerThread = 1'000;
  std::atomic<int> allowed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (int i = 0; i < kCallsPerThread; ++i) allowed += breaker.Allow() ? 1 : 0;
    });
  }
  go.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(allowed.load(), 1);
  EXPECT_EQ(breaker.state(), State::kHalfOpen);
}

TEST(CircuitBreakerTest, NamesItsStates) {
  EXPECT_EQ(CircuitStateName(State::kClosed), "closed");
  EXPECT_EQ(CircuitStateName(State::kOpen), "open");
  EXPECT_EQ(CircuitStateName(State::kHalfOpen), "half-open");
}

}  // namespace
}  // namespace sluice
