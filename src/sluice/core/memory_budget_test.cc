#include "sluice/core/memory_budget.h"

#include <thread>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(MemoryBudgetTest, WaitsUntilReleased) {
  MemoryBudget budget(100);
  ASSERT_TRUE(budget.Acquire(80));
  std::atomic<bool> got{false};
  std::thread t([&] {
    EXPECT_TRUE(budget.Acquire(50));
    got = true;
  });
  // The waiter cannot proceed until we release; we do so and join, so no timing is assumed.
  budget.Release(80);
  t.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(budget.used(), 50);
  EXPECT_GE(budget.peak(), 80);
}

TEST(MemoryBudgetTest, OversizedRequestGrantedWhenIdle) {
  MemoryBudget budget(10);
  EXPECT_TRUE(budget.Acquire(1000));
  EXPECT_EQ(budget.peak(), 1000);
}

TEST(MemoryBudgetTest, CancelWakesWaiters) {
  MemoryBudget budget(10);
  ASSERT_TRUE(budget.Acquire(10));
  std::thread t([&] { EXPECT_FALSE(budget.Acquire(5)); });
  budget.Cancel();
  t.join();
}

TEST(MemoryBudgetTest, HeldStateCountsButNeverStopsTheRun) {
  MemoryBudget budget(100);
  budget.Hold(90);  // a window's open groups
  EXPECT_EQ(budget.used(), 90);
  EXPECT_EQ(budget.held(), 90);
  // Nothing but held state in the budget: a batch is granted (it may be what releases it).
  ASSERT_TRUE(budget.Acquire(50));
  EXPECT_EQ(budget.used(), 140);
  // With that batch in flight, the next one waits until held state or the batch shrink.
  std::atomic<bool> got{false};
  std::thread t([&] {
    EXPECT_TRUE(budget.Acquire(5));
    got = true;
  });
  budget.Hold(-90);  // the window fired and dropped its state: 50 + 5 fit in 100
  t.join();
  EXPECT_TRUE(got);
  EXPECT_EQ(budget.used(), 55);
  EXPECT_EQ(budget.held(), 0);
  EXPECT_EQ(budget.peak(), 140);
}

}  // namespace
}  // namespace sluice
