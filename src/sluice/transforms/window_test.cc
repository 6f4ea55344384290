// The window transform, driven directly: batches in, watermarks by hand, rows out. Results are
// compared with a brute-force computation over the same rows.

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/engine/pipeline.h"
#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/aggregate.h"
#include "sluice/transforms/transforms.h"
#include "sluice/transforms/window_test_util.h"

namespace sluice {
namespace {

using namespace window_test;  // NOLINT(google-build-using-namespace)

TEST(WindowTest, TumblingFiresWhenTheWatermarkPassesTheEnd) {
  Harness h(J{{"size", "5m"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  EXPECT_EQ(h.schema->ToString(),
            "meter:string, window_start:timestamp, window_end:timestamp, cnt:int64, "
            "total:float64, lo:float64, hi:float64, nsum:int64, late_rows:int64");
  // Out of order inside windows; two keys; a row at exactly the end belongs to the next.
  ASSERT_TRUE(h.Push({{"a", 3 * kMin, 1.5, 1},
                      {"b", 1 * kMin, -2, 2},
                      {"a", 0, 4, 3},
                      {"a", 5 * kMin, 10, 4},
                      {"a", 4 * kMin + kMin - 1, 0.5, 5}})
                  .ok());
  ASSERT_TRUE(h.Watermark(5 * kMin - 1).ok());
  EXPECT_TRUE(h.Lines().empty());  // [0, 5m) is still open
  ASSERT_TRUE(h.Watermark(5 * kMin).ok());
  EXPECT_EQ(h.Lines(), (std::vector<std::string>{
                           "meter=a window_start=0m window_end=5m cnt=3 total=6 lo=0.5 hi=4 "
                           "nsum=9 late_rows=0",
                           "meter=b window_start=0m window_end=5m cnt=1 total=-2 lo=-2 hi=-2 "
                           "nsum=2 late_rows=0"}));
  ASSERT_TRUE(h.t->Finish(&h.out).ok());
  EXPECT_EQ(h.Lines().back(),
            "meter=a window_start=5m window_end=10m cnt=1 total=10 lo=10 hi=10 nsum=4 "
            "late_rows=0");
}

/// (meter, window start) -> count, sum of v, min, max, sum of n.
using Expected =
    std::map<std::pair<std::string, int64_t>, std::tuple<int64_t, double, double, double, int64_t>>;

int64_t FloorDivision(int64_t a, int64_t b) { return a / b - ((a % b != 0) && (a < 0)); }

Expected BruteForce(const std::vector<Reading>& rows, int64_t size, int64_t slide) {
  Expected e;
  for (const auto& r : rows) {
    for (int64_t k = FloorDivision(r.ts - size, slide) + 1; k * slide <= r.ts; ++k) {
      auto [it, added] = e.try_emplace({r.meter, k * slide}, 0, 0.0, r.v, r.v, 0);
      auto& [cnt, sum, lo, hi, nsum] = it->second;
      ++cnt;
      sum += r.v;
      lo = std::min(lo, r.v);
      hi = std::max(hi, r.v);
      nsum += r.n;
    }
  }
  return e;
}

Expected FromOutput(const std::vector<BatchPtr>& batches, int64_t size) {
  Expected e;
  for (const auto& b : batches) {
    for (int64_t r = 0; r < b->num_rows(); ++r) {
      const std::string meter(b->column(0).GetView(r));
      const int64_t start = b->column(1).GetInt64(r);
      EXPECT_EQ(b->column(2).GetInt64(r), start + size);
      auto [it, added] = e.try_emplace({meter, start}, b->column(3).GetInt64(r),
                                       b->column(4).GetFloat64(r), b->column(5).GetFloat64(r),
                                       b->column(6).GetFloat64(r), b->column(7).GetInt64(r));
      EXPECT_TRUE(added) << "window emitted twice: " << meter << " " << start;
    }
  }
  return e;
}

void ExpectSame(const Expected& want, const Expected& got) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [k, w] : want) {
    auto it = got.find(k);
    ASSERT_NE(it, got.end()) << k.first << " " << k.second;
    EXPECT_EQ(std::get<0>(w), std::get<0>(it->second));
    EXPECT_NEAR(std::get<1>(w), std::get<1>(it->second), 1e-9 * (1 + std::abs(std::get<1>(w))));
    EXPECT_EQ(std::get<2>(w), std::get<2>(it->second));
    EXPECT_EQ(std::get<3>(w), std::get<3>(it->second));
    EXPECT_EQ(std::get<4>(w), std::get<4>(it->second));
  }
}

/// Random readings over 3 hours for 50 meters (some before 1970), out of order within 2
/// minutes, pushed in batches with a watermark after each that keeps the promise; every
/// window must come out once, equal to the brute force.
void RandomRun(const std::string& size, const std::string& slide, int64_t size_us,
               int64_t slide_us) {
  nlohmann::json options = {{"size", size}};
  if (!slide.empty()) options["slide"] = slide;
  Harness h(options);
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  std::mt19937_64 rng(7);
  std::vector<Reading> all;
  const int64_t origin = -90 * kMin;  // crosses the epoch: floor division must hold
  int64_t max_ts = INT64_MIN;
  for (int b = 0; b < 60; ++b) {
    std::vector<Reading> batch;
    for (int i = 0; i < 100; ++i) {
      const int64_t base = origin + (b * 3 * kMin);
      const int64_t ts = base + static_cast<int64_t>(rng() % (2 * kMin));
      batch.push_back({fmt::format("m{}", rng() % 50), ts,
                       static_cast<double>(rng() % 2000) / 8.0 - 100,
                       static_cast<int64_t>(rng() % 1000)});
      max_ts = std::max(max_ts, ts);
    }
    all.insert(all.end(), batch.begin(), batch.end());
    ASSERT_TRUE(h.Push(batch).ok());
    // Next batch's rows are >= its base, which is above this.
    ASSERT_TRUE(h.Watermark(origin + (b + 1) * 3 * kMin).ok());
  }
  ASSERT_TRUE(h.t->Finish(&h.out).ok());
  ExpectSame(BruteForce(all, size_us, slide_us), FromOutput(h.out.rows, size_us));
  EXPECT_EQ(Counter(h.stats, "late_dropped"), 0);
}

TEST(WindowTest, TumblingEqualsBruteForce) { RandomRun("15m", "", 15 * kMin, 15 * kMin); }
TEST(WindowTest, HoppingEqualsBruteForce) { RandomRun("15m", "5m", 15 * kMin, 5 * kMin); }
TEST(WindowTest, HoppingWithSlideNotDividingSizeEqualsBruteForce) {
  RandomRun("10m", "4m", 10 * kMin, 4 * kMin);  // panes of gcd = 2m
}

/// Random readings where one in eight comes up to 40 minutes behind the watermark: late for
/// the windows that fired, on time for the later windows holding it (folded into the suffixes
/// those windows share), or late for all of them (dropped). Every window must equal the brute
/// force over the rows that reached it before it fired.
void RandomLateRun(const std::string& size, const std::string& slide, int64_t size_us,
                   int64_t slide_us) {
  Harness h(J{{"size", size}, {"slide", slide}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  std::mt19937_64 rng(11);
  Expected want;
  int64_t dropped = 0;
  int64_t watermark = 0;
  ASSERT_TRUE(h.Watermark(watermark).ok());
  for (int b = 0; b < 80; ++b) {
    std::vector<Reading> batch;
    for (int i = 0; i < 60; ++i) {
      const bool late = rng() % 8 == 0;
      const int64_t ts = late ? watermark - static_cast<int64_t>(rng() % (40 * kMin))
                              : watermark + static_cast<int64_t>(rng() % (3 * kMin));
      const Reading r{fmt::format("m{}", rng() % 20), ts,
                      static_cast<double>(rng() % 2000) / 8.0 - 100,
                      static_cast<int64_t>(rng() % 1000)};
      batch.push_back(r);
      // The windows holding it that have not fired (end > watermark) see it.
      bool seen = false;
      for (const auto& [key, agg] : BruteForce({r}, size_us, slide_us)) {
        if (key.second + size_us <= watermark) continue;
        seen = true;
        auto [it, added] = want.try_emplace(key, 0, 0.0, r.v, r.v, 0);
        auto& [cnt, sum, lo, hi, nsum] = it->second;
        ++cnt;
        sum += r.v;
        lo = std::min(lo, r.v);
        hi = std::max(hi, r.v);
        nsum += r.n;
      }
      dropped += !seen;
    }
    ASSERT_TRUE(h.Push(batch).ok());
    watermark += static_cast<int64_t>(rng() % (4 * kMin));
    ASSERT_TRUE(h.Watermark(watermark).ok());
  }
  ASSERT_TRUE(h.t->Finish(&h.out).ok());
  ExpectSame(want, FromOutput(h.out.rows, size_us));
  EXPECT_EQ(Counter(h.stats, "late_dropped"), dropped);
  EXPECT_GT(dropped, 0);
}

TEST(WindowTest, HoppingWithLateRowsEqualsBruteForce) {
  RandomLateRun("15m", "5m", 15 * kMin, 5 * kMin);
}
TEST(WindowTest, HoppingWithLateRowsAndSlideNotDividingSizeEqualsBruteForce) {
  RandomLateRun("10m", "4m", 10 * kMin, 4 * kMin);
}
TEST(WindowTest, HoppingWithLateRowsAndOneMinuteSlideEqualsBruteForce) {
  RandomLateRun("15m", "1m", 15 * kMin, kMin);
}

TEST(WindowTest, HoppingWindowsSeeARowThatCameLateForEarlierOnes) {
  // Hopping windows share merges built from the slices; a row that is late for the windows
  // that fired but on time for later ones changes a slice they were built from.
  Harness h(J{{"size", "3m"}, {"slide", "1m"}, {"aggregates", {{"total", "sum(v)"}}}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  ASSERT_TRUE(h.Push({{"a", kMin / 2, 1, 0},
                      {"a", kMin + kMin / 2, 2, 0},
                      {"a", 2 * kMin + kMin / 2, 4, 0},
                      {"a", 3 * kMin + kMin / 2, 8, 0}})
                  .ok());
  ASSERT_TRUE(h.Watermark(3 * kMin).ok());
  ASSERT_TRUE(h.Push({{"a", 2 * kMin + 3 * kMin / 4, 16, 0}}).ok());  // late for [0, 3m) only
  ASSERT_TRUE(h.Watermark(5 * kMin).ok());
  ASSERT_TRUE(h.t->Finish(&h.out).ok());
  EXPECT_EQ(h.Lines(), (std::vector<std::string>{
                           "meter=a window_start=-2m window_end=1m total=1 late_rows=0",
                           "meter=a window_start=-1m window_end=2m total=3 late_rows=0",
                           "meter=a window_start=0m window_end=3m total=7 late_rows=0",
                           "meter=a window_start=1m window_end=4m total=30 late_rows=0",
                           "meter=a window_start=2m window_end=5m total=28 late_rows=0",
                           "meter=a window_start=3m window_end=6m total=8 late_rows=0"}));
  EXPECT_EQ(Counter(h.stats, "late_dropped"), 0);
}

TEST(WindowTest, LateRowsAreDroppedAndCounted) {
  Harness h(J{{"size", "5m"}});
  ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}}).ok());
  ASSERT_TRUE(h.Watermark(6 * kMin).ok());
  ASSERT_TRUE(h.Push({{"a", 2 * kMin, 100, 1}, {"a", 7 * kMin, 2, 1}}).ok());
  ASSERT_TRUE(h.t->Finish(&h.out).ok());
  EXPECT_EQ(Counter(h.stats, "late_dropped"), 1);
  EXPECT_EQ(h.Lines(),
            (std::vector<std::string>{
                "meter=a window_start=0m window_end=5m cnt=1 total=1 lo=1 hi=1 nsum=1 late_rows=0",
                "meter=a window_start=5m window_end=10m cnt=1 total=2 lo=2 hi=2 nsum=1 "
                "late_rows=0"}));
}

TEST(WindowTest, LateRowsGoToTheLateOutput) {
  Harness h(J{{"size", "5m"}, {"late", "output"}});
  ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}}).ok());
  ASSERT_TRUE(h.Watermark(6 * kMin).ok());
  ASSERT_TRUE(h.Push({{"a", 2 * kMin, 100, 7}, {"a", 7 * kMin, 2, 1}, {"b", 0, 3, 8}}).ok());
  ASSERT_EQ(h.out.late.size(), 1u);
  EXPECT_EQ(h.out.late[0]->ToString(),
            Readings({{"a", 2 * kMin, 100, 7}, {"b", 0, 3, 8}})->ToString());
  EXPECT_EQ(Counter(h.stats, "late_output"), 2);
}

