#include "sluice/resilience/adaptive_batch_sizer.h"

#include <gtest/gtest.h>

namespace sluice {
namespace {

AdaptiveBatchSizerOptions Options(int64_t min_rows, int64_t max_rows, int64_t expected_rows) {
  AdaptiveBatchSizerOptions o;
  o.min_rows = min_rows;
  o.max_rows = max_rows;
  o.expected_rows = expected_rows;
  return o;
}

TEST(AdaptiveBatchSizerTest, StartsAtTheUpperBoundOfTheVolumeTier) {
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 100'000, 10)).read_size(), 500);
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 100'000, 999)).read_size(), 500);
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 100'000, 1'000)).read_size(), 1'000);
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 100'000, 50'000)).read_size(), 5'000);
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 100'000, 5'000'000)).read_size(), 10'000);
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 100'000, -1)).read_size(), 1'000);
}

TEST(AdaptiveBatchSizerTest, ClampsTheTierStartToMinAndMax) {
  EXPECT_EQ(AdaptiveBatchSizer(Options(2'000, 4'000, 10)).read_size(), 2'000);
  EXPECT_EQ(AdaptiveBatchSizer(Options(1, 3'000, 5'000'000)).read_size(), 3'000);
}

TEST(AdaptiveBatchSizerTest, ExplicitInitialSizeWinsOverTheTier) {
  AdaptiveBatchSizerOptions o = Options(1, 100'000, 5'000'000);
  o.initial_rows = 42;
  EXPECT_EQ(AdaptiveBatchSizer(o).read_size(), 42);
}

TEST(AdaptiveBatchSizerTest, WriteSizeIsAFractionOfReadSizeAndAtLeastOne) {
  AdaptiveBatchSizerOptions o = Options(1, 100'000, -1);
  o.initial_rows = 1'000;
  o.write_ratio = 0.25;
  EXPECT_EQ(AdaptiveBatchSizer(o).write_size(), 250);
  o.initial_rows = 1;
  EXPECT_EQ(AdaptiveBatchSizer(o).write_size(), 1);
}

TEST(AdaptiveBatchSizerTest, FastBatchesGrowAdditively) {
  AdaptiveBatchSizerOptions o = Options(100, 16'000, -1);
  o.initial_rows = 1'000;
  o.target_latency_us = 1'000;
  AdaptiveBatchSizer sizer(o);
  sizer.Observe(1'000, 100);
  EXPECT_EQ(sizer.read_size(), 2'000);  // + max/16
  sizer.Observe(2'000, 100);
  EXPECT_EQ(sizer.read_size(), 3'000);
  EXPECT_EQ(sizer.increases(), 2);
  EXPECT_EQ(sizer.decreases(), 0);
}

TEST(AdaptiveBatchSizerTest, SlowBatchesHalve) {
  AdaptiveBatchSizerOptions o = Options(100, 16'000, -1);
  o.initial_rows = 8'000;
  o.target_latency_us = 1'000;
  AdaptiveBatchSizer sizer(o);
  sizer.Observe(8'000, 5'000);
  EXPECT_EQ(sizer.read_size(), 4'000);
  sizer.Observe(4'000, 5'000);
  EXPECT_EQ(sizer.read_size(), 2'000);
  EXPECT_EQ(sizer.decreases(), 2);
}

TEST(AdaptiveBatchSizerTest, LatencyNearTargetKeepsTheSize) {
  AdaptiveBatchSizerOptions o = Options(100, 16'000, -1);
  o.initial_rows = 8'000;
  o.target_latency_us = 1'000;
  AdaptiveBatchSizer sizer(o);
  sizer.Observe(8'000, 850);
  sizer.Observe(8'000, 1'150);
  EXPECT_EQ(sizer.read_size(), 8'000);
  EXPECT_EQ(sizer.increases() + sizer.decreases(), 0);
}

TEST(AdaptiveBatchSizerTest, ShortBatchDoesNotGrowTheSize) {
  AdaptiveBatchSizerOptions o = Options(100, 16'000, -1);
  o.initial_rows = 8'000;
  o.target_latency_us = 1'000;
  AdaptiveBatchSizer sizer(o);
  sizer.Observe(10, 1);
  EXPECT_EQ(sizer.read_size(), 8'000);
}

TEST(AdaptiveBatchSizerTest, NeverLeavesMinAndMax) {
  AdaptiveBatchSizerOptions o = Options(500, 1'000, -1);
  o.target_latency_us = 1'000;
  AdaptiveBatchSizer sizer(o);
  for (int i = 0; i < 50; ++i) sizer.Observe(sizer.read_size(), 1);
  EXPECT_EQ(sizer.read_size(), 1'000);
  for (int i = 0; i < 50; ++i) sizer.Observe(sizer.read_size(), 1'000'000);
  EXPECT_EQ(sizer.read_size(), 500);
}

// With latency = rows x k, the size should settle into the band where latency is within
// [0.8, 1.2] x target, or oscillate around it in the classic AIMD saw-tooth.
TEST(AdaptiveBatchSizerTest, ConvergesTowardTheTargetUnderALinearLatencyModel) {
  constexpr int64_t kMicrosPerRow = 2;
  AdaptiveBatchSizerOptions o = Options(100, 100'000, 1'000'000);
  o.initial_rows = 100;
  o.target_latency_us = 20'000;  // ideal size: 10'000 rows; band [8'000, 12'000]
  AdaptiveBatchSizer sizer(o);
  int64_t lo = INT64_MAX;
  int64_t hi = 0;
  for (int i = 0; i < 400; ++i) {
    const int64_t rows = sizer.read_size();
    sizer.Observe(rows, rows * kMicrosPerRow);
    if (i >= 200) {
      lo = std::min(lo, sizer.read_size());
      hi = std::max(hi, sizer.read_size());
    }
  }
  // Additive steps are max/16 = 6250 rows; the size never exceeds the upper band by more
  // than one step, and a halving from there lands no lower than half of it.
  EXPECT_LE(hi, 12'000 + 6'250);
  EXPECT_GE(lo, 4'000);
  EXPECT_GT(sizer.increases(), 0);
  EXPECT_GT(sizer.decreases(), 0);
}

TEST(AdaptiveBatchSizerTest, SettlesExactlyInsideTheBandWhenStepsAreFine) {
  constexpr int64_t kMicrosPerRow = 10;
  AdaptiveBatchSizerOptions o = Options(1, 1'600, -1);  // step = 100 rows
  o.initial_rows = 100;
  o.target_latency_us = 10'000;  // ideal 1000 rows; band [800, 1200]
  AdaptiveBatchSizer sizer(o);
  for (int i = 0; i < 100; ++i) sizer.Observe(sizer.read_size(), sizer.read_size() * kMicrosPerRow);
  EXPECT_EQ(sizer.read_size(), 800);
  EXPECT_EQ(sizer.decreases(), 0);
}

}  // namespace
}  // namespace sluice
