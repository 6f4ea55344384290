#include "sluice/resilience/retry_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kSecond = 1'000'000;

RetryPolicy NoJitter() {
  RetryPolicy p;
  p.jitter = 0;
  return p;
}

TEST(RetryPolicyTest, BackoffDoublesFromOneSecondAndCapsAtThirtySeconds) {
  RetryPolicy p;
  EXPECT_EQ(p.BackoffMicros(1), 1 * kSecond);
  EXPECT_EQ(p.BackoffMicros(2), 2 * kSecond);
  EXPECT_EQ(p.BackoffMicros(3), 4 * kSecond);
  EXPECT_EQ(p.BackoffMicros(4), 8 * kSecond);
  EXPECT_EQ(p.BackoffMicros(5), 16 * kSecond);
  EXPECT_EQ(p.BackoffMicros(6), 30 * kSecond);
  EXPECT_EQ(p.BackoffMicros(1000), 30 * kSecond);
}

TEST(RetryPolicyTest, JitterStaysWithinZeroToTenPercent) {
  RetryPolicy p;
  RetryStats stats;
  int64_t min_seen = INT64_MAX;
  int64_t max_seen = 0;
  for (int i = 0; i < 10'000; ++i) {
    const int64_t d = p.JitteredBackoffMicros(3, &stats);
    ASSERT_GE(d, 4 * kSecond);
    ASSERT_LT(d, 4 * kSecond + 4 * kSecond / 10);
    min_seen = std::min(min_seen, d);
    max_seen = std::max(max_seen, d);
  }
  // The draws spread over the range rather than sitting at one end.
  EXPECT_LT(min_seen, 4 * kSecond + 4 * kSecond / 100);
  EXPECT_GT(max_seen, 4 * kSecond + 4 * kSecond / 10 - 4 * kSecond / 100);
}

TEST(RetryPolicyTest, JitterIsDeterministicForASeed) {
  RetryPolicy p;
  RetryStats a;
  RetryStats b;
  for (int i = 1; i < 20; ++i)
    EXPECT_EQ(p.JitteredBackoffMicros(i, &a), p.JitteredBackoffMicros(i, &b));
}

TEST(RetryTest, RetriesRetryableErrorsUntilSuccess) {
  FakeClock clock;
  RetryStats stats;
  int calls = 0;
  Status st = Retry(
      NoJitter(), &clock,
      [&] { return ++calls < 4 ? Status::Unavailable("server down") : Status::OK(); }, &stats,
      nullptr);
  EXPECT_OK(st);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(stats.retries, 3);
  EXPECT_EQ(stats.successes, 1);
  EXPECT_EQ(clock.slept_micros(), (1 + 2 + 4) * kSecond);
  EXPECT_EQ(stats.slept_us, (1 + 2 + 4) * kSecond);
}

TEST(RetryTest, DoesNotRetryPermanentErrors) {
  FakeClock clock;
  RetryStats stats;
  int calls = 0;
  Status st = Retry(
      NoJitter(), &clock,
      [&] {
        ++calls;
        return Status::Invalid("bad row 7");
      },
      &stats, nullptr);
  EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, "bad row 7"));
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(stats.permanent_failures, 1);
  EXPECT_EQ(clock.slept_micros(), 0);
}

TEST(RetryTest, StopsAtMaxAttempts) {
  FakeClock clock;
  RetryPolicy p = NoJitter();
  p.max_attempts = 3;
  RetryStats stats;
  int calls = 0;
  Status st = Retry(
      p, &clock,
      [&] {
        ++calls;
        return Status::Timeout("no answer");
      },
      &stats, nullptr);
  EXPECT_THAT(st, StatusIs(StatusCode::kTimeout, HasSubstr("giving up after 3 attempts")));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(stats.attempts_exhausted, 1);
  EXPECT_EQ(clock.slept_micros(), (1 + 2) * kSecond);
}

TEST(RetryTest, ReturnsResultValues) {
  FakeClock clock;
  int calls = 0;
  Result<int> r = Retry(
      NoJitter(), &clock,
      [&]() -> Result<int> {
        if (++calls < 2) return Status::Unavailable("later");
        return 42;
      },
      nullptr, nullptr);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(*r, 42);
}