// Hopping windows under late: update: a row late for the windows that fired is folded into its
// slice, those windows are emitted again counting it in late_rows, and so is every later window
// built from that slice (late_rows counts the slice's late rows, merged from slice to window).
TEST(WindowTest, LateUpdateCountsLateRowsThroughHoppingMerges) {
  Harness h(J{{"size", "3m"},
              {"slide", "1m"},
              {"late", "update"},
              {"allowed_lateness", "10m"},
              {"aggregates", {{"total", "sum(v)"}}}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  ASSERT_TRUE(h.Push({{"a", kMin / 2, 1, 0}, {"a", 2 * kMin + kMin / 2, 4, 0}}).ok());
  ASSERT_TRUE(h.Watermark(2 * kMin).ok());
  ASSERT_TRUE(h.Push({{"a", kMin / 2 + kMin / 5, 2, 0}, {"b", kMin / 2, 100, 0}}).ok());
  ASSERT_TRUE(h.Watermark(10 * kMin).ok());
  EXPECT_EQ(h.Lines(), (std::vector<std::string>{
                           "meter=a window_start=-2m window_end=1m total=1 late_rows=0",
                           "meter=a window_start=-1m window_end=2m total=1 late_rows=0",
                           // a's late row, and b's first: the fired windows again
                           "meter=a window_start=-2m window_end=1m total=3 late_rows=1",
                           "meter=b window_start=-2m window_end=1m total=100 late_rows=1",
                           "meter=a window_start=-1m window_end=2m total=3 late_rows=1",
                           "meter=b window_start=-1m window_end=2m total=100 late_rows=1",
                           "meter=a window_start=0m window_end=3m total=7 late_rows=1",
                           "meter=b window_start=0m window_end=3m total=100 late_rows=1",
                           "meter=a window_start=1m window_end=4m total=4 late_rows=0",
                           "meter=a window_start=2m window_end=5m total=4 late_rows=0"}));
  EXPECT_EQ(Counter(h.stats, "late_updates"), 2);
  // Another late row of a alone: only a's windows holding its slice come out again; b's late
  // row in the same slice is neither re-emitted nor counted in a's.
  const size_t before = h.Lines().size();
  ASSERT_TRUE(h.Push({{"a", kMin / 2 + kMin / 4, 8, 0}}).ok());
  const std::vector<std::string> lines = h.Lines();
  EXPECT_EQ(
      std::vector<std::string>(lines.begin() + static_cast<ptrdiff_t>(before), lines.end()),
      (std::vector<std::string>{"meter=a window_start=-2m window_end=1m total=11 late_rows=2",
                                "meter=a window_start=-1m window_end=2m total=11 late_rows=2",
                                "meter=a window_start=0m window_end=3m total=15 late_rows=2"}));
}

// Quantiles past the 16 values a group keeps in its cells, through hopping windows' merges
// (suffixes in the slices, or copies under late: update) over several firings, so that slices
// and their spilled sketches are recycled: every window's p0 and p99 are its smallest and
// largest values (p99 of up to 100 values is the largest), within the sketch's 1 %.
TEST(WindowTest, HoppingQuantilesPastTheInlineValues) {
  for (const bool update : {false, true}) {
    J options = {
        {"size", "3m"},
        {"slide", "1m"},
        {"aggregates", J::array({{{"lo", "p0(v)"}}, {{"hi", "p99(v)"}}, {{"cnt", "count()"}}})}};
    if (update) {
      options["late"] = "update";
      options["allowed_lateness"] = "1m";
    }
    Harness h(options);
    ASSERT_TRUE(h.status.ok()) << h.status.ToString();
    std::mt19937_64 rng(update ? 3 : 4);
    std::map<std::pair<std::string, int64_t>, std::vector<double>> want;  // (key, start)
    for (int64_t minute = 0; minute < 12; ++minute) {
      std::vector<Reading> batch;
      for (const std::string key : {"a", "b"}) {
        const int per_minute = key == "a" ? 20 : 1 + static_cast<int>(rng() % 8);
        for (int i = 0; i < per_minute; ++i) {
          const double v = static_cast<double>(rng() % 100000) / 10 - 5000;
          batch.push_back({key, minute * kMin + i, v, 0});
          for (int64_t start = minute - 2; start <= minute; ++start) {
            want[{key, start * kMin}].push_back(v);
          }
        }
      }
      ASSERT_TRUE(h.Push(batch).ok());
      ASSERT_TRUE(h.Watermark(minute * kMin).ok());
    }
    ASSERT_TRUE(h.t->Finish(&h.out).ok());
    size_t rows = 0;
    for (const BatchPtr& b : h.out.rows) {
      for (int64_t r = 0; r < b->num_rows(); ++r, ++rows) {
        const std::string key(b->column(0).GetView(r));
        const auto& values = want.at({key, b->column(1).GetInt64(r)});
        const double lo = *std::min_element(values.begin(), values.end());
        const double hi = *std::max_element(values.begin(), values.end());
        EXPECT_NEAR(b->column(3).GetFloat64(r), lo, 0.01 * std::abs(lo)) << key << update;
        EXPECT_NEAR(b->column(4).GetFloat64(r), hi, 0.01 * std::abs(hi)) << key << update;
        EXPECT_EQ(b->column(5).GetInt64(r), static_cast<int64_t>(values.size())) << key;
      }
    }
    EXPECT_EQ(rows, want.size()) << update;
  }
}

TEST(WindowTest, LateUpdateReemitsTheCorrectedWindowWithinAllowedLateness) {
  Harness h(J{{"size", "5m"}, {"late", "update"}, {"allowed_lateness", "10m"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}, {"b", 2 * kMin, 5, 1}}).ok());
  ASSERT_TRUE(h.Watermark(6 * kMin).ok());
  ASSERT_EQ(h.Lines().size(), 2u);
  // 4 minutes late: folded in, [0, 5m) of a emitted again with both rows; b is untouched.
  ASSERT_TRUE(h.Push({{"a", 3 * kMin, 2, 1}}).ok());
  ASSERT_EQ(h.Lines().size(), 3u);
  EXPECT_EQ(h.Lines()[2],
            "meter=a window_start=0m window_end=5m cnt=2 total=3 lo=1 hi=2 nsum=2 late_rows=1");
  // Past allowed lateness (window end 5m + 10m <= 16m): dropped and counted.
  ASSERT_TRUE(h.Watermark(16 * kMin).ok());
  ASSERT_TRUE(h.Push({{"a", 4 * kMin, 50, 1}}).ok());
  EXPECT_EQ(h.Lines().size(), 3u);
  EXPECT_EQ(Counter(h.stats, "late_dropped"), 1);
  EXPECT_EQ(Counter(h.stats, "late_updates"), 1);
  EXPECT_EQ(h.t->OutputWatermark(16 * kMin), 6 * kMin);
}

TEST(WindowTest, SessionsSplitOnGapsAndMergeWhenARowBridgesThem) {
  Harness h(J{{"gap", "10m"}});
  ASSERT_TRUE(h.status.ok()) << h.status.ToString();
  // a: 0, 5 | 30 ; then 20 bridges nothing (30-20 = 10 is not < 10) ... 25 bridges 5..30? no:
  // 25 - 5 = 20. Then 14 joins 5 (9 apart) and 22 joins 14 and 30: one session 0..30.
  ASSERT_TRUE(h.Push({{"a", 0, 1, 1}, {"a", 5 * kMin, 2, 1}, {"a", 30 * kMin, 3, 1}}).ok());
  ASSERT_TRUE(h.Push({{"a", 14 * kMin, 4, 1}, {"a", 22 * kMin, 5, 1}}).ok());
  ASSERT_TRUE(h.Push({{"b", 0, 7, 1}, {"b", 50 * kMin, 8, 1}}).ok());
  ASSERT_TRUE(h.Watermark(40 * kMin).ok());  // a's session ends 30 + 10 = 40; b's first 10
  EXPECT_EQ(h.Lines(), (std::vector<std::string>{
                           "meter=a window_start=0m window_end=40m cnt=5 total=15 lo=1 hi=5 "
                           "nsum=5 late_rows=0",
                           "meter=b window_start=0m window_end=10m cnt=1 total=7 lo=7 hi=7 "
                           "nsum=1 late_rows=0"}));
  // A row for a's closed session is late; one for b's open one joins it.
  ASSERT_TRUE(h.Push({{"a", 29 * kMin, 1, 1}, {"b", 55 * kMin, 1, 1}}).ok());
  EXPECT_EQ(Counter(h.stats, "late_dropped"), 1);
  ASSERT_TRUE(h.t->Finish(&h.out).ok());
  EXPECT_EQ(h.Lines().back(),
            "meter=b window_start=50m window_end=65m cnt=2 total=9 lo=1 hi=8 nsum=2 late_rows=0");
}

TEST(WindowTest, NullEventTimeFollowsOnError) {
  const SchemaPtr schema = MakeSchema({{"meter", TypeId::kString},
                                       {"ts", TypeId::kTimestamp},
                                       {"v", TypeId::kFloat64},
                                       {"n", TypeId::kInt64}});
  auto batch = BatchFromJson(schema, R"([["a", 0, 1.0, 1], ["a", null, 2.0, 2]])");
  ASSERT_TRUE(batch.ok());
  {
    Harness h(J{{"size", "5m"}});
    EXPECT_THAT(h.t->Process(*batch, 0, &h.out),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("'ts' is null")));
  }
  {
    Harness h(J{{"size", "5m"}, {"on_error", "skip"}});
    ASSERT_TRUE(h.t->Process(*batch, 0, &h.out).ok());
    EXPECT_EQ(Counter(h.stats, "skipped"), 1);
  }
  {
    Harness h(J{{"size", "5m"}, {"on_error", "dead_letter"}});
    ASSERT_TRUE(h.t->Process(*batch, 0, &h.out).ok());
    auto dead = h.ctx.dead_letters()->Take();
    ASSERT_NE(dead, nullptr);
    EXPECT_THAT(dead->ToString(), HasSubstr("row 1"));
    EXPECT_THAT(dead->ToString(), HasSubstr("has no event time"));
  }
}

