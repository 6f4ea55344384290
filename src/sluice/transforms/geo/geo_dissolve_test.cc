// dissolve, reproject and make_point.

#include "sluice/engine/ack.h"
#include "sluice/transforms/geo/geo_test_util.h"

namespace sluice::geo::testing {
namespace {

using ::testing::ElementsAre;

double X(std::string_view ewkb) {
  double x = 0;
  GeomPtr g = Parse(ewkb);
  GEOSGeomGetX_r(GeoThread::Get().handle(), g.get(), &x);
  return x;
}
double Y(std::string_view ewkb) {
  double y = 0;
  GeomPtr g = Parse(ewkb);
  GEOSGeomGetY_r(GeoThread::Get().handle(), g.get(), &y);
  return y;
}

TEST(Reproject, Wgs84ToWebMercatorAndBack) {
  Harness there("reproject", {{"to", "EPSG:3857"}});
  ASSERT_OK(there.Run(Features({{1, Ewkb("POINT (10 50)", 4326)}, {2, ""}})));
  const auto mercator = there.Strings("geometry");
  ASSERT_EQ(mercator.size(), 2u);
  EXPECT_NEAR(X(mercator[0]), 1113194.91, 0.01);
  EXPECT_NEAR(Y(mercator[0]), 6446275.84, 0.01);
  EXPECT_EQ(Srid(mercator[0]), 3857);
  EXPECT_EQ(mercator[1], "null");

  Harness back("reproject", {{"to", "EPSG:4326"}});
  ASSERT_OK(back.Run(Features({{1, mercator[0]}})));
  const std::string lonlat = back.Strings("geometry").at(0);
  EXPECT_NEAR(X(lonlat), 10.0, 1e-9);
  EXPECT_NEAR(Y(lonlat), 50.0, 1e-9);
  EXPECT_EQ(Srid(lonlat), 4326);
}

TEST(Reproject, FromOverridesAndKeepsZ) {
  Harness h("reproject", {{"from", "EPSG:4326"}, {"to", "EPSG:3857"}, {"as", "m"}});
  ASSERT_OK(h.Run(Features({{1, Ewkb("LINESTRING Z (10 50 7, 11 51 8)", 0)}})));
  EXPECT_EQ(Wkt(h.Strings("m").at(0), 2),
            "LINESTRING Z (1113194.91 6446275.84 7, 1224514.4 6621293.72 8)");
  EXPECT_EQ(Srid(h.Strings("m").at(0)), 3857);
}

TEST(Reproject, NoFromAndNoSridIsAConfigErrorAtFrom) {
  Harness h("reproject", {{"to", "EPSG:3857"}, {"on_error", "skip"}});
  EXPECT_THAT(h.Run(Features({{1, Ewkb("POINT (10 50)", 0)}})),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'from': the geometry of batch row 0 has no SRID")));
}

TEST(Reproject, AnUnknownSridFollowsOnError) {
  Harness h("reproject", {{"to", "EPSG:3857"}, {"on_error", "skip"}});
  ASSERT_OK(h.Run(Features({{1, Ewkb("POINT (10 50)", 999999)}, {2, Ewkb("POINT (0 0)")}})));
  EXPECT_THAT(h.Ids(), ElementsAre(2));
  EXPECT_EQ(h.Counter("geometry_errors"), 1);
}

BatchPtr Parcels(const std::vector<std::tuple<std::string, std::string, int>>& rows) {
  ColumnBuilder region(TypeId::kString), geometry(TypeId::kGeometry);
  for (const auto& [r, wkt, srid] : rows) {
    region.AppendString(r);
    if (wkt.empty()) {
      geometry.AppendNull();
    } else {
      geometry.AppendString(Ewkb(wkt, srid));
    }
  }
  return Batch::MakeUnchecked(
      MakeSchema({{"region", TypeId::kString}, {"geometry", TypeId::kGeometry}}),
      {region.Finish(), geometry.Finish()}, static_cast<int64_t>(rows.size()));
}

TEST(Dissolve, OverlappingSquaresBecomeOneAreaPerGroupAtTheEnd) {
  Harness h("dissolve", {{"group_by", {"region"}}});
  ASSERT_OK(h.Run(Parcels({{"north", "POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))", 3857},
                           {"south", "POLYGON ((10 10, 11 10, 11 11, 10 11, 10 10))", 3857},
                           {"empty", "", 0}})));
  ASSERT_OK(
      h.t->Process(Parcels({{"north", "POLYGON ((1 1, 3 1, 3 3, 1 3, 1 1))", 3857}}), 0, &h.out));
  EXPECT_TRUE(h.out.rows.empty());  // nothing before the input ends
  ASSERT_OK(h.t->Finish(&h.out));
  ASSERT_EQ(h.out.rows.size(), 1u);
  const BatchPtr& out = h.out.rows[0];
  EXPECT_EQ(out->schema()->ToString(), h.schema->ToString());
  EXPECT_THAT(h.Strings("region"), ElementsAre("north", "south", "empty"));
  const auto g = h.Strings("geometry");
  EXPECT_NEAR(Area(g[0]), 7.0, 1e-12);  // 4 + 4 - the 1x1 overlap
  EXPECT_EQ(GEOSGeomTypeId_r(GeoThread::Get().handle(), Parse(g[0]).get()), GEOS_POLYGON);
  EXPECT_EQ(Srid(g[0]), 3857);
  EXPECT_NEAR(Area(g[1]), 1.0, 1e-12);
  EXPECT_EQ(g[2], "null");
  const Column* count = out->GetColumn("count");
  EXPECT_EQ(count->GetInt64(0), 2);
  EXPECT_EQ(count->GetInt64(1), 1);
  EXPECT_EQ(count->GetInt64(2), 1);
  ASSERT_OK(h.t->Close());
}

TEST(Dissolve, KeyedInstancesGaugesAddUpTheirGroups) {
  // Two instances of one node (partition_by), each holding its own groups: the node's gauges
  // are the sum of what they hold, not the last one's.
  MemoryBudget budget(1 << 20);
  NodeStats stats;
  Harness a("dissolve", {{"group_by", {"region"}}}, &budget, &stats, 0);
  Harness b("dissolve", {{"group_by", {"region"}}}, &budget, &stats, 1);
  std::vector<std::tuple<std::string, std::string, int>> one, many;
  one.emplace_back("r-0", "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))", 3857);
  for (int i = 1; i <= 40; ++i) {
    many.emplace_back(fmt::format("r-{}", i),
                      fmt::format("POLYGON (({0} 0, {1} 0, {1} 1, {0} 1, {0} 0))", i, i + 1), 3857);
  }
  ASSERT_OK(a.Run(Parcels(one)));
  ASSERT_OK(b.Run(Parcels(many)));
  ASSERT_OK(a.t->Process(Parcels(one), 0, &a.out));  // the instance holding less writes last
  EXPECT_EQ(stats.Gauges().at("groups"), 41);
  EXPECT_GT(budget.held(), 0);
  EXPECT_EQ(stats.Gauges().at("state_bytes"), static_cast<double>(budget.held()));
  ASSERT_OK(a.t->Finish(&a.out));
  ASSERT_OK(b.t->Finish(&b.out));
  ASSERT_OK(a.t->Close());
  ASSERT_OK(b.t->Close());
}

TEST(Dissolve, ManyGeometriesUnionAsTheyComeAndHoldTheirAcksUntilEmitted) {
  auto queue = std::make_shared<AckQueue>();
  // A quarter of the budget, 100 kB, is what waits before a union: ~290 squares.
  MemoryBudget budget(400'000);
  Harness h("dissolve", J::object(), &budget);
  std::vector<std::tuple<std::string, std::string, int>> rows;
  // 2,000 unit squares side by side: x from 0 to 2000, one strip of area 2000.
  for (int i = 0; i < 2000; ++i) {
    rows.emplace_back("all", fmt::format("POLYGON (({0} 0, {1} 0, {1} 1, {0} 1, {0} 0))", i, i + 1),
                      4326);
  }
  h.out.input_acks = AckSet(std::make_shared<AckHandle>(queue, 0));
  ASSERT_OK(h.Run(Parcels(rows)));
  h.out.input_acks = AckSet();
  // 2,000 squares read take ~690 kB (estimated); unioned as they came, far less.
  EXPECT_LT(h.stats.Gauges().at("state_bytes"), 300'000);
  EXPECT_EQ(budget.held(), static_cast<int64_t>(h.stats.Gauges().at("state_bytes")));
  std::vector<AckQueue::Event> events;
  queue->Drain(&events, 0);
  EXPECT_TRUE(events.empty());  // held by the node
  ASSERT_OK(h.t->Finish(&h.out));
  ASSERT_EQ(h.out.rows.size(), 1u);
  EXPECT_EQ(h.out.rows[0]->GetColumn("count")->GetInt64(0), 2000);
  EXPECT_NEAR(Area(h.Strings("geometry").at(0)), 2000.0, 1e-9);
  ASSERT_OK(h.t->Close());
  EXPECT_EQ(budget.held(), 0);
  h.out.rows.clear();
  h.out.row_acks.clear();
  queue->Drain(&events, 0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].delivered);
}

TEST(Dissolve, StateOverTheMemoryBudgetFailsTheRun) {
  MemoryBudget budget(100'000);
  Harness h("dissolve", J::object(), &budget);
  std::vector<std::tuple<std::string, std::string, int>> rows;
  for (int i = 0; i < 2000; ++i) {  // disjoint: their union is as large as they are
    rows.emplace_back(
        "all", fmt::format("POLYGON (({0} 0, {1} 0, {1} 1, {0} 1, {0} 0))", 2 * i, 2 * i + 1),
        4326);
  }
  EXPECT_THAT(h.Run(Parcels(rows)), StatusIs(StatusCode::kResourceExhausted,
                                             HasSubstr("more than the run's memory budget")));
  ASSERT_OK(h.t->Close());
  EXPECT_EQ(budget.held(), 0);
}

TEST(Dissolve, AMixOfSridsInAGroupFollowsOnError) {
  Harness h("dissolve", {{"group_by", {"region"}}, {"on_error", "skip"}});
  ASSERT_OK(h.Run(Parcels({{"a", "POINT (0 0)", 4326}, {"a", "POINT (1 1)", 3857}})));
  ASSERT_OK(h.t->Finish(&h.out));
  EXPECT_EQ(h.out.rows.at(0)->GetColumn("count")->GetInt64(0), 1);
  EXPECT_EQ(h.Counter("geometry_errors"), 1);
}

TEST(MakePoint, FromColumnsAndExpressions) {
  ColumnBuilder id(TypeId::kInt64), lon(TypeId::kFloat64), lat(TypeId::kInt64);
  id.AppendInt64(1);
  lon.AppendFloat64(10.5);
  lat.AppendInt64(50);
  id.AppendInt64(2);
  lon.AppendNull();
  lat.AppendInt64(1);
  auto batch = Batch::MakeUnchecked(
      MakeSchema({{"id", TypeId::kInt64}, {"lon", TypeId::kFloat64}, {"lat", TypeId::kInt64}}),
      {id.Finish(), lon.Finish(), lat.Finish()}, 2);
  Harness cols("make_point", {{"x", "lon"}, {"y", "lat"}});
  ASSERT_OK(cols.Run(batch));
  const auto points = cols.Strings("geometry");
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0], Ewkb("POINT (10.5 50)", 4326));  // the bytes GEOS writes
  EXPECT_EQ(points[1], "null");
  EXPECT_EQ(cols.schema->field(3).type, TypeId::kGeometry);

  Harness exprs("make_point", {{"x", "lon + 1"}, {"y", "lat * 2"}, {"srid", 0}, {"as", "p"}});
  ASSERT_OK(exprs.Run(batch));
  EXPECT_EQ(exprs.Strings("p").at(0), Ewkb("POINT (11.5 100)", 0));

  Harness bad("make_point", {{"x", "lon"}, {"y", "'north'"}});
  EXPECT_THAT(bad.Run(batch), StatusIs(StatusCode::kConfigError, HasSubstr("option 'y'")));
}

}  // namespace
}  // namespace sluice::geo::testing
