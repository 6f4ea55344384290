#include "sluice/report/samples_report.h"

#include <cmath>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/testing/matchers.h"

namespace sluice::report {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<Point> Wave(size_t n, double spike_at = -1) {
  std::vector<Point> p;
  for (size_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(i);
    p.push_back({x, std::sin(x / 50.0) + (x == spike_at ? 100 : 0)});
  }
  return p;
}

TEST(LttbTest, KeepsTheEndsAndTheExtremesInOrder) {
  const std::vector<Point> few = Wave(10);
  EXPECT_EQ(Lttb(few, 20).size(), 10u);  // under the threshold: as they are
  EXPECT_EQ(Lttb(few, 2).size(), 10u);   // a threshold under 3 keeps them all
  const std::vector<Point> many = Wave(100'000, 31'337);
  const std::vector<Point> kept = Lttb(many, 1000);
  ASSERT_EQ(kept.size(), 1000u);
  EXPECT_EQ(kept.front().x, 0);
  EXPECT_EQ(kept.back().x, 99'999);
  bool spike = false;
  for (size_t i = 1; i < kept.size(); ++i) {
    EXPECT_LT(kept[i - 1].x, kept[i].x) << i;  // a subset, in order
    spike |= kept[i].x == 31'337;
  }
  EXPECT_TRUE(spike) << "the one spike must survive downsampling";
  // Every kept point is one of the input's.
  for (const Point& p : kept) {
    EXPECT_EQ(p.y, many[static_cast<size_t>(p.x)].y);
  }
}

TEST(SamplesReportTest, ChartsEachKindWithLabelledDownsampledSeries) {
  SamplesReportInput in;
  in.host = "db-1";
  in.source = "table samples";
  in.max_points = 500;
  auto series = [&](std::string metric, std::string labels, double scale) {
    StoredSeries s{std::move(metric), std::move(labels), Wave(20'000)};
    for (Point& p : s.points) {
      p.x = 1.7e9 + p.x * 5;  // every 5 s for ~28 h
      p.y = std::abs(p.y) * scale;
    }
    in.series.push_back(std::move(s));
  };
  series("cpu_busy_ratio", "{}", 1);
  series("memory_used_bytes", "{}", 1e9);
  series("disk_read_bytes_per_second", R"({"device":"vda"})", 1e6);
  series("disk_written_bytes_per_second", R"({"device":"vda"})", 2e6);
  series("network_receive_bytes_per_second", R"({"device":"eth0"})", 1e5);
  SamplesReportStats stats;
  ASSERT_OK_AND_ASSIGN(std::string html, RenderSamplesReport(in, &stats));
  EXPECT_EQ(stats.charts, 4);
  EXPECT_EQ(stats.points_in, 5 * 20'000);
  EXPECT_EQ(stats.points_drawn, 5 * 500);
  for (const char* want :
       {"id=\"chart-cpu\"", "id=\"chart-memory\"", "id=\"chart-disk\"", "id=\"chart-network\"",
        "vda read", "vda written", "eth0 received", "hours since 2023-11-14", "Host db-1"}) {
    EXPECT_NE(html.find(want), std::string::npos) << want;
  }
  for (const char* never : {"<script", "src=", "href="}) {  // no scripts, no external assets
    EXPECT_EQ(html.find(never), std::string::npos) << never;
  }

  // Many devices: the busiest eight are drawn, the rest counted.
  for (int d = 0; d < 10; ++d) {
    series("disk_read_bytes_per_second", fmt::format(R"({{"device":"loop{}"}})", d), d);
  }
  ASSERT_OK_AND_ASSIGN(html, RenderSamplesReport(in, &stats));
  EXPECT_THAT(html, AllOf(HasSubstr("4 quieter series not shown"), HasSubstr("vda read"),
                          Not(HasSubstr("loop0 read"))));

  in.series.clear();
  EXPECT_THAT(RenderSamplesReport(in),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("no samples of host 'db-1'")));
}

}  // namespace
}  // namespace sluice::report
