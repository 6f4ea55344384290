// The window's aggregate functions: SQL semantics (nulls, NaN, infinities, overflow), parsing,
// and the cell layout (shared counts, quantile sketches) through every path that folds, merges
// and writes groups.

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/aggregate.h"
#include "sluice/transforms/transforms.h"
#include "sluice/transforms/window_test_util.h"

namespace sluice {
namespace {

using namespace window_test;  // NOLINT(google-build-using-namespace)

TEST(WindowTest, AggregatesFollowSqlOnNullsNaNAndInfinity) {
  const SchemaPtr schema =
      MakeSchema({{"k", TypeId::kInt64}, {"ts", TypeId::kTimestamp}, {"x", TypeId::kFloat64}});
  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx("w", "window", &stats, &cancelled, false);
  auto t = Registry().Find("window")->make_transform(
      NodeOptions::ForTest("w",
                           {{"time", "ts"},
                            {"group_by", {"k"}},
                            {"size", "1m"},
                            {"aggregates", nlohmann::json::array({{{"c", "count(x)"}},
                                                                  {{"rows", "count()"}},
                                                                  {{"s", "sum(x)"}},
                                                                  {{"lo", "min(x)"}},
                                                                  {{"hi", "max(x)"}},
                                                                  {{"mean", "avg(x)"}},
                                                                  {{"sd", "stddev(x)"}},
                                                                  {{"f", "first(x)"}},
                                                                  {{"l", "last(x)"}}})}},
                           "window"));
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  ASSERT_TRUE((*t)->Open(&ctx).ok());
  // k=1: nulls are skipped; k=2: NaN is above every number (max NaN, min the number), and
  // sums with it are NaN; k=3: infinities; k=null is a group of its own; k=4: only nulls.
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct In {
    std::optional<int64_t> k;
    int64_t ts;
    std::optional<double> x;
  };
  const std::vector<In> in = {{1, 0, {}},   {1, 1, 2.0}, {1, 2, 4.0},  {1, 3, {}},
                              {2, 0, 1.0},  {2, 1, nan}, {2, 2, 3.0},  {3, 0, inf},
                              {3, 1, -inf}, {3, 2, 5.0}, {{}, 0, 8.0}, {4, 0, {}}};
  ColumnBuilder kb(TypeId::kInt64), tb(TypeId::kTimestamp), xb(TypeId::kFloat64);
  for (const auto& r : in) {
    r.k ? kb.AppendInt64(*r.k) : kb.AppendNull();
    tb.AppendTimestamp(r.ts);
    r.x ? xb.AppendFloat64(*r.x) : xb.AppendNull();
  }
  auto batch = Batch::MakeUnchecked(schema, {kb.Finish(), tb.Finish(), xb.Finish()},
                                    static_cast<int64_t>(in.size()));
  Collector out;
  ASSERT_TRUE((*t)->Process(batch, 0, &out).ok());
  ASSERT_TRUE((*t)->Finish(&out).ok());
  ASSERT_EQ(out.rows.size(), 1u);
  const Batch& b = *out.rows[0];
  ASSERT_EQ(b.num_rows(), 5);
  // columns: k, start, end, c, rows, s, lo, hi, mean, sd, f, l, late_rows
  auto row = [&](std::optional<int64_t> key) -> int64_t {
    for (int64_t r = 0; r < b.num_rows(); ++r) {
      if (key ? (b.column(0).IsValid(r) && b.column(0).GetInt64(r) == *key)
              : b.column(0).IsNull(r)) {
        return r;
      }
    }
    ADD_FAILURE() << "no row for the key";
    return 0;
  };
  auto f = [&](int64_t r, int c) { return b.column(c).GetFloat64(r); };
  auto i = [&](int64_t r, int c) { return b.column(c).GetInt64(r); };
  const int64_t r1 = row(1);
  EXPECT_EQ(i(r1, 3), 2);
  EXPECT_EQ(i(r1, 4), 4);
  EXPECT_EQ(f(r1, 5), 6.0);
  EXPECT_EQ(f(r1, 6), 2.0);
  EXPECT_EQ(f(r1, 7), 4.0);
  EXPECT_EQ(f(r1, 8), 3.0);
  EXPECT_NEAR(f(r1, 9), std::sqrt(2.0), 1e-12);
  EXPECT_EQ(f(r1, 10), 2.0);  // the first non-null value by time
  EXPECT_EQ(f(r1, 11), 4.0);
  const int64_t r2 = row(2);
  EXPECT_TRUE(std::isnan(f(r2, 5)));
  EXPECT_EQ(f(r2, 6), 1.0);
  EXPECT_TRUE(std::isnan(f(r2, 7)));
  const int64_t r3 = row(3);
  EXPECT_EQ(f(r3, 6), -inf);
  EXPECT_EQ(f(r3, 7), inf);
  EXPECT_TRUE(std::isnan(f(r3, 5)));  // inf + -inf
  EXPECT_EQ(i(row(std::nullopt), 4), 1);
  const int64_t r4 = row(4);
  EXPECT_EQ(i(r4, 3), 0);
  EXPECT_EQ(i(r4, 4), 1);
  for (int c : {5, 6, 7, 8, 9, 10, 11}) EXPECT_TRUE(b.column(c).IsNull(r4)) << c;
}

TEST(WindowTest, Int64SumOverflowIsAnErrorNotAWrongNumber) {
  Harness h(J{{"size", "5m"}});
  const Status st = h.Push({{"a", 0, 1, std::numeric_limits<int64_t>::max()}, {"a", 1, 1, 1}});
  EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, HasSubstr("overflows int64")));
}

