// The window's `state` file: how far its rows are durable, kept across runs.

#include <cstdio>
#include <string>

#include <gtest/gtest.h>
#include <unistd.h>

#include "sluice/transforms/window_test_util.h"

namespace sluice {
namespace {

using namespace window_test;  // NOLINT(google-build-using-namespace)

// Run 1 writes the window [0, 15m); run 2, from the same state file, gets a reading of that window
// (a meter that reported late, or readings loaded after the window closed) and one of the next:
// the first is late — dropped and counted, as within one run — instead of making [0, 15m) again
// from that reading alone (which an upsert sink keeping the first row would silently lose).
TEST(WindowMarksTest, AWrittenWindowStaysWrittenAcrossRuns) {
  const std::string path =
      ::testing::TempDir() + "/window-marks-" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  {
    Harness h(J{{"size", "15m"}, {"state", path}});
    ASSERT_TRUE(h.status.ok()) << h.status.ToString();
    ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}, {"a", 2 * kMin, 2, 1}}).ok());
    ASSERT_TRUE(h.Watermark(16 * kMin).ok());
    ASSERT_EQ(h.Lines().size(), 1u);
    // Not yet durable: a crash now must not mark the window written.
    ASSERT_TRUE(h.Watermark(17 * kMin).ok());
    h.out.row_acks.clear();  // the sink has the rows
    ASSERT_TRUE(h.Watermark(18 * kMin).ok());
    ASSERT_TRUE(h.t->Close().ok());
  }
  {
    Harness h(J{{"size", "15m"}, {"state", path}});
    ASSERT_TRUE(h.status.ok()) << h.status.ToString();
    ASSERT_TRUE(h.Push({{"a", 5 * kMin, 100, 1}, {"a", 16 * kMin, 3, 1}}).ok());
    ASSERT_TRUE(h.t->Finish(&h.out).ok());
    EXPECT_EQ(Counter(h.stats, "late_dropped"), 1);
    EXPECT_EQ(h.Lines(), (std::vector<std::string>{"meter=a window_start=15m window_end=30m cnt=1 "
                                                   "total=3 lo=3 hi=3 nsum=1 late_rows=0"}));
    h.out.row_acks.clear();
    ASSERT_TRUE(h.t->Close().ok());
  }
  std::remove(path.c_str());
}

// Under late: update, a window an earlier run wrote is not re-emitted from a late row alone (its
// complete row would be replaced by one of that row): the row is late, dropped and counted.
TEST(WindowMarksTest, LateUpdateNeverReplacesAWindowAnEarlierRunWrote) {
  const std::string path =
      ::testing::TempDir() + "/window-marks-up-" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  const J options{
      {"size", "15m"}, {"state", path}, {"late", "update"}, {"allowed_lateness", "10m"}};
  {
    Harness h(options);
    ASSERT_TRUE(h.status.ok()) << h.status.ToString();
    ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}, {"a", 2 * kMin, 2, 1}}).ok());
    ASSERT_TRUE(h.Watermark(16 * kMin).ok());
    h.out.row_acks.clear();
    ASSERT_TRUE(h.Watermark(17 * kMin).ok());
    ASSERT_TRUE(h.t->Close().ok());
  }
  {
    Harness h(options);
    ASSERT_TRUE(h.Push({{"a", 5 * kMin, 100, 1}}).ok());
    ASSERT_TRUE(h.t->Finish(&h.out).ok());
    EXPECT_EQ(Counter(h.stats, "late_dropped"), 1);
    EXPECT_EQ(Counter(h.stats, "late_updates"), 0);
    EXPECT_TRUE(h.Lines().empty());
  }
  std::remove(path.c_str());
}

// The mark moves only once the rows are acknowledged: a window fired but never made durable (the
// run died before its sink wrote it) is made again by the next run from the redelivered rows.
TEST(WindowMarksTest, AWindowNotYetDurableIsMadeAgain) {
  const std::string path =
      ::testing::TempDir() + "/window-marks-nd-" + std::to_string(getpid()) + ".db";
  std::remove(path.c_str());
  {
    Harness h(J{{"size", "15m"}, {"state", path}});
    ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}}).ok());
    ASSERT_TRUE(h.Watermark(16 * kMin).ok());
    for (auto& acks : h.out.row_acks) acks.Fail();  // the sink failed
    h.out.row_acks.clear();
    ASSERT_TRUE(h.Watermark(17 * kMin).ok());
    ASSERT_TRUE(h.t->Close().ok());
  }
  {
    Harness h(J{{"size", "15m"}, {"state", path}});
    ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}}).ok());  // redelivered
    ASSERT_TRUE(h.t->Finish(&h.out).ok());
    EXPECT_EQ(Counter(h.stats, "late_dropped"), 0);
    EXPECT_EQ(h.Lines(), (std::vector<std::string>{"meter=a window_start=0m window_end=15m cnt=1 "
                                                   "total=1 lo=1 hi=1 nsum=1 late_rows=0"}));
  }
  std::remove(path.c_str());
}

}  // namespace
}  // namespace sluice
