#include "sluice/transforms/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace sluice {
namespace {

TEST(QuantileSketchTest, WithinOnePercentOfPercentileDisc) {
  std::mt19937_64 rng(11);
  std::lognormal_distribution<double> lognormal(0, 2);
  for (int trial = 0; trial < 3; ++trial) {
    QuantileSketch sk, a, b;
    std::vector<double> values;
    for (int i = 0; i < 5000; ++i) {
      double v = lognormal(rng);
      if (trial == 1 && i % 3 == 0) v = -v;
      if (trial == 2 && i % 7 == 0) v = 0;
      values.push_back(v);
      sk.Add(v);
      (i % 2 == 0 ? a : b).Add(v);
    }
    a.Merge(b);  // merged halves answer like the whole
    std::sort(values.begin(), values.end());
    for (double q : {0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0}) {
      // percentile_disc: the first value with a fraction q of them at or below it.
      const auto n = static_cast<double>(values.size());
      const double exact = values[static_cast<size_t>(std::max(0.0, std::ceil(q * n) - 1))];
      EXPECT_LE(std::abs(sk.Quantile(q) - exact), 0.01 * std::abs(exact) + 1e-12)
          << "trial " << trial << " q " << q;
      EXPECT_EQ(sk.Quantile(q), a.Quantile(q));
    }
  }
  QuantileSketch special;
  for (double v : {std::nan(""), 1.0, std::numeric_limits<double>::infinity(),
                   -std::numeric_limits<double>::infinity()}) {
    special.Add(v);
  }
  EXPECT_EQ(special.Quantile(0), -std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(special.Quantile(1)));  // NaN sorts last, as in PostgreSQL
  EXPECT_TRUE(std::isnan(QuantileSketch().Quantile(0.5)));
}

// 16-bit keys (the form window groups keep their first values in): every key that fits comes
// back as itself, in the same order as the 32-bit keys and the values; those that do not fit
// are the magnitudes past about 1e139 and below 1e-139, and nothing else.
TEST(QuantileSketchTest, ShortKeysKeepKeysAndOrder) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> values = {-inf,    -1e138, -1e6,   -230.5, -1,  -1e-6,
                                -1e-138, 0,      1e-138, 1e-6,   0.5, 1,
                                2,       230.5,  1e6,    1e138,  inf, std::nan("")};
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> exponent(-138, 138);
  for (int i = 0; i < 2000; ++i) {
    const double v = std::pow(10.0, exponent(rng));
    values.push_back(i % 2 == 0 ? v : -v);
  }
  std::vector<std::pair<int32_t, int16_t>> keys;
  for (const double v : values) {
    const int32_t key = QuantileSketch::KeyOf(v);
    int16_t s = 0;
    ASSERT_TRUE(QuantileSketch::ShortKey(key, &s)) << v;
    EXPECT_EQ(QuantileSketch::LongKey(s), key) << v;
    keys.emplace_back(key, s);
  }
  std::sort(keys.begin(), keys.end());
  for (size_t i = 1; i < keys.size(); ++i) {
    EXPECT_EQ(keys[i - 1].first < keys[i].first, keys[i - 1].second < keys[i].second) << i;
  }
  for (const double v : {1e140, -1e140, 1e-140, -1e-140, 1e300, -1e-300, 4.9e-324,
                         std::numeric_limits<double>::max()}) {
    int16_t s = 0;
    EXPECT_FALSE(QuantileSketch::ShortKey(QuantileSketch::KeyOf(v), &s)) << v;
  }
}

// Merging is exact: any split of the values into sketches, merged in any order, answers every
// quantile as the one sketch of them all does (merges of small and large sketches, shared
// buckets, special values, and merges into a sketch whose memory is reused after Clear).
TEST(QuantileSketchTest, MergeOfAnySplitEqualsOneSketch) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> normal(230, 3);
  QuantileSketch acc;
  for (int trial = 0; trial < 200; ++trial) {
    QuantileSketch whole;
    std::vector<QuantileSketch> parts(1 + rng() % 16);
    const int n = static_cast<int>(rng() % 200);
    for (int i = 0; i < n; ++i) {
      double v = normal(rng);
      if (i % 17 == 0) v = -v;
      if (i % 29 == 0) v = std::numeric_limits<double>::infinity();
      if (i % 31 == 0) v = std::nan("");
      whole.Add(v);
      parts[rng() % parts.size()].Add(v);
    }
    acc.Clear();
    if (trial % 2 == 0) {
      for (const auto& p : parts) acc.Merge(p);
    } else {  // the other way round: each part takes the accumulator so far
      for (auto& p : parts) {
        p.Merge(acc);
        acc = p;
      }
    }
    ASSERT_EQ(acc.count(), whole.count());
    for (int k = 0; k <= 100; ++k) {
      const double q = k / 100.0, want = whole.Quantile(q), got = acc.Quantile(q);
      ASSERT_TRUE(got == want || (std::isnan(got) && std::isnan(want)))
          << "trial " << trial << " q " << q << ": " << got << " vs " << want;
    }
  }
}

