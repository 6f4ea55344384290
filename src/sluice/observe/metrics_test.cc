#include "sluice/observe/metrics.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/testing/matchers.h"

namespace sluice::observe {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

// ---- Exact quantiles for comparison ----

// Returns the nearest-rank quantile q = permille / 1000 of `sorted`, computed with integers.
int64_t ExactQuantile(const std::vector<int64_t>& sorted, int64_t permille) {
  const auto n = static_cast<int64_t>(sorted.size());
  const int64_t rank = std::max<int64_t>(1, (permille * n + 999) / 1000);
  return sorted[static_cast<size_t>(rank - 1)];
}

// Records `values` and checks count, sum, min, max and quantiles against the exact ones.
void ExpectMatchesExact(std::vector<int64_t> values) {
  Histogram h;
  for (int64_t v : values) h.Record(v);
  const HistogramSnapshot s = h.Snapshot();
  std::sort(values.begin(), values.end());
  ASSERT_EQ(s.count(), static_cast<int64_t>(values.size()));
  if (values.empty()) {
    EXPECT_EQ(s.sum(), 0);
    EXPECT_EQ(s.min(), 0);
    EXPECT_EQ(s.max(), 0);
    EXPECT_EQ(s.Quantile(0.5), 0);
    return;
  }
  int64_t sum = 0;
  for (int64_t v : values) sum += v;
  EXPECT_EQ(s.sum(), static_cast<double>(sum));
  EXPECT_EQ(s.min(), static_cast<double>(values.front()));
  EXPECT_EQ(s.max(), static_cast<double>(values.back()));
  EXPECT_EQ(s.Quantile(0), static_cast<double>(values.front()));
  EXPECT_EQ(s.Quantile(1), static_cast<double>(values.back()));
  for (int64_t permille : {1, 100, 250, 500, 750, 900, 950, 990, 999}) {
    const auto exact = static_cast<double>(ExactQuantile(values, permille));
    const double got = s.Quantile(static_cast<double>(permille) / 1000);
    EXPECT_LE(std::abs(got - exact), exact / 64 + 1e-9)
        << "q=" << permille << "/1000 exact=" << exact << " got=" << got;
  }
}

TEST(CounterTest, AddsDeltas) {
  Counter c;
  EXPECT_EQ(c.Value(), 0);
  c.Add();
  c.Add(41);
  EXPECT_EQ(c.Value(), 42);
  EXPECT_EQ(alignof(Counter), kCacheLineBytes);
}

TEST(GaugeTest, SetsAndAdds) {
  Gauge g;
  g.Set(2.5);
  g.Add(-1.0);
  EXPECT_EQ(g.Value(), 1.5);
  g.Set(-7);
  EXPECT_EQ(g.Value(), -7);
}

TEST(HistogramTest, BucketsTileTheRangeWithBoundedWidth) {
  EXPECT_EQ(Histogram::BucketLowerBound(0), 0);
  for (int i = 0; i < Histogram::kNumBuckets; ++i) {
    const int64_t lo = Histogram::BucketLowerBound(i);
    const int64_t hi = Histogram::BucketUpperBound(i);
    ASSERT_LE(lo, hi) << i;
    ASSERT_EQ(Histogram::BucketIndex(lo), i);
    ASSERT_EQ(Histogram::BucketIndex(hi), i);
    if (i + 1 < Histogram::kNumBuckets) {
      ASSERT_EQ(hi + 1, Histogram::BucketLowerBound(i + 1));
    }
    ASSERT_LE(static_cast<double>(hi - lo), static_cast<double>(lo) / 32) << i;
  }
  EXPECT_EQ(Histogram::BucketUpperBound(Histogram::kNumBuckets - 1),
            std::numeric_limits<int64_t>::max());
  EXPECT_EQ(Histogram::BucketIndex(int64_t{1} << 62),
            Histogram::kNumBuckets - Histogram::kSubBuckets);
}

TEST(HistogramTest, QuantilesOfUniformValuesMatchExact) {
  std::mt19937_64 rng(1);
  std::uniform_int_distribution<int64_t> dist(1, 1'000'000);
  std::vector<int64_t> values(100'000);
  for (auto& v : values) v = dist(rng);
  ExpectMatchesExact(values);
}

TEST(HistogramTest, QuantilesOfLogNormalValuesMatchExact) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> dist(8.0, 2.5);  // spans ~1 .. 1e8
  std::vector<int64_t> values(100'000);
  for (auto& v : values) v = static_cast<int64_t>(dist(rng));
  ExpectMatchesExact(values);
}

TEST(HistogramTest, QuantilesOfSmallAndHugeValuesMatchExact) {
  std::mt19937_64 rng(3);
  std::uniform_int_distribution<int> exponent(0, 52);
  std::uniform_int_distribution<int64_t> offset(0, 1'000'000);
  std::vector<int64_t> values(1000);
  for (auto& v : values) v = (int64_t{1} << exponent(rng)) + offset(rng);  // sum < 2^63
  ExpectMatchesExact(values);
  ExpectMatchesExact({0, 1, 2, 3, 4, 5, 31, 32, 33, 63, 64, 65});
  ExpectMatchesExact({int64_t{1} << 62});
  ExpectMatchesExact({std::numeric_limits<int64_t>::max()});
}

TEST(HistogramTest, ConstantSingleAndEmpty) {
  ExpectMatchesExact(std::vector<int64_t>(1000, 123'456'789));
  ExpectMatchesExact({987'654});
  ExpectMatchesExact({});
  Histogram h;
  h.Record(123'456'789);
  EXPECT_EQ(h.Snapshot().Quantile(0.5), 123'456'789.0);  // clamped to min == max: exact
}

TEST(HistogramTest, NegativeValuesCountAsZero) {
  Histogram h;
  h.Record(-5);
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.count(), 1);
  EXPECT_EQ(s.min(), 0);
  EXPECT_EQ(s.sum(), 0);
}

TEST(HistogramTest, ScaleExposesMicrosecondsAsSeconds) {
  Histogram h("s", 1e-6);
  for (int i = 1; i <= 100; ++i) h.Record(i * 1000);  // 1 ms .. 100 ms
  const HistogramSnapshot s = h.Snapshot();
  EXPECT_EQ(s.unit(), "s");
  EXPECT_DOUBLE_EQ(s.sum(), 5.05);
  EXPECT_DOUBLE_EQ(s.min(), 0.001);
  EXPECT_DOUBLE_EQ(s.max(), 0.1);
  EXPECT_NEAR(s.Quantile(0.5), 0.050, 0.050 / 64);
  EXPECT_NEAR(s.Quantile(0.99), 0.099, 0.099 / 64);
}

TEST(HistogramTest, MergeEqualsRecordingEverythingInOne) {
  std::mt19937_64 rng(4);
  std::lognormal_distribution<double> dist(6.0, 2.0);
  Histogram a;
  Histogram b;
  Histogram all;
  for (int i = 0; i < 20'000; ++i) {
    const auto v = static_cast<int64_t>(dist(rng));
    (i % 3 == 0 ? a : b).Record(v);
    all.Record(v);
  }
  HistogramSnapshot merged = a.Snapshot();
  merged.Merge(b.Snapshot());
  merged.Merge(HistogramSnapshot());  // empty: no change
  const HistogramSnapshot expected = all.Snapshot();
  EXPECT_EQ(merged.count(), expected.count());
  EXPECT_EQ(merged.sum(), expected.sum());
  EXPECT_EQ(merged.min(), expected.min());
  EXPECT_EQ(merged.max(), expected.max());
  for (double q : {0.1, 0.5, 0.9, 0.99}) EXPECT_EQ(merged.Quantile(q), expected.Quantile(q)) << q;

  HistogramSnapshot into_empty;
  into_empty.Merge(expected);
  EXPECT_EQ(into_empty.min(), expected.min());
  EXPECT_EQ(into_empty.Quantile(0.5), expected.Quantile(0.5));
}

TEST(HistogramTest, MergeAcrossScalesConvertsUnits) {
  Histogram micros("s", 1e-6);
  Histogram millis("s", 1e-3);
  for (int i = 1; i <= 1000; ++i) {
    micros.Record(i * 1000);  // 1 ms .. 1 s
    millis.Record(i);         // the same values in ms
  }
  HistogramSnapshot merged = micros.Snapshot();
  merged.Merge(millis.Snapshot());
  EXPECT_EQ(merged.count(), 2000);
  EXPECT_DOUBLE_EQ(merged.sum(), 2 * 500.5);
  EXPECT_DOUBLE_EQ(merged.min(), 0.001);
  EXPECT_DOUBLE_EQ(merged.max(), 1.0);
  EXPECT_NEAR(merged.Quantile(0.5), 0.5, 0.5 / 32);
}

TEST(HistogramTest, ConcurrentRecordsAndAddsAreAllCounted) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50'000;
  Counter counter;
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 1; i <= kPerThread; ++i) {
        counter.Add(2);
        h.Record(t * kPerThread + i);
      }
    });
  }
  for (auto& t : threads) t.join();
  const HistogramSnapshot s = h.Snapshot();
  constexpr int64_t kN = int64_t{kThreads} * kPerThread;
  EXPECT_EQ(counter.Value(), 2 * kN);
  EXPECT_EQ(s.count(), kN);
  EXPECT_EQ(s.sum(), static_cast<double>(kN * (kN + 1) / 2));
  EXPECT_EQ(s.min(), 1);
  EXPECT_EQ(s.max(), static_cast<double>(kN));
}

