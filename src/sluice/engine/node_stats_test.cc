#include "sluice/engine/node_stats.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace sluice {
namespace {

// A node's instances read its counters and set gauges from them (lookup's hit rate): one
// instance's read-then-set must not interleave with another's, or an older rate could be set
// last. While one update runs, another instance's may not start.
TEST(NodeStatsTest, DerivedUpdatesOfInstancesDoNotInterleave) {
  NodeStats stats;
  std::mutex mu;
  std::condition_variable cv;
  bool first_inside = false, second_ran = false;
  std::thread first([&] {
    stats.UpdateDerived([&] {
      std::unique_lock lock(mu);
      first_inside = true;
      cv.notify_all();
      // Give the second update every chance to run now, as it would without the node's lock
      // (long enough for a loaded machine under ASan to reach it; with the lock, the wait is
      // always this long).
      cv.wait_for(lock, std::chrono::seconds(1), [&] { return second_ran; });
      stats.SetGauge("rate", 1);
      first_inside = false;
    });
  });
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return first_inside; });
  }
  bool overlapped = false;
  stats.UpdateDerived([&] {
    std::lock_guard lock(mu);
    overlapped = first_inside;
    second_ran = true;
    cv.notify_all();
    stats.SetGauge("rate", 2);
  });
  first.join();
  EXPECT_FALSE(overlapped);
  EXPECT_EQ(stats.Gauges().at("rate"), 2);  // the update that ran last set last
}

}  // namespace
}  // namespace sluice