TEST(RetryTest, CancelledBeforeTheFirstAttemptDoesNotCallTheOperation) {
  FakeClock clock;
  std::atomic<bool> cancelled{true};
  int calls = 0;
  Status st = Retry(
      NoJitter(), &clock,
      [&] {
        ++calls;
        return Status::OK();
      },
      nullptr, &cancelled);
  EXPECT_THAT(st, StatusIs(StatusCode::kCancelled, HasSubstr("before attempt 1")));
  EXPECT_EQ(calls, 0);
}

// A clock that sets the cancel flag once enough time has been slept.
class CancellingClock final : public Clock {
 public:
  CancellingClock(std::atomic<bool>* flag, int64_t after) : flag_(flag), after_(after) {}
  int64_t NowMicros() override { return inner_.NowMicros(); }
  void SleepMicros(int64_t micros) override {
    inner_.SleepMicros(micros);
    if (inner_.slept_micros() >= after_) flag_->store(true);
  }
  FakeClock inner_;

 private:
  std::atomic<bool>* flag_;
  int64_t after_;
};

TEST(RetryTest, CancelDuringBackoffStopsTheSleepEarly) {
  std::atomic<bool> cancelled{false};
  CancellingClock clock(&cancelled, 3 * kSecond + 500'000);
  int calls = 0;
  Status st = Retry(
      NoJitter(), &clock,
      [&] {
        ++calls;
        return Status::Unavailable("down");
      },
      nullptr, &cancelled);
  EXPECT_THAT(st, StatusIs(StatusCode::kCancelled, HasSubstr("down")));
  EXPECT_EQ(calls, 3);  // slept 1s, 2s, then cancelled 0.5s into the 4s wait
  EXPECT_EQ(clock.inner_.slept_micros(), 3 * kSecond + 500'000);
}

TEST(RetryTest, BudgetAllowsTheMinimumPerSecondThenRunsOut) {
  FakeClock clock;
  RetryPolicy p = NoJitter();
  p.initial_us = 1'000;  // retries far faster than one per second
  p.max_us = 1'000;
  p.budget_min_per_second = 3;
  RetryStats stats;
  int calls = 0;
  Status st = Retry(
      p, &clock,
      [&] {
        ++calls;
        return Status::Unavailable("down");
      },
      &stats, nullptr);
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable, HasSubstr("retry budget exhausted")));
  EXPECT_EQ(calls, 4);  // the first try plus three retries
  EXPECT_EQ(stats.budget_exhausted, 1);

  // A new second brings a new allowance.
  clock.Advance(kSecond);
  calls = 0;
  st = Retry(
      p, &clock,
      [&] {
        ++calls;
        return Status::Unavailable("down");
      },
      &stats, nullptr);
  EXPECT_EQ(calls, 4);
}

TEST(RetryTest, SuccessesEarnRetriesAtTheBudgetRatio) {
  FakeClock clock;
  RetryPolicy p = NoJitter();
  p.budget_min_per_second = 0;
  p.budget_ratio = 0.2;
  RetryStats stats;
  auto ok = [] { return Status::OK(); };
  for (int i = 0; i < 10; ++i) ASSERT_OK(Retry(p, &clock, ok, &stats, nullptr));
  int calls = 0;
  Status st = Retry(
      p, &clock,
      [&] {
        ++calls;
        return Status::Unavailable("down");
      },
      &stats, nullptr);
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable, HasSubstr("retry budget exhausted")));
  EXPECT_EQ(calls, 3);  // ten successes x 0.2 = two retries
}

TEST(RetryTest, EarnedBudgetIsCappedBySlidingWindow) {
  FakeClock clock;
  RetryPolicy p = NoJitter();
  p.budget_min_per_second = 0;
  p.budget_ratio = 0.5;
  p.budget_window = 4;  // at most two retries banked
  RetryStats stats;
  auto ok = [] { return Status::OK(); };
  for (int i = 0; i < 100; ++i) ASSERT_OK(Retry(p, &clock, ok, &stats, nullptr));
  int calls = 0;
  (void)Retry(
      p, &clock,
      [&] {
        ++calls;
        return Status::Unavailable("down");
      },
      &stats, nullptr);
  EXPECT_EQ(calls, 3);
}

TEST(RetryTest, BudgetCanBeTurnedOff) {
  FakeClock clock;
  RetryPolicy p = NoJitter();
  p.use_budget = false;
  p.budget_min_per_second = 0;
  p.max_attempts = 50;
  int calls = 0;
  (void)Retry(
      p, &clock,
      [&] {
        ++calls;
        return Status::Unavailable("down");
      },
      nullptr, nullptr);
  EXPECT_EQ(calls, 50);
}

}  // namespace
}  // namespace sluice