// Up to kRawMax values a sketch keeps a key per value (four of them in the object), then
// (bucket, count) pairs: around the switch, by Add or by Merge, copied or moved, the answers
// are those of the values' buckets at each rank.
TEST(QuantileSketchTest, RawKeysAndBucketsAnswerAlike) {
  for (int64_t n : {1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 66, 130}) {
    QuantileSketch added, merged, single;
    std::vector<double> values;
    for (int64_t i = 0; i < n; ++i) {
      const double v = static_cast<double>((i * 37) % 23) - 5;  // duplicates, zero, negatives
      values.push_back(v);
      added.Add(v);
      single.Clear();
      single.Add(v);
      merged.Merge(single);
    }
    EXPECT_EQ(added.HeapBytes() == 0, n <= QuantileSketch::kInline) << n;
    QuantileSketch copy(added), moved(std::move(merged)), assigned;
    assigned = copy;
    EXPECT_EQ(merged.count(), 0);  // moved from: empty, usable
    merged.Add(1);
    EXPECT_NEAR(merged.Quantile(0.5), 1, 0.01);
    std::sort(values.begin(), values.end());
    for (int k = 0; k <= 20; ++k) {
      const double q = k / 20.0;
      const double exact =
          values[static_cast<size_t>(std::max(0.0, std::ceil(q * static_cast<double>(n)) - 1))];
      const double got = added.Quantile(q);
      EXPECT_LE(std::abs(got - exact), 0.01 * std::abs(exact)) << n << " q " << q;
      EXPECT_EQ(moved.Quantile(q), got) << n << " q " << q;
      EXPECT_EQ(assigned.Quantile(q), got) << n << " q " << q;
    }
    assigned.Merge(assigned);  // twice every value: the same quantiles
    EXPECT_EQ(assigned.count(), 2 * n);
    EXPECT_EQ(assigned.Quantile(0.5), added.Quantile(0.5)) << n;
  }
}

// Merges of sketches of a few values each (a window built from one-minute slices) copy the
// values inside the object while the sum fits there, and take the general path past it or into
// a sketch whose memory is already on the heap: every way answers as one sketch of all values.
TEST(QuantileSketchTest, SmallMergesAnswerAsOneSketch) {
  constexpr int64_t kMax = QuantileSketch::kInline + 2;
  for (int64_t a = 0; a <= kMax; ++a) {
    for (int64_t b = 0; b <= kMax; ++b) {
      for (const bool reused : {false, true}) {
        QuantileSketch left, right, whole;
        if (reused) {  // memory on the heap from before, values cleared
          for (int i = 0; i < 100; ++i) left.Add(i);
          left.Clear();
          ASSERT_GT(left.HeapBytes(), 0);
        }
        for (int64_t i = 0; i < a + b; ++i) {
          const double v = static_cast<double>((i * 7) % 11) - 3;  // duplicates, zero, negatives
          (i < a ? left : right).Add(v);
          whole.Add(v);
        }
        left.Merge(right);
        ASSERT_EQ(left.count(), a + b);
        if (!reused) {
          EXPECT_EQ(left.HeapBytes() == 0, a + b <= QuantileSketch::kInline) << a << " + " << b;
        }
        for (int k = 0; k <= 20; ++k) {
          const double q = k / 20.0, want = whole.Quantile(q), got = left.Quantile(q);
          ASSERT_TRUE(got == want || (std::isnan(got) && std::isnan(want)))
              << a << " + " << b << (reused ? " reused" : "") << " q " << q;
        }
      }
    }
  }
}

// ValueAtRank answers every rank as the sketch of the value at that rank alone would: the
// smallest and largest from the keys held in the object (slots past the values, left from
// before a Clear, do not count), the others by selection, past kRawMax from the buckets.
TEST(QuantileSketchTest, ValueAtRankIsTheBucketOfTheValueAtThatRank) {
  const double specials[] = {std::numeric_limits<double>::quiet_NaN(),
                             std::numeric_limits<double>::infinity(),
                             -std::numeric_limits<double>::infinity(),
                             0.0,
                             -1e-300,
                             1e300};
  for (int64_t n = 1; n <= QuantileSketch::kRawMax + 6; ++n) {
    for (const bool reused : {false, true}) {
      QuantileSketch sk;
      if (reused) {  // stale keys above and below every value in the object's slots
        for (int i = 0; i < 8; ++i) {
          sk.Add(std::numeric_limits<double>::infinity());
          sk.Add(-std::numeric_limits<double>::infinity());
        }
        sk.Clear();
      }
      std::vector<double> values;
      for (int64_t i = 0; i < n; ++i) {
        const double v =
            i % 9 == 4 ? specials[(i / 9) % 6] : static_cast<double>((i * 37) % 23) - 11;
        values.push_back(v);
        sk.Add(v);
      }
      // Ascending, NaN last (PostgreSQL's order).
      std::sort(values.begin(), values.end(), [](double a, double b) {
        return std::isnan(b) ? !std::isnan(a) : (!std::isnan(a) && a < b);
      });
      for (int64_t r = 0; r < n; ++r) {
        QuantileSketch alone;
        alone.Add(values[static_cast<size_t>(r)]);
        const double want = alone.Quantile(0.5), got = sk.ValueAtRank(r);
        ASSERT_TRUE(got == want || (std::isnan(got) && std::isnan(want)))
            << "n " << n << " rank " << r << (reused ? " reused" : "") << ": " << got << " vs "
            << want;
      }
      for (int k = 0; k <= 20; ++k) {
        const double q = k / 20.0;
        EXPECT_EQ(
            QuantileSketch::Rank(q, n),
            std::max<int64_t>(0, static_cast<int64_t>(std::ceil(q * static_cast<double>(n))) - 1));
      }
    }
  }
}

}  // namespace
}  // namespace sluice