TEST(HistogramTest, CoarseBucketsUseOneTwoFiveBoundsAndAddUp) {
  Histogram h("rows");
  for (int i = 1; i <= 100; ++i) h.Record(i);
  EXPECT_THAT(h.Snapshot().CoarseBuckets(),
              ElementsAre(Pair(1.0, 1), Pair(2.5, 1), Pair(5.0, 3), Pair(10.0, 5), Pair(25.0, 15),
                          Pair(50.0, 25), Pair(100.0, 50)));
  Histogram zeros;
  zeros.Record(0);
  zeros.Record(0);
  EXPECT_THAT(zeros.Snapshot().CoarseBuckets(), ElementsAre(Pair(0.0, 2)));
  EXPECT_THAT(Histogram().Snapshot().CoarseBuckets(), ::testing::IsEmpty());
}

TEST(HistogramTest, CoarseBucketsAddUpOnWideData) {
  std::mt19937_64 rng(5);
  std::lognormal_distribution<double> dist(10.0, 3.0);
  Histogram h("s", 1e-6);
  for (int i = 0; i < 10'000; ++i) h.Record(static_cast<int64_t>(dist(rng)));
  const HistogramSnapshot s = h.Snapshot();
  const auto buckets = s.CoarseBuckets();
  int64_t total = 0;
  for (const auto& [bound, n] : buckets) total += n;
  EXPECT_EQ(total, s.count());
  EXPECT_GE(buckets.back().first, s.max());
  EXPECT_LE(buckets.size(), 3u * 19 + 1);
}

TEST(DecadeBoundsTest, CoverTheRangeWithCleanValues) {
  const std::vector<double> b = DecadeBounds(1e-5, 3);
  ASSERT_EQ(b.size(), 18u);
  EXPECT_EQ(FormatSampleValue(b.front()), "1e-05");
  EXPECT_EQ(FormatSampleValue(b[1]), "2.5e-05");
  EXPECT_EQ(FormatSampleValue(b[4]), "0.00025");
  EXPECT_EQ(b.back(), 5.0);
  EXPECT_THAT(DecadeBounds(3, 3), ElementsAre(5.0));
  EXPECT_THAT(DecadeBounds(7, 30), ElementsAre(10.0, 25.0, 50.0));
  EXPECT_THAT(DecadeBounds(1, 0), ::testing::IsEmpty());
}

TEST(FormatTest, SampleValuesAndEscapes) {
  EXPECT_EQ(FormatSampleValue(3), "3");
  EXPECT_EQ(FormatSampleValue(0.25), "0.25");
  EXPECT_EQ(FormatSampleValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatSampleValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatSampleValue(NAN), "NaN");
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

// ---- Registry ----

TEST(RegistryTest, SameNameAndLabelsGiveTheSameMetric) {
  MetricsRegistry r;
  Counter& a = r.GetCounter("sluice_rows_total", "Rows.", {{"node", "a"}, {"kind", "source"}});
  Counter& again =
      r.GetCounter("sluice_rows_total", "Ignored.", {{"kind", "source"}, {"node", "a"}});
  Counter& b = r.GetCounter("sluice_rows_total", "Rows.", {{"node", "b"}, {"kind", "source"}});
  EXPECT_EQ(&a, &again);
  EXPECT_NE(&a, &b);
  Histogram& h = r.GetHistogram("sluice_latency_seconds", "L.", {}, "s", 1e-6);
  EXPECT_EQ(&h, &r.GetHistogram("sluice_latency_seconds", "L.", {}));
  EXPECT_EQ(h.scale(), 1e-6);
  EXPECT_THAT(r.status(), IsOk());
}

TEST(RegistryTest, ATypeConflictIsReportedAndNotExported) {
  MetricsRegistry r;
  r.GetCounter("sluice_x_total", "X.").Add(1);
  Gauge& g = r.GetGauge("sluice_x_total", "X.");
  g.Set(5);  // usable, but orphaned
  EXPECT_EQ(g.Value(), 5);
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument,
                                   HasSubstr("metric 'sluice_x_total' is a counter")));
  const std::string text = r.PrometheusText();
  EXPECT_THAT(text, HasSubstr("sluice_x_total 1\n"));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("gauge")));
}