TEST(WindowTest, ParsesAggregatesAsSqlUsersWriteThem) {
  using window_internal::AggKind;
  using window_internal::ParseAggregate;
  auto parsed = [](const std::string& text) {
    auto spec = ParseAggregate("x", text);
    EXPECT_TRUE(spec.ok()) << text << ": " << spec.status().ToString();
    return spec.ok() ? *spec : window_internal::AggSpec();
  };
  EXPECT_EQ(parsed("count(*)").kind, AggKind::kCountRows);
  EXPECT_EQ(parsed(" count( ) ").kind, AggKind::kCountRows);
  EXPECT_EQ(parsed("count(v)").kind, AggKind::kCount);
  EXPECT_EQ(parsed("p5(v)").q, 0.05);
  EXPECT_EQ(parsed("p50(v)").q, 0.5);
  EXPECT_EQ(parsed("p0(v)").q, 0.0);
  EXPECT_EQ(parsed("p999(v)").q, 0.999);
  EXPECT_EQ(parsed("p9999(v)").q, 0.9999);
  EXPECT_EQ(parsed("avg( v )").column, "v");
}

// sum, avg, min and max of one column share one count, and min/max keep none of their own: an
// empty group holds values the first real one replaces. Values equal to those (NaN for a float
// min, -inf for a float max, the int64 extremes) and groups with only nulls must still come out
// as SQL has them, folded row by row, merged, and merged with empty groups.
TEST(WindowTest, AggregatesSharingACountKeepTheirValuesAtTheExtremes) {
  using window_internal::AggLayout;
  using window_internal::AggSpec;
  using window_internal::AggStore;
  using window_internal::ParseAggregate;
  const SchemaPtr schema =
      MakeSchema({{"ts", TypeId::kTimestamp}, {"x", TypeId::kFloat64}, {"n", TypeId::kInt64}});
  std::vector<AggSpec> specs;
  for (const auto& [name, text] :
       std::vector<std::pair<std::string, std::string>>{{"xmin", "min(x)"},
                                                        {"xmax", "max(x)"},
                                                        {"xavg", "avg(x)"},
                                                        {"nmin", "min(n)"},
                                                        {"nsum", "sum(n)"},
                                                        {"nmax", "max(n)"},
                                                        {"xsum", "sum(x)"}}) {
    auto spec = ParseAggregate(name, text);
    ASSERT_TRUE(spec.ok());
    specs.push_back(*spec);
  }
  AggLayout layout;
  ASSERT_TRUE(layout.Bind(specs, *schema, 0).ok());
  EXPECT_EQ(layout.width(), 9);  // 7 values and one count per column
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  // Groups: 0 {x: NaN, n: hi}, 1 {x: -inf, n: lo}, 2 nulls only, 3 {x: -inf, NaN; n: lo, 0}.
  struct In {
    int32_t group;
    std::optional<double> x;
    std::optional<int64_t> n;
  };
  const std::vector<In> in = {{0, nan, hi},  {1, -inf, lo}, {2, {}, {}},
                              {3, -inf, lo}, {3, nan, 0},   {3, {}, {}}};
  ColumnBuilder tb(TypeId::kTimestamp), xb(TypeId::kFloat64), nb(TypeId::kInt64);
  for (const auto& r : in) {
    tb.AppendTimestamp(0);
    r.x ? xb.AppendFloat64(*r.x) : xb.AppendNull();
    r.n ? nb.AppendInt64(*r.n) : nb.AppendNull();
  }
  auto batch = Batch::MakeUnchecked(schema, {tb.Finish(), xb.Finish(), nb.Finish()},
                                    static_cast<int64_t>(in.size()));
  AggStore rows, folded;  // row by row; the same through Update
  std::vector<AggStore*> store_of;
  std::vector<int32_t> group_of;
  for (int g = 0; g < 4; ++g) {
    layout.AddGroup(&rows);
    layout.AddGroup(&folded);
  }
  for (size_t r = 0; r < in.size(); ++r) {
    ASSERT_TRUE(
        layout.UpdateRow(*batch, batch->column(0), static_cast<int64_t>(r), &rows, in[r].group)
            .ok());
    store_of.push_back(&folded);
    group_of.push_back(in[r].group);
  }
  ASSERT_TRUE(layout.Update(*batch, batch->column(0), store_of, group_of).ok());
  // Merged: each group into an empty one and an empty one into each (groups 4..7 are empty).
  AggStore merged;
  for (int g = 0; g < 8; ++g) layout.AddGroup(&merged);
  const int32_t to_first[] = {0, 1, 2, 3};
  ASSERT_TRUE(layout.MergeGroups(&merged, to_first, rows, 4));
  AggStore empty;
  for (int g = 0; g < 4; ++g) layout.AddGroup(&empty);
  ASSERT_TRUE(layout.MergeGroups(&merged, to_first, empty, 4));
  const int32_t to_second[] = {4, 5, 6, 7};
  ASSERT_TRUE(layout.MergeGroups(&merged, to_second, empty, 4));
  for (const AggStore* st : {&rows, &folded, &merged}) {
    auto builders = layout.MakeBuilders(0);
    layout.AppendGroups(*st, 4, &builders);
    std::vector<Column> cols;
    for (auto& b : builders) cols.push_back(b.Finish());
    // xmin xmax xavg nmin nsum nmax xsum
    EXPECT_TRUE(std::isnan(cols[0].GetFloat64(0)));
    EXPECT_TRUE(std::isnan(cols[1].GetFloat64(0)));
    EXPECT_EQ(cols[3].GetInt64(0), hi);
    EXPECT_EQ(cols[5].GetInt64(0), hi);
    EXPECT_EQ(cols[0].GetFloat64(1), -inf);
    EXPECT_EQ(cols[1].GetFloat64(1), -inf);
    EXPECT_EQ(cols[2].GetFloat64(1), -inf);
    EXPECT_EQ(cols[3].GetInt64(1), lo);
    EXPECT_EQ(cols[4].GetInt64(1), lo);
    EXPECT_EQ(cols[5].GetInt64(1), lo);
    for (int c = 0; c < 7; ++c) EXPECT_TRUE(cols[static_cast<size_t>(c)].IsNull(2)) << c;
    EXPECT_EQ(cols[0].GetFloat64(3), -inf);
    EXPECT_TRUE(std::isnan(cols[1].GetFloat64(3)));
    EXPECT_EQ(cols[3].GetInt64(3), lo);
    EXPECT_EQ(cols[4].GetInt64(3), lo);
    EXPECT_EQ(cols[5].GetInt64(3), 0);
    for (int c = 0; c < 7; ++c) EXPECT_TRUE(cols[static_cast<size_t>(c)].IsValid(3)) << c;
  }
  // The empty groups merged with empty ones stay empty: every aggregate null.
  auto builders = layout.MakeBuilders(0);
  for (int32_t g = 4; g < 8; ++g) layout.Append(merged, g, &builders);
  for (auto& b : builders) EXPECT_EQ(b.Finish().null_count(), 4);
}