TEST(WindowTest, RefusesConfigurationsThatCannotWork) {
  auto error_of = [](nlohmann::json options) {
    Harness h(std::move(options));
    return h.status.ToString();
  };
  EXPECT_THAT(error_of({{"size", "5m"}, {"gap", "1m"}}), HasSubstr("exactly one of `size`"));
  EXPECT_THAT(error_of(nlohmann::json::object()), HasSubstr("exactly one of `size`"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"slide", "6m"}}), HasSubstr("at most `size`"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"late", "update"}}), HasSubstr("needs allowed_lateness"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"allowed_lateness", "1m"}}),
              HasSubstr("only late: update"));
  EXPECT_THAT(error_of({{"gap", "5m"}, {"late", "update"}, {"allowed_lateness", "1m"}}),
              HasSubstr("not offered for sessions"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "median(v)"}}}}),
              HasSubstr("unknown function 'median' — did you mean 'p50'?"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "avgg(v)"}}}}),
              HasSubstr("did you mean 'avg'?"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "p101(v)"}}}}),
              HasSubstr("'p101' is not a percentile"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "sum(v, n)"}}}}),
              HasSubstr("takes one column"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"group_by", {"meterr"}}}),
              HasSubstr("no column 'meterr' in the input — did you mean 'meter'?"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"time", "tss"}}), HasSubstr("did you mean 'ts'?"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "sum(meter)"}}}}),
              HasSubstr("column 'meter' is string"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "avg(volts)"}}}}),
              HasSubstr("no column 'volts' in the input (its columns: meter, ts, v, n)"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"window_end", "count()"}}}}),
              HasSubstr("two output columns are called 'window_end'"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"time", "v"}}),
              HasSubstr("'v' is float64, and the event time must be a timestamp"));
  EXPECT_THAT(error_of({{"size", "5m"}, {"aggregates", {{"x", "sum()"}}}}),
              HasSubstr("needs a column"));
}

