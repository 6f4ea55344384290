#include <cmath>
#include <limits>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/report/chart_internal.h"

namespace sluice::report::internal {
namespace {

using ::testing::DoubleNear;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Pointwise;

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t pos = haystack.find(needle); pos != std::string::npos;
       pos = haystack.find(needle, pos + needle.size())) {
    ++n;
  }
  return n;
}

TEST(EscapeHtmlTest, EscapesMarkupAndQuotes) {
  EXPECT_EQ(EscapeHtml("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
  EXPECT_EQ(EscapeHtml("plain text, ünïcode"), "plain text, ünïcode");
  EXPECT_EQ(EscapeHtml("&amp;"), "&amp;amp;");
}

TEST(SanitizeIdTest, KeepsOnlySafeCharacters) {
  EXPECT_EQ(SanitizeId("s3_archive-2"), "s3_archive-2");
  EXPECT_EQ(SanitizeId("<script>&x y"), "_script__x_y");
}

TEST(WithCommasTest, GroupsThousands) {
  EXPECT_EQ(WithCommas(0), "0");
  EXPECT_EQ(WithCommas(1234567), "1,234,567");
  EXPECT_EQ(WithCommas(-1000), "-1,000");
}

TEST(FormatValueTest, UsesUnitsPeopleRead) {
  EXPECT_EQ(FormatValue(12, Unit::kCount), "12");
  EXPECT_EQ(FormatValue(1500, Unit::kCount), "1.5k");
  EXPECT_EQ(FormatValue(1099621, Unit::kCount), "1.1M");
  EXPECT_EQ(FormatValue(512, Unit::kBytes), "512 B");
  EXPECT_EQ(FormatValue(64.0 * 1024 * 1024, Unit::kBytes), "64 MiB");
  EXPECT_EQ(FormatValue(0.25, Unit::kSeconds), "250 ms");
  EXPECT_EQ(FormatValue(0.0000125, Unit::kSeconds), "12.5 \u00b5s");
  EXPECT_EQ(FormatValue(2.31, Unit::kSeconds), "2.31 s");
  EXPECT_EQ(FormatValue(185, Unit::kSeconds), "3m05s");
  EXPECT_EQ(FormatValue(97.4, Unit::kPercent), "97%");
  EXPECT_EQ(FormatValue(std::numeric_limits<double>::infinity(), Unit::kSeconds), "+Inf");
}

TEST(NiceTicksTest, RoundStepsCoverTheRange) {
  Ticks t = NiceTicks(0, 97, 5);
  EXPECT_THAT(t.values, ElementsAre(0, 20, 40, 60, 80, 100));
  EXPECT_EQ(t.lo, 0);
  EXPECT_EQ(t.hi, 100);
  EXPECT_EQ(t.step, 20);

  t = NiceTicks(0, 1, 5);
  EXPECT_THAT(t.values, Pointwise(DoubleNear(1e-12), {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}));

  t = NiceTicks(13, 87, 4);  // raw step 18.5 -> 20
  EXPECT_THAT(t.values, ElementsAre(0, 20, 40, 60, 80, 100));

  t = NiceTicks(0, 60, 10);  // raw step 6 -> 10
  EXPECT_EQ(t.step, 10);
  EXPECT_EQ(t.values.size(), 7u);

  t = NiceTicks(0, 9, 4);  // raw step 2.25 -> 2.5
  EXPECT_THAT(t.values, ElementsAre(0, 2.5, 5, 7.5, 10));
}

TEST(NiceTicksTest, EmptyOrBadRangesStillGiveTicks) {
  EXPECT_THAT(NiceTicks(0, 0, 5).values,
              Pointwise(DoubleNear(1e-12), {0.0, 0.2, 0.4, 0.6, 0.8, 1.0}));
  const Ticks t = NiceTicks(std::nan(""), 5, 5);
  EXPECT_EQ(t.lo, 0);
  EXPECT_EQ(t.hi, 1);
  EXPECT_GE(NiceTicks(7, 7, 5).values.size(), 2u);
}

TEST(AxisTest, BytesAxisLabelsInOneBinaryUnit) {
  const Axis a = MakeAxis(0, 300.0 * 1024 * 1024, Unit::kBytes, 5);
  EXPECT_EQ(a.suffix, " MiB");
  ASSERT_FALSE(a.ticks.values.empty());
  EXPECT_EQ(a.Label(a.ticks.values[0]), "0 MiB");
  EXPECT_EQ(a.Label(a.ticks.values[1]), "100 MiB");
  EXPECT_EQ(a.Label(a.ticks.values.back()), "300 MiB");
}

TEST(AxisTest, SecondsAndCountsAxes) {
  const Axis ms = MakeAxis(0, 0.25, Unit::kSeconds, 5);
  EXPECT_EQ(ms.suffix, " ms");
  EXPECT_EQ(ms.Label(ms.ticks.values[1]), "50 ms");
  const Axis k = MakeAxis(0, 25000, Unit::kCount, 5);
  EXPECT_EQ(k.suffix, "k");
  EXPECT_EQ(k.Label(k.ticks.values.back()), "25k");
  const Axis plain = MakeAxis(0, 2000, Unit::kCount, 4);
  EXPECT_EQ(plain.suffix, "");
  EXPECT_EQ(plain.Label(plain.ticks.values[1]), "500");
  const Axis pct = MakeAxis(0, 180, Unit::kPercent, 5);
  EXPECT_EQ(pct.Label(pct.ticks.values[1]), "50%");
}

TEST(LinearScaleTest, MapsDomainOntoRange) {
  const LinearScale ys(0, 100, 300, 100);  // SVG y grows downwards.
  EXPECT_DOUBLE_EQ(ys(0), 300);
  EXPECT_DOUBLE_EQ(ys(50), 200);
  EXPECT_DOUBLE_EQ(ys(100), 100);
  EXPECT_DOUBLE_EQ(LinearScale(5, 5, 0, 10)(5), 5);
}

RunReport Graph(const std::vector<std::pair<std::string, std::vector<std::string>>>& nodes) {
  RunReport r;
  for (const auto& [id, inputs] : nodes) {
    NodeReport n;
    n.id = id;
    n.inputs = inputs;
    r.nodes.push_back(n);
  }
  return r;
}

TEST(LayoutDagTest, DiamondHasThreeLayers) {
  const RunReport r = Graph({{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}});
  const DagLayout d = LayoutDag(r);
  EXPECT_TRUE(d.has_edges);
  ASSERT_EQ(d.layers.size(), 3u);
  EXPECT_THAT(d.layers[0], ElementsAre(0));
  EXPECT_THAT(d.layers[1], ElementsAre(1, 2));
  EXPECT_THAT(d.layers[2], ElementsAre(3));
  EXPECT_EQ(d.edges.size(), 4u);
}

TEST(LayoutDagTest, NodeGoesRightOfItsDeepestInput) {
  // d is listed first; c has a short and a long path from a.
  const RunReport r = Graph({{"d", {"c"}}, {"c", {"a", "b"}}, {"b", {"a"}}, {"a", {}}});
  const DagLayout d = LayoutDag(r);
  EXPECT_THAT(d.layer_of, ElementsAre(3, 2, 1, 0));
}

TEST(LayoutDagTest, OrdersLayersToAvoidCrossings) {
  // x feeds q, y feeds p: the second layer is reordered to (q, p).
  const RunReport r = Graph({{"x", {}}, {"y", {}}, {"p", {"y"}}, {"q", {"x"}}});
  const DagLayout d = LayoutDag(r);
  ASSERT_EQ(d.layers.size(), 2u);
  EXPECT_THAT(d.layers[1], ElementsAre(3, 2));
}

TEST(LayoutDagTest, CyclesAndUnknownInputsDoNotBreakTheLayout) {
  const RunReport r = Graph({{"s", {}}, {"x", {"s", "y"}}, {"y", {"x"}}, {"z", {"nope", "z"}}});
  const DagLayout d = LayoutDag(r);
  EXPECT_EQ(d.layer_of.size(), 4u);
  EXPECT_EQ(d.edges.size(), 3u);  // s->x, y->x, x->y; "nope" and the self-loop dropped.
  size_t placed = 0;
  for (const auto& layer : d.layers) placed += layer.size();
  EXPECT_EQ(placed, 4u);
}

TEST(LayoutDagTest, V1ReportIsLaidOutByKind) {
  RunReport r;
  for (const char* kind : {"sink", "source"}) {
    NodeReport n;
    n.id = kind;
    n.kind = kind;
    r.nodes.push_back(n);
  }
  const DagLayout d = LayoutDag(r);
  EXPECT_FALSE(d.has_edges);
  EXPECT_THAT(d.layer_of, ElementsAre(1, 0));  // The empty transform layer is dropped.
  EXPECT_TRUE(d.edges.empty());
}

TEST(LineChartTest, DrawsAxesLegendAndOnePathPerSeriesWithGaps) {
  LineChart c;
  c.id = "chart-x";
  c.title = "Things <per> second";
  c.y_label = "rows/s";
  const double nan = std::nan("");
  c.series.push_back({"a & b", {1, 2, 3, 4, 5}, {10, 20, nan, 40, 50}, "#123456", false});
  c.series.push_back({"limit", {1, 5}, {60, 60}, "#654321", true});
  const std::string svg = RenderLineChart(c);
  EXPECT_THAT(svg, HasSubstr("<svg id=\"chart-x\""));
  EXPECT_THAT(svg, HasSubstr("<title id=\"chart-x-title\">Things &lt;per&gt; second</title>"));
  EXPECT_THAT(svg, HasSubstr(">a &amp; b</text>"));
  EXPECT_EQ(Count(svg, "<path class=\"series\""), 2u);
  // The NaN splits the first series into two sub-paths.
  const size_t first = svg.find("<path class=\"series\" d=\"");
  const std::string d = svg.substr(first, svg.find('"', first + 24) - first);
  EXPECT_EQ(Count(d, "M"), 2u);
  EXPECT_THAT(svg, HasSubstr("stroke-dasharray=\"6 4\""));
  EXPECT_THAT(svg, HasSubstr(">60</text>"));   // A y tick label.
  EXPECT_THAT(svg, HasSubstr(">5 s</text>"));  // An x tick label.
  EXPECT_THAT(svg, HasSubstr("time since start"));
}

TEST(HistogramChartTest, TrimsEmptyBucketsAndMarksPercentiles) {
  HistogramReport h;
  h.unit = "s";
  h.count = 10;
  h.p50 = 0.3;
  h.p95 = 0.9;
  h.p99 = 2;
  h.max = 2;
  h.buckets = {{0.1, 0},
               {0.25, 2},
               {0.5, 5},
               {1, 2},
               {2.5, 1},
               {5, 0},
               {std::numeric_limits<double>::infinity(), 0}};
  const std::string svg = RenderHistogram("chart-hist-n-batch_latency", "n", "time per batch", h);
  EXPECT_EQ(Count(svg, "<rect class=\"bucket\""), 4u);
  EXPECT_THAT(svg, HasSubstr(">p50 300 ms</text>"));
  EXPECT_THAT(svg, HasSubstr(">p95 900 ms</text>"));
  EXPECT_THAT(svg, HasSubstr(">p99 2 s</text>"));
  EXPECT_THAT(svg, HasSubstr("<title>250 ms \u2013 500 ms: 5</title>"));
  EXPECT_THAT(svg, HasSubstr(">100 ms</text>"));  // The first bar's lower edge.
}

TEST(HistogramChartTest, ManyBucketsAreMerged) {
  HistogramReport h;
  h.count = 200;
  for (int i = 1; i <= 200; ++i) h.buckets.emplace_back(i, 1);
  const std::string svg = RenderHistogram("chart-h", "h", "x", h);
  EXPECT_EQ(Count(svg, "<rect class=\"bucket\""), 40u);
  EXPECT_THAT(svg, HasSubstr("<title>0 \u2013 5: 5</title>"));
}

TEST(HistogramChartTest, NoSamples) {
  HistogramReport h;
  h.buckets = {{1, 0}, {2, 0}};
  const std::string svg = RenderHistogram("chart-h", "h", "x", h);
  EXPECT_THAT(svg, HasSubstr("no samples"));
  EXPECT_THAT(svg, Not(HasSubstr("class=\"marker\"")));
}

TEST(StackedBarsTest, OneRectPerPartInPartOrderColours) {
  const std::string svg = RenderStackedBars(
      "chart-phases", "Phases", {{"a", {{"query", 2}, {"delete", 1}}}, {"b", {{"upload", 3}}}},
      {"query", "upload", "delete"}, Unit::kSeconds);
  EXPECT_EQ(Count(svg, "<rect x="), 3u + 3u);  // 3 segments + 3 legend boxes.
  EXPECT_THAT(svg, HasSubstr("<title>a \u00b7 query: 2 s (67%)</title>"));
  EXPECT_THAT(svg, HasSubstr(">3 s</text>"));  // Totals.
  EXPECT_THAT(svg,
              HasSubstr(std::string("fill=\"") + SeriesColor(2) + "\"><title>a \u00b7 delete"));
}

TEST(DagChartTest, HighlightsTheBottleneckAndDrawsArrows) {
  RunReport r = Graph({{"a", {}}, {"b", {"a"}}, {"c", {"a"}}, {"d", {"b", "c"}}});
  r.nodes[3].kind = "sink";
  r.nodes[3].rows_in = 1500000;
  r.nodes[3].utilization = 0.97;
  const std::string svg = RenderDag(r, LayoutDag(r), "d");
  EXPECT_THAT(svg, HasSubstr("<svg id=\"chart-dag\""));
  EXPECT_EQ(Count(svg, "<path class=\"edge\""), 4u);
  EXPECT_EQ(Count(svg, "marker-end=\"url(#dag-arrow)\""), 4u);
  EXPECT_EQ(Count(svg, "class=\"node bottleneck\""), 1u);
  EXPECT_THAT(svg, HasSubstr("1.5M rows \u00b7 util 97%"));
}

}  // namespace
}  // namespace sluice::report::internal