// A group's quantiles live in its cells (SmallQuantile), and spill to sketches of the store past
// 16 values: with two quantiles among other aggregates, and with quantiles alone, each group's
// answers are its own values' through UpdateRow, Update, Merge, MergeGroups (into groups in
// another order), CopyFrom, Append and AppendGroups.
TEST(WindowTest, QuantileSketchesFollowTheirGroups) {
  using window_internal::AggLayout;
  using window_internal::AggSpec;
  using window_internal::AggStore;
  using window_internal::ParseAggregate;
  const SchemaPtr schema = MakeSchema({{"ts", TypeId::kTimestamp}, {"x", TypeId::kFloat64}});
  for (const bool alone : {false, true}) {
    std::vector<std::pair<std::string, std::string>> texts = {{"lo", "p0(x)"}, {"hi", "p99(x)"}};
    if (!alone) texts.insert(texts.begin() + 1, {"n", "count()"});
    if (!alone) texts.emplace_back("s", "sum(x)");
    std::vector<AggSpec> specs;
    for (const auto& [name, text] : texts) {
      auto spec = ParseAggregate(name, text);
      ASSERT_TRUE(spec.ok());
      specs.push_back(*spec);
    }
    AggLayout layout;
    ASSERT_TRUE(layout.Bind(specs, *schema, 0).ok());
    // Two SmallQuantiles of 5 cells; count, sum and its count.
    EXPECT_EQ(layout.width(), alone ? 10 : 13);
    // Group g gets values 100 g + 1 .. 100 g + 3 + g (more than kInline for g = 14).
    constexpr int kGroups = 16;
    ColumnBuilder tb(TypeId::kTimestamp), xb(TypeId::kFloat64);
    std::vector<AggStore*> store_of;
    std::vector<int32_t> group_of;
    AggStore rows, folded;
    for (int g = 0; g < kGroups; ++g) {
      layout.AddGroup(&rows);
      layout.AddGroup(&folded);
      for (int v = 1; v <= 3 + g; ++v) {
        tb.AppendTimestamp(0);
        xb.AppendFloat64(100.0 * g + v);
        store_of.push_back(&folded);
        group_of.push_back(g);
      }
    }
    auto batch = Batch::MakeUnchecked(schema, {tb.Finish(), xb.Finish()},
                                      static_cast<int64_t>(group_of.size()));
    for (size_t r = 0; r < group_of.size(); ++r) {
      ASSERT_TRUE(
          layout.UpdateRow(*batch, batch->column(0), static_cast<int64_t>(r), &rows, group_of[r])
              .ok());
    }
    ASSERT_TRUE(layout.Update(*batch, batch->column(0), store_of, group_of).ok());
    // Reversed: group g of `rows` into group kGroups - 1 - g, by MergeGroups and by Merge.
    AggStore reversed, merged;
    std::vector<int32_t> dst;
    for (int g = 0; g < kGroups; ++g) {
      layout.AddGroup(&reversed);
      layout.AddGroup(&merged);
      dst.push_back(kGroups - 1 - g);
    }
    ASSERT_TRUE(layout.MergeGroups(&reversed, dst.data(), rows, kGroups));
    for (int g = 0; g < kGroups; ++g) ASSERT_TRUE(layout.Merge(&merged, dst[g], folded, g));
    AggStore copy;
    copy.CopyFrom(reversed);
    for (const AggStore* st : {&rows, &folded, &reversed, &merged, &copy}) {
      const bool rev = st == &reversed || st == &merged || st == &copy;
      auto bulk = layout.MakeBuilders(0), one = layout.MakeBuilders(0);
      layout.AppendGroups(*st, kGroups, &bulk);
      for (int g = 0; g < kGroups; ++g) layout.Append(*st, g, &one);
      for (auto* builders : {&bulk, &one}) {
        std::vector<Column> cols;
        for (auto& b : *builders) cols.push_back(b.Finish());
        const Column& lo = cols[0];
        const Column& hi = cols[alone ? 1 : 2];
        for (int i = 0; i < kGroups; ++i) {
          const int g = rev ? kGroups - 1 - i : i;
          const double first = 100.0 * g + 1, last = 100.0 * g + 3 + g;
          EXPECT_NEAR(lo.GetFloat64(i), first, 0.01 * first) << g;
          EXPECT_NEAR(hi.GetFloat64(i), last, 0.01 * last) << g;
          if (!alone) {
            EXPECT_EQ(cols[1].GetInt64(i), 3 + g) << g;
          }
        }
      }
    }
  }
}