TEST(WindowTest, HoldsTheAcksOfAbsorbedRowsUntilItsRowIsReleased) {
  auto queue = std::make_shared<AckQueue>();
  Harness h(J{{"size", "5m"}});
  h.out.input_acks = AckSet(std::make_shared<AckHandle>(queue, 0));
  ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}}).ok());
  h.out.input_acks = AckSet(std::make_shared<AckHandle>(queue, 1));
  ASSERT_TRUE(h.Push({{"a", 6 * kMin, 1, 1}}).ok());
  h.out.input_acks = AckSet();  // the executor is done with both inputs
  std::vector<AckQueue::Event> events;
  queue->Drain(&events, 0);
  EXPECT_TRUE(events.empty()) << "acked before any window row was emitted";
  ASSERT_TRUE(h.Watermark(5 * kMin).ok());
  ASSERT_EQ(h.out.row_acks.size(), 1u);
  EXPECT_EQ(h.out.row_acks[0].size(), 1u);  // batch 0 only
  queue->Drain(&events, 0);
  EXPECT_TRUE(events.empty()) << "acked while the window's row is not yet durable";
  h.out.row_acks.clear();  // the sink made [0, 5m) durable
  queue->Drain(&events, 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].seq, 0u);
  EXPECT_TRUE(events[0].delivered);
}