TEST(RegistryTest, InvalidNamesAreReported) {
  {
    MetricsRegistry r;
    r.GetCounter("9lives", "");
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("'9lives'")));
  }
  {
    MetricsRegistry r;
    r.GetGauge("sluice_g", "", {{"bad-label", "x"}});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("'bad-label'")));
  }
  {
    MetricsRegistry r;
    r.GetGauge("sluice_g", "", {{"__reserved", "x"}});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("'__reserved'")));
  }
  {
    MetricsRegistry r;
    r.GetHistogram("sluice_h", "", {{"le", "1"}});
    EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("'le'")));
  }
  {
    MetricsRegistry r;
    r.GetCounter("sluice_c_total", "", {{"node", "a"}, {"node", "b"}});
    EXPECT_THAT(r.status(),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("'node' given twice")));
    EXPECT_EQ(r.PrometheusText(), "");
  }
}

// ---- Parsing the exposition back ----

struct ParsedSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct ParsedExposition {
  std::map<std::string, std::string> help;  // family -> unescaped help
  std::map<std::string, std::string> type;  // family -> type
  std::vector<ParsedSample> samples;
  std::string error;  // empty when the text parsed

  double Value(const std::string& name, const std::map<std::string, std::string>& labels) const {
    for (const auto& s : samples) {
      if (s.name == name && s.labels == labels) return s.value;
    }
    return NAN;
  }
};