// The inline form and the sketch it spills to answer alike: groups of special values, huge and
// tiny magnitudes (keys past 16 bits spill at once), and up to 40 values (past 16 they spill),
// folded row by row and merged from pieces, give each quantile exactly as a QuantileSketch of
// the same values does.
TEST(WindowTest, SmallQuantilesAnswerAsTheSketch) {
  using window_internal::AggLayout;
  using window_internal::AggSpec;
  using window_internal::AggStore;
  using window_internal::ParseAggregate;
  const SchemaPtr schema = MakeSchema({{"ts", TypeId::kTimestamp}, {"x", TypeId::kFloat64}});
  const std::vector<std::string> qs = {"p0", "p25", "p50", "p95", "p99"};
  std::vector<AggSpec> specs;
  for (const auto& q : qs) {
    auto spec = ParseAggregate(q, q + "(x)");
    ASSERT_TRUE(spec.ok());
    specs.push_back(*spec);
  }
  AggLayout layout;
  ASSERT_TRUE(layout.Bind(specs, *schema, 0).ok());
  const double inf = std::numeric_limits<double>::infinity();
  const std::vector<double> pool = {std::nan(""), inf,   -inf,  0.0,  -0.0, 1e300, -1e300, 1e-300,
                                    5e-324,       230.1, 229.9, -4.5, 1e6,  0.001, 230.1,  17};
  std::mt19937_64 rng(5);
  for (int trial = 0; trial < 300; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 40);
    const bool ordinary = trial % 2 == 0;  // half the groups: values that fit in 16 bits
    std::vector<double> values;
    for (int i = 0; i < n; ++i) {
      values.push_back(ordinary ? 200.0 + static_cast<double>(rng() % 1000) / 10
                                : pool[rng() % pool.size()]);
    }
    ColumnBuilder tb(TypeId::kTimestamp), xb(TypeId::kFloat64);
    for (const double v : values) {
      tb.AppendTimestamp(0);
      xb.AppendFloat64(v);
    }
    auto batch = Batch::MakeUnchecked(schema, {tb.Finish(), xb.Finish()}, n);
    // Folded into one group; and into pieces of a few rows each, merged into another store.
    AggStore whole, pieces, merged;
    layout.AddGroup(&whole);
    layout.AddGroup(&merged);
    std::vector<AggStore*> store_of;
    std::vector<int32_t> group_of;
    int32_t piece = -1;
    for (int r = 0; r < n; ++r) {
      if (piece < 0 || rng() % 4 == 0) piece = layout.AddGroup(&pieces);
      store_of.push_back(&pieces);
      group_of.push_back(piece);
      ASSERT_TRUE(layout.UpdateRow(*batch, batch->column(0), r, &whole, 0).ok());
    }
    ASSERT_TRUE(layout.Update(*batch, batch->column(0), store_of, group_of).ok());
    for (int32_t g = 0; g < pieces.groups; ++g) ASSERT_TRUE(layout.Merge(&merged, 0, pieces, g));
    QuantileSketch sk;
    for (const double v : values) sk.Add(v);
    for (const AggStore* st : {&whole, &merged}) {
      auto one = layout.MakeBuilders(0), bulk = layout.MakeBuilders(0);
      layout.Append(*st, 0, &one);
      layout.AppendGroups(*st, 1, &bulk);
      for (size_t k = 0; k < qs.size(); ++k) {
        const double want = sk.Quantile(specs[k].q);
        for (auto* builders : {&one, &bulk}) {
          const double got = (*builders)[k].Finish().GetFloat64(0);
          if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(got)) << trial << " " << qs[k];
          } else {
            EXPECT_EQ(got, want) << trial << " " << qs[k];
          }
        }
      }
    }
  }
}