TEST(WindowTest, AStopEmitsNoOpenWindowAndGivesUpItsRowsForTheNextRun) {
  for (const J& kind : {J{{"size", "5m"}}, J{{"gap", "5m"}}}) {
    auto queue = std::make_shared<AckQueue>();
    Harness h(kind);
    std::atomic<bool> stopping{true};
    h.ctx.set_stopping(&stopping);
    h.out.input_acks = AckSet(std::make_shared<AckHandle>(queue, 0));
    ASSERT_TRUE(h.Push({{"a", 1 * kMin, 1, 1}}).ok());
    h.out.input_acks = AckSet(std::make_shared<AckHandle>(queue, 1));
    ASSERT_TRUE(h.Push({{"a", 20 * kMin, 2, 1}}).ok());
    h.out.input_acks = AckSet();
    ASSERT_TRUE(h.Watermark(10 * kMin).ok());  // the first window (or session) fires
    ASSERT_EQ(h.Lines().size(), 1u) << kind;
    h.out.row_acks.clear();                 // written
    ASSERT_TRUE(h.t->Finish(&h.out).ok());  // stopped: the one at 20m is still open
    EXPECT_EQ(h.Lines().size(), 1u) << "an incomplete window came out at the stop";
    std::vector<AckQueue::Event> events;
    queue->Drain(&events, 0);
    ASSERT_EQ(events.size(), 2u);
    std::sort(events.begin(), events.end(),
              [](const auto& a, const auto& b) { return a.seq < b.seq; });
    EXPECT_TRUE(events[0].delivered);   // its window was written
    EXPECT_FALSE(events[1].delivered);  // kept by the source for the next run
    EXPECT_EQ(Counter(h.stats, "windows_abandoned"), 1);
  }
}