// A small parser for the text format 0.0.4, strict about what the renderer must produce.
ParsedExposition ParseExposition(const std::string& text) {
  ParsedExposition out;
  size_t pos = 0;
  int line_number = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      out.error = "last line not terminated by a newline";
      return out;
    }
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_number;
    auto fail = [&](const std::string& why) {
      out.error = "line " + std::to_string(line_number) + ": " + why + ": " + line;
    };
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      const bool is_help = line[2] == 'H';
      const size_t space = line.find(' ', 7);
      const std::string family = line.substr(7, space - 7);
      std::string rest = space == std::string::npos ? "" : line.substr(space + 1);
      auto& map = is_help ? out.help : out.type;
      if (map.count(family) != 0) return fail("second HELP/TYPE"), out;
      if (is_help) {
        std::string unescaped;
        for (size_t i = 0; i < rest.size(); ++i) {
          if (rest[i] == '\\' && i + 1 < rest.size()) {
            unescaped += rest[++i] == 'n' ? '\n' : rest[i];
          } else {
            unescaped += rest[i];
          }
        }
        rest = unescaped;
      }
      map[family] = rest;
      continue;
    }
    if (line.empty() || line[0] == '#') return fail("unexpected line"), out;
    ParsedSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') s.name += line[i++];
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        std::string label;
        while (i < line.size() && line[i] != '=') label += line[i++];
        if (line.compare(i, 2, "=\"") != 0) return fail("expected =\""), out;
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            ++i;
            if (line[i] != '\\' && line[i] != '"' && line[i] != 'n') return fail("bad escape"), out;
            value += line[i] == 'n' ? '\n' : line[i];
          } else {
            value += line[i];
          }
          ++i;
        }
        if (i >= line.size()) return fail("unterminated label value"), out;
        ++i;
        s.labels[label] = value;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') return fail("expected a space before the value"), out;
    const std::string value = line.substr(i + 1);
    s.value = value == "+Inf" ? INFINITY : std::strtod(value.c_str(), nullptr);
    out.samples.push_back(std::move(s));
  }
  return out;
}