// Merging is folding: for every aggregate kind over int64, float64 and timestamp columns (NaN,
// infinities, nulls), rows folded into pieces and merged into one group — by
// Merge and by MergeGroups, in random order, with empty groups — answer as the rows folded
// into one group do (sums, avg and stddev of floats within rounding; the rest exactly); and an
// int64 sum that overflows only when merged is reported.
TEST(WindowTest, MergingPiecesEqualsFoldingTheRows) {
  using window_internal::AggLayout;
  using window_internal::AggSpec;
  using window_internal::AggStore;
  using window_internal::ParseAggregate;
  const SchemaPtr schema = MakeSchema({{"ts", TypeId::kTimestamp},
                                       {"i", TypeId::kInt64},
                                       {"x", TypeId::kFloat64},
                                       {"t", TypeId::kTimestamp}});
  const std::vector<std::pair<std::string, std::string>> texts = {
      {"rows", "count()"}, {"n", "count(x)"},  {"si", "sum(i)"},   {"sx", "sum(x)"},
      {"lo_i", "min(i)"},  {"hi_i", "max(i)"}, {"lo_x", "min(x)"}, {"hi_x", "max(x)"},
      {"lo_t", "min(t)"},  {"hi_t", "max(t)"}, {"avg", "avg(x)"},  {"sd", "stddev(x)"},
      {"f", "first(x)"},   {"l", "last(i)"},   {"p50", "p50(x)"},  {"p95", "p95(i)"}};
  std::vector<AggSpec> specs;
  for (const auto& [name, text] : texts) {
    auto spec = ParseAggregate(name, text);
    ASSERT_TRUE(spec.ok()) << text;
    specs.push_back(*spec);
  }
  AggLayout layout;
  ASSERT_TRUE(layout.Bind(specs, *schema, 0).ok());
  const double inf = std::numeric_limits<double>::infinity();
  std::mt19937_64 rng(17);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = static_cast<int>(rng() % 30);
    ColumnBuilder tb(TypeId::kTimestamp), ib(TypeId::kInt64), xb(TypeId::kFloat64),
        vb(TypeId::kTimestamp);
    for (int r = 0; r < n; ++r) {
      // Distinct times: between rows of equal time first/last keep the one folded first or
      // last, which merging in another order changes.
      tb.AppendTimestamp(static_cast<int64_t>((r * 17) % 31));
      if (rng() % 6 == 0) {
        ib.AppendNull();
      } else {
        ib.AppendInt64(static_cast<int64_t>(rng() % 2001) - 1000);
      }
      switch (rng() % 8) {
        case 0:
          xb.AppendNull();
          break;
        case 1:
          xb.AppendFloat64(std::nan(""));
          break;
        case 2:
          xb.AppendFloat64(rng() % 2 == 0 ? inf : -inf);
          break;
        default:
          xb.AppendFloat64(static_cast<double>(rng() % 100000) / 100 - 500);
      }
      vb.AppendTimestamp(static_cast<int64_t>(rng() % 1000000) - 500000);
    }
    auto batch =
        Batch::MakeUnchecked(schema, {tb.Finish(), ib.Finish(), xb.Finish(), vb.Finish()}, n);
    AggStore whole, pieces, by_one, by_many;
    layout.AddGroup(&whole);
    std::vector<AggStore*> store_of;
    std::vector<int32_t> group_of;
    int32_t piece = -1;
    for (int r = 0; r < n; ++r) {
      ASSERT_TRUE(layout.UpdateRow(*batch, batch->column(0), r, &whole, 0).ok());
      if (piece < 0 || rng() % 3 == 0) piece = layout.AddGroup(&pieces);
      store_of.push_back(&pieces);
      group_of.push_back(piece);
    }
    ASSERT_TRUE(layout.Update(*batch, batch->column(0), store_of, group_of).ok());
    layout.AddGroup(&pieces);  // and an empty piece
    // Merged in a random order: one at a time, and all at once into group 1 of 2.
    std::vector<int32_t> order(static_cast<size_t>(pieces.groups));
    for (size_t k = 0; k < order.size(); ++k) order[k] = static_cast<int32_t>(k);
    std::shuffle(order.begin(), order.end(), rng);
    layout.AddGroup(&by_one);
    for (const int32_t g : order) ASSERT_TRUE(layout.Merge(&by_one, 0, pieces, g));
    layout.AddGroup(&by_many);
    layout.AddGroup(&by_many);
    for (const int32_t g : order) {
      AggStore one;
      layout.AddGroup(&one);
      ASSERT_TRUE(layout.Merge(&one, 0, pieces, g));
      const int32_t to = 1;
      ASSERT_TRUE(layout.MergeGroups(&by_many, &to, one, 1));
    }
    auto want = layout.MakeBuilders(0);
    layout.Append(whole, 0, &want);
    std::vector<Column> w;
    for (auto& b : want) w.push_back(b.Finish());
    for (const auto& [st, g] : {std::pair{&by_one, 0}, std::pair{&by_many, 1}}) {
      auto got_b = layout.MakeBuilders(0);
      layout.Append(*st, g, &got_b);
      for (size_t k = 0; k < specs.size(); ++k) {
        const Column got = got_b[k].Finish();
        const std::string what = "trial " + std::to_string(trial) + " " + specs[k].output;
        ASSERT_EQ(got.IsNull(0), w[k].IsNull(0)) << what;
        if (w[k].IsNull(0)) continue;
        if (layout.specs()[k].output_type != TypeId::kFloat64) {
          EXPECT_EQ(got.GetInt64(0), w[k].GetInt64(0)) << what;
          continue;
        }
        const double a = got.GetFloat64(0), b = w[k].GetFloat64(0);
        if (std::isnan(b) || std::isinf(b)) {
          EXPECT_TRUE(std::isnan(b) ? std::isnan(a) : a == b) << what << ": " << a << " " << b;
        } else {
          EXPECT_NEAR(a, b, 1e-9 * (1 + std::abs(b))) << what;
        }
      }
    }
  }
  // An int64 sum that overflows only once two groups are merged is reported, not wrapped.
  ColumnBuilder tb(TypeId::kTimestamp), ib(TypeId::kInt64), xb(TypeId::kFloat64),
      vb(TypeId::kTimestamp);
  for (int r = 0; r < 2; ++r) {
    tb.AppendTimestamp(0);
    ib.AppendInt64(std::numeric_limits<int64_t>::max() - 1);
    xb.AppendFloat64(1);
    vb.AppendTimestamp(0);
  }
  auto big = Batch::MakeUnchecked(schema, {tb.Finish(), ib.Finish(), xb.Finish(), vb.Finish()}, 2);
  AggStore two, merged;
  layout.AddGroup(&two);
  layout.AddGroup(&two);
  for (int32_t g = 0; g < 2; ++g)
    ASSERT_TRUE(layout.UpdateRow(*big, big->column(0), g, &two, g).ok());
  layout.AddGroup(&merged);
  EXPECT_TRUE(layout.Merge(&merged, 0, two, 0));
  EXPECT_FALSE(layout.Merge(&merged, 0, two, 1));
  AggStore again;
  layout.AddGroup(&again);
  const int32_t both[2] = {0, 0};
  EXPECT_FALSE(layout.MergeGroups(&again, both, two, 2));
}