TEST(WindowTest, KeyedInstancesGaugesAddUpTheirState) {
  // Two instances of one node (partition_by), each holding its own keys: the node's gauges are
  // the sum of what they hold, not the last one's.
  MemoryBudget budget(1 << 20);
  NodeStats stats;
  Harness a(J{{"size", "5m"}}, &budget, &stats, 0);
  Harness b(J{{"size", "5m"}}, &budget, &stats, 1);
  std::vector<Reading> few, many;
  for (int i = 0; i < 10; ++i) few.push_back({fmt::format("meter-{}", i), 0, 1, 1});
  for (int i = 0; i < 300; ++i) many.push_back({fmt::format("meter-{}", 100 + i), 6 * kMin, 1, 1});
  ASSERT_TRUE(a.Push(few).ok());
  ASSERT_TRUE(b.Push(many).ok());
  ASSERT_TRUE(a.Push(few).ok());  // the instance holding less writes last
  EXPECT_GT(budget.held(), 300 * 40);
  EXPECT_EQ(Gauge(stats, "state_bytes"), static_cast<double>(budget.held()));
  EXPECT_EQ(Gauge(stats, "open_windows"), 2);
  ASSERT_TRUE(a.t->Finish(&a.out).ok());
  ASSERT_TRUE(b.t->Finish(&b.out).ok());
}