// A registry with counters, gauges and labelled histograms, some with awkward label values.
void Populate(MetricsRegistry* r) {
  r->GetCounter("sluice_node_rows_in_total", "Rows received by a node.",
                {{"pipeline", "p1"}, {"node", "src"}, {"type", "generate"}, {"kind", "source"}})
      .Add(1000);
  r->GetCounter(
       "sluice_node_rows_in_total", "Rows received by a node.",
       {{"pipeline", "p1"}, {"node", "say \"hi\"\\\nbye"}, {"type", "null"}, {"kind", "sink"}})
      .Add(7);
  r->GetGauge("sluice_node_utilization_ratio", "Busy time over wall time (0-1).\nSecond line \\.",
              {{"pipeline", "p1"}, {"node", "src"}})
      .Set(0.75);
  r->GetGauge("sluice_memory_budget_bytes", "Bytes reserved from the memory budget.").Set(1 << 20);
  Histogram& fast = r->GetHistogram("sluice_node_batch_latency_seconds", "Time spent on one batch.",
                                    {{"pipeline", "p1"}, {"node", "src"}}, "s", 1e-6);
  Histogram& slow = r->GetHistogram("sluice_node_batch_latency_seconds", "Time spent on one batch.",
                                    {{"pipeline", "p1"}, {"node", "sink"}}, "s", 1e-6);
  for (int i = 1; i <= 1000; ++i) {
    fast.Record(i * 10);      // 10 us .. 10 ms
    slow.Record(i * 10'000);  // 10 ms .. 10 s
  }
  r->GetHistogram("sluice_node_batch_rows", "Rows per batch.", {{"node", "src"}}, "rows")
      .Record(8192);
  r->GetHistogram("sluice_empty_seconds", "A histogram nothing was recorded in.", {}, "s", 1e-6);
}

TEST(ExpositionTest, ParsesBackToTheRecordedValues) {
  MetricsRegistry r;
  Populate(&r);
  const std::string text = r.PrometheusText();
  const ParsedExposition p = ParseExposition(text);
  ASSERT_EQ(p.error, "") << text;

  EXPECT_EQ(p.type.at("sluice_node_rows_in_total"), "counter");
  EXPECT_EQ(p.type.at("sluice_node_utilization_ratio"), "gauge");
  EXPECT_EQ(p.type.at("sluice_node_batch_latency_seconds"), "histogram");
  EXPECT_EQ(p.help.at("sluice_node_utilization_ratio"),
            "Busy time over wall time (0-1).\nSecond line \\.");
  EXPECT_EQ(
      p.Value("sluice_node_rows_in_total",
              {{"pipeline", "p1"}, {"node", "src"}, {"type", "generate"}, {"kind", "source"}}),
      1000);
  EXPECT_EQ(
      p.Value(
          "sluice_node_rows_in_total",
          {{"pipeline", "p1"}, {"node", "say \"hi\"\\\nbye"}, {"type", "null"}, {"kind", "sink"}}),
      7);
  EXPECT_EQ(p.Value("sluice_node_utilization_ratio", {{"pipeline", "p1"}, {"node", "src"}}), 0.75);
  EXPECT_EQ(p.Value("sluice_memory_budget_bytes", {}), 1 << 20);

  // Histograms: one set of le bounds per family, cumulative, ending in +Inf == _count.
  const std::map<std::string, std::string> src = {{"pipeline", "p1"}, {"node", "src"}};
  const std::map<std::string, std::string> sink = {{"pipeline", "p1"}, {"node", "sink"}};
  EXPECT_EQ(p.Value("sluice_node_batch_latency_seconds_count", src), 1000);
  EXPECT_DOUBLE_EQ(p.Value("sluice_node_batch_latency_seconds_sum", src), 5.005);
  EXPECT_DOUBLE_EQ(p.Value("sluice_node_batch_latency_seconds_sum", sink), 5005);
  std::map<std::string, std::vector<std::pair<double, double>>> buckets;  // node -> (le, count)
  for (const ParsedSample& s : p.samples) {
    if (s.name != "sluice_node_batch_latency_seconds_bucket") continue;
    const double le = s.labels.at("le") == "+Inf" ? INFINITY : std::stod(s.labels.at("le"));
    buckets[s.labels.at("node")].emplace_back(le, s.value);
  }
  ASSERT_EQ(buckets.size(), 2u);
  const auto& src_buckets = buckets["src"];
  const auto& sink_buckets = buckets["sink"];
  ASSERT_EQ(src_buckets.size(), sink_buckets.size());
  EXPECT_EQ(src_buckets.front().first, 1e-5);
  EXPECT_EQ(src_buckets[src_buckets.size() - 2].first, 10.0);
  EXPECT_LE(src_buckets.size(), 20u);
  for (size_t i = 0; i < src_buckets.size(); ++i) {
    EXPECT_EQ(src_buckets[i].first, sink_buckets[i].first);
    if (i > 0) {
      EXPECT_GE(src_buckets[i].second, src_buckets[i - 1].second);
    }
  }
  EXPECT_EQ(src_buckets.back(), std::make_pair(double{INFINITY}, 1000.0));
  // 10 us steps: exactly 100 values are <= 1 ms, all 1000 are <= 10 ms.
  for (const auto& [le, n] : src_buckets) {
    if (le == 1e-5) {
      EXPECT_EQ(n, 1);
    } else if (le == 1e-3) {
      EXPECT_NEAR(n, 100, 3);  // the bucket around 1 ms straddles the bound
    } else if (le == 1e-2) {
      EXPECT_EQ(n, 1000);
    }
  }
  EXPECT_EQ(p.Value("sluice_empty_seconds_bucket", {{"le", "+Inf"}}), 0);
  EXPECT_EQ(p.Value("sluice_empty_seconds_count", {}), 0);
}

// Returns the path of promtool, or "" when it is not installed.
std::string FindPromtool() {
  if (access("/usr/bin/promtool", X_OK) == 0) return "/usr/bin/promtool";
  const char* path = std::getenv("PATH");
  std::string dirs = path == nullptr ? "" : path;
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    const std::string candidate = dirs.substr(start, end - start) + "/promtool";
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

TEST(ExpositionTest, PromtoolAcceptsTheExposition) {
  const std::string promtool = FindPromtool();
  ASSERT_NE(promtool, "") << "promtool is not installed; run scripts/install-deps";
  MetricsRegistry r;
  Populate(&r);
  r.AddCollector([](CollectorSink& sink) {
    sink.AddCounter("sluice_node_errors_total", "Errors by kind.",
                    {{"node", "sink"}, {"code", "unavailable"}}, 3);
    Histogram h("s", 1e-6);
    h.Record(1500);
    sink.AddHistogram("sluice_node_request_latency_seconds", "One DB query or S3 request.",
                      {{"node", "sink"}}, h.Snapshot());
  });
  const std::string path =
      ::testing::TempDir() + "/observe_promtool_" + std::to_string(getpid()) + ".prom";
  {
    std::ofstream file(path);
    file << r.PrometheusText();
  }
  const std::string command = promtool + " check metrics < " + path + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[512];
  while (size_t n = fread(buf, 1, sizeof(buf), pipe)) output.append(buf, n);
  const int status = pclose(pipe);
  std::remove(path.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << output;
  EXPECT_EQ(output, "");
}

// ---- Collectors ----

TEST(CollectorTest, SamplesAreCombinedWithRegisteredSeries) {
  MetricsRegistry r;
  r.GetCounter("sluice_node_rows_out_total", "Rows sent.", {{"node", "a"}}).Add(10);
  Histogram instance1("rows");
  Histogram instance2("rows");
  instance1.Record(100);
  instance2.Record(300);
  r.AddCollector([&](CollectorSink& sink) {
    // Two instances of one parallel node report under the same labels.
    sink.AddCounter("sluice_node_rows_out_total", "", {{"node", "a"}}, 5);
    sink.AddCounter("sluice_node_rows_out_total", "", {{"node", "a"}}, 1);
    sink.AddGauge("sluice_node_queue_depth", "Batches waiting.", {{"node", "a"}}, 2);
    sink.AddGauge("sluice_node_queue_depth", "Batches waiting.", {{"node", "a"}}, 3);
    sink.AddHistogram("sluice_node_batch_rows", "Rows per batch.", {{"node", "a"}},
                      instance1.Snapshot());
    sink.AddHistogram("sluice_node_batch_rows", "Rows per batch.", {{"node", "a"}},
                      instance2.Snapshot());
  });
  const std::vector<FamilySnapshot> families = r.Collect();
  ASSERT_EQ(families.size(), 3u);
  EXPECT_EQ(families[0].name, "sluice_node_batch_rows");
  EXPECT_EQ(families[1].name, "sluice_node_queue_depth");
  EXPECT_EQ(families[2].name, "sluice_node_rows_out_total");
  EXPECT_EQ(families[2].help, "Rows sent.");
  ASSERT_NE(families[2].Find({{"node", "a"}}), nullptr);
  EXPECT_EQ(families[2].Find({{"node", "a"}})->value, 16);
  EXPECT_EQ(families[1].Find({{"node", "a"}})->value, 5);
  const HistogramSnapshot& h = families[0].Find({{"node", "a"}})->histogram;
  EXPECT_EQ(h.count(), 2);
  EXPECT_EQ(h.sum(), 400);
  EXPECT_EQ(h.min(), 100);
  EXPECT_EQ(h.max(), 300);
  EXPECT_THAT(r.status(), IsOk());
}

TEST(CollectorTest, ConflictingSamplesAreDroppedAndReported) {
  MetricsRegistry r;
  r.GetCounter("sluice_a_total", "A.").Add(1);
  r.AddCollector([](CollectorSink& sink) {
    sink.AddGauge("sluice_a_total", "", {}, 9);
    sink.AddGauge("bad name", "", {}, 9);
  });
  const std::vector<FamilySnapshot> families = r.Collect();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].series.at(0).value, 1);
  EXPECT_THAT(r.status(), StatusIs(StatusCode::kInvalidArgument,
                                   HasSubstr("metric 'sluice_a_total' is a counter; a collector")));
}

TEST(CollectorTest, RemovedCollectorsDoNotRunAndMayRegisterMetrics) {
  MetricsRegistry r;
  int runs = 0;
  const int64_t id = r.AddCollector([&](CollectorSink& sink) {
    ++runs;
    r.GetCounter("sluice_scrapes_total", "Scrapes.").Add(1);  // no deadlock: outside the lock
  });
  r.Collect();
  r.Collect();
  EXPECT_EQ(runs, 2);
  r.RemoveCollector(id);
  r.RemoveCollector(id);  // unknown ids are ignored
  r.Collect();
  EXPECT_EQ(runs, 2);
  EXPECT_EQ(r.GetCounter("sluice_scrapes_total", "").Value(), 2);
}

TEST(CollectorTest, HistogramBoundsOnlyWidenBetweenScrapes) {
  MetricsRegistry r;
  auto current = std::make_shared<Histogram>("rows");
  for (int i = 1000; i <= 2000; ++i) current->Record(i);
  r.AddCollector([&](CollectorSink& sink) {
    sink.AddHistogram("sluice_node_batch_rows", "Rows per batch.", {}, current->Snapshot());
  });
  EXPECT_THAT(r.Collect().at(0).bucket_bounds, ElementsAre(1000.0, 2500.0));
  current = std::make_shared<Histogram>("rows");  // a new run: only small values so far
  current->Record(7);
  EXPECT_THAT(r.Collect().at(0).bucket_bounds,
              ElementsAre(10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0));
  const std::string text = r.PrometheusText();
  EXPECT_THAT(text, HasSubstr("sluice_node_batch_rows_bucket{le=\"2500\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("sluice_node_batch_rows_bucket{le=\"10\"} 1\n"));
}

// ---- JSON ----

TEST(JsonTest, GivesEachMetricWithLabelsAndHistogramSummaries) {
  MetricsRegistry r;
  r.GetCounter("sluice_node_rows_in_total", "Rows.", {{"node", "src"}}).Add(3);
  Histogram& h = r.GetHistogram("sluice_node_batch_latency_seconds", "Batch time.",
                                {{"node", "src"}}, "s", 1e-6);
  for (int i = 1; i <= 100; ++i) h.Record(i * 1000);
  const nlohmann::json j = r.Json();
  ASSERT_EQ(j["metrics"].size(), 2u);
  const nlohmann::json& hist = j["metrics"][0];
  EXPECT_EQ(hist["name"], "sluice_node_batch_latency_seconds");
  EXPECT_EQ(hist["type"], "histogram");
  const nlohmann::json& series = hist["series"][0];
  EXPECT_EQ(series["labels"], nlohmann::json({{"node", "src"}}));
  EXPECT_EQ(series["unit"], "s");
  EXPECT_EQ(series["count"], 100);
  EXPECT_DOUBLE_EQ(series["sum"].get<double>(), 5.05);
  EXPECT_DOUBLE_EQ(series["min"].get<double>(), 0.001);
  EXPECT_DOUBLE_EQ(series["max"].get<double>(), 0.1);
  EXPECT_NEAR(series["p50"].get<double>(), 0.05, 0.05 / 64);
  EXPECT_NEAR(series["p95"].get<double>(), 0.095, 0.095 / 64);
  EXPECT_NEAR(series["p99"].get<double>(), 0.099, 0.099 / 64);
  ASSERT_TRUE(series["buckets"].is_array());
  int64_t total = 0;
  for (const auto& b : series["buckets"]) total += b[1].get<int64_t>();
  EXPECT_EQ(total, 100);
  EXPECT_EQ(series["buckets"][0][0].get<double>(), 0.001);
  EXPECT_EQ(series["buckets"].back()[0].get<double>(), 0.1);

  const nlohmann::json& counter = j["metrics"][1];
  EXPECT_EQ(counter["type"], "counter");
  EXPECT_EQ(counter["help"], "Rows.");
  EXPECT_EQ(counter["series"][0]["value"], 3);
  EXPECT_EQ(counter["series"][0]["labels"]["node"], "src");
}

}  // namespace
}  // namespace sluice::observe