// The smallest and largest of a group's inline keys (p0 and p99 of up to 16 values: ranks 0
// and n - 1) for every count and every position of the extreme, and groups of only -inf (their
// largest) and only NaN (their smallest).
TEST(WindowTest, InlineQuantileExtremesAtEveryCountAndPosition) {
  using window_internal::AggLayout;
  using window_internal::AggSpec;
  using window_internal::AggStore;
  using window_internal::ParseAggregate;
  const SchemaPtr schema = MakeSchema({{"ts", TypeId::kTimestamp}, {"x", TypeId::kFloat64}});
  std::vector<AggSpec> specs;
  for (const auto& [name, text] : {std::pair{"lo", "p0(x)"}, std::pair{"hi", "p99(x)"}}) {
    auto spec = ParseAggregate(name, text);
    ASSERT_TRUE(spec.ok());
    specs.push_back(*spec);
  }
  AggLayout layout;
  ASSERT_TRUE(layout.Bind(specs, *schema, 0).ok());
  const double inf = std::numeric_limits<double>::infinity();
  auto answers = [&](const std::vector<double>& values) {
    ColumnBuilder tb(TypeId::kTimestamp), xb(TypeId::kFloat64);
    for (const double v : values) {
      tb.AppendTimestamp(0);
      xb.AppendFloat64(v);
    }
    auto batch = Batch::MakeUnchecked(schema, {tb.Finish(), xb.Finish()},
                                      static_cast<int64_t>(values.size()));
    AggStore store;
    layout.AddGroup(&store);
    for (int64_t r = 0; r < batch->num_rows(); ++r) {
      EXPECT_TRUE(layout.UpdateRow(*batch, batch->column(0), r, &store, 0).ok());
    }
    auto builders = layout.MakeBuilders(0);
    layout.AppendGroups(store, 1, &builders);
    return std::pair{builders[0].Finish().GetFloat64(0), builders[1].Finish().GetFloat64(0)};
  };
  for (int n = 1; n <= 16; ++n) {
    for (int at = 0; at < n; ++at) {
      std::vector<double> high(static_cast<size_t>(n), 100.0), low = high;
      high[static_cast<size_t>(at)] = 5000.0;
      low[static_cast<size_t>(at)] = -5000.0;
      // The other end: the rest (100), or with one value that value itself.
      const double high_other = n == 1 ? 5000.0 : 100.0, low_other = n == 1 ? -5000.0 : 100.0;
      EXPECT_NEAR(answers(high).second, 5000.0, 50.0) << n << " " << at;
      EXPECT_NEAR(answers(high).first, high_other, 0.01 * high_other) << n << " " << at;
      EXPECT_NEAR(answers(low).first, -5000.0, 50.0) << n << " " << at;
      EXPECT_NEAR(answers(low).second, low_other, 0.01 * std::abs(low_other)) << n << " " << at;
    }
    EXPECT_EQ(answers(std::vector<double>(static_cast<size_t>(n), -inf)).second, -inf) << n;
    EXPECT_TRUE(
        std::isnan(answers(std::vector<double>(static_cast<size_t>(n), std::nan(""))).first))
        << n;
  }
}

}  // namespace
}  // namespace sluice