TEST(WindowTest, StateCountsAgainstTheMemoryBudgetAndIsReleased) {
  MemoryBudget budget(1 << 20);
  {
    Harness h(J{{"size", "5m"}}, &budget);
    std::vector<Reading> rows;
    for (int i = 0; i < 1000; ++i) rows.push_back({fmt::format("meter-{}", i), 0, 1, 1});
    ASSERT_TRUE(h.Push(rows).ok());
    EXPECT_GT(budget.held(), 1000 * 40);
    EXPECT_EQ(budget.held(), budget.used());
    EXPECT_EQ(Gauge(h.stats, "open_windows"), 1);
    ASSERT_TRUE(h.t->Finish(&h.out).ok());
    ASSERT_TRUE(h.t->Close().ok());
    EXPECT_EQ(budget.held(), 0);
  }
  // State beyond the whole budget is an error that says what to do, not a stall.
  MemoryBudget small(16 << 10);
  Harness h(J{{"size", "5m"}}, &small);
  std::vector<Reading> rows;
  for (int i = 0; i < 1000; ++i) rows.push_back({fmt::format("meter-{}", i), 0, 1, 1});
  EXPECT_THAT(h.Push(rows), StatusIs(StatusCode::kResourceExhausted,
                                     HasSubstr("more than the run's memory budget")));
  ASSERT_TRUE(h.t->Close().ok());
  EXPECT_EQ(small.held(), 0);
}

TEST(WindowTest, KeyIdsOfClosedWindowsAreForgotten) {
  MemoryBudget budget(0);
  Harness h(J{{"size", "1m"}}, &budget);
  // Every window has 5,000 new keys: held state must follow the open window, not history.
  int64_t first = 0;
  for (int w = 0; w < 20; ++w) {
    std::vector<Reading> rows;
    for (int i = 0; i < 5000; ++i) rows.push_back({fmt::format("k{}-{}", w, i), w * kMin, 1, 1});
    ASSERT_TRUE(h.Push(rows).ok());
    if (w == 1) first = budget.held();
    ASSERT_TRUE(h.Watermark((w + 1) * kMin).ok());
  }
  EXPECT_LT(budget.held(), 2 * first);
  EXPECT_EQ(h.out.rows.size(), 20u);
}

}  // namespace
}  // namespace sluice
