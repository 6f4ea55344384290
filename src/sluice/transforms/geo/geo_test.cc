// The geo transforms that map rows one by one (buffer, simplify, centroid, area, length,
// is_valid, make_valid), the filters, on_error and option errors.

#include <cmath>
#include <numbers>
#include <random>
#include <thread>

#include "sluice/transforms/geo/ewkb.h"
#include "sluice/transforms/geo/geo_test_util.h"

namespace sluice::geo::testing {
namespace {

using ::testing::ElementsAre;

double RegularPolygonArea(double r, int n) {
  return r * r * n / 2.0 * std::sin(2 * std::numbers::pi / n);
}

TEST(Buffer, PointIsTheRegularPolygonOfFourTimesQuadrantSegmentsSidesWithItsSrid) {
  for (int qs : {1, 2, 8, 16}) {
    Harness h("buffer", {{"distance", 2.5}, {"quadrant_segments", qs}});
    ASSERT_OK(h.status);
    ASSERT_OK(h.Run(Features({{1, Ewkb("POINT (10 50)", 4326)}, {2, Ewkb("POINT (0 0)", 3857)}})));
    const auto out = h.Strings("geometry");
    ASSERT_EQ(out.size(), 2u);
    EXPECT_NEAR(Area(out[0]), RegularPolygonArea(2.5, 4 * qs), 1e-9) << qs;
    EXPECT_EQ(Srid(out[0]), 4326);
    EXPECT_EQ(Srid(out[1]), 3857);
  }
}

TEST(Buffer, DegreesAreWarnedAboutOncePerNodeWhateverItsInstances) {
  // Two instances of one node (as a segment's workers run it) share the node's stats: a
  // distance of 100 on EPSG:4326 is warned about once, not once per instance.
  Harness first("buffer", {{"distance", 100}});
  Harness second("buffer", {{"distance", 100}});
  ASSERT_OK(first.status);
  ASSERT_OK(second.status);
  NodeContext shared("g", "buffer", &first.stats, &first.cancelled, false);
  ASSERT_OK(second.t->Open(&shared));
  ::testing::internal::CaptureStderr();
  ASSERT_OK(first.Run(Features({{1, Ewkb("POINT (10 50)", 4326)}})));
  ASSERT_OK(second.Run(Features({{2, Ewkb("POINT (11 51)", 4326)}})));
  const std::string err = ::testing::internal::GetCapturedStderr();
  size_t warnings = 0;
  for (size_t at = err.find("whose units are degrees"); at != std::string::npos;
       at = err.find("whose units are degrees", at + 1)) {
    ++warnings;
  }
  EXPECT_EQ(warnings, 1u) << err;
}

TEST(Buffer, PointsMadeWithoutGeosAreTheBytesGeosMakes) {
  GeoThread& geo = GeoThread::Get();
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> coord(-1e6, 1e6), radius(1e-3, 1e4);
  for (int qs : {1, 3, 8, 30}) {
    const CircleTemplate circle(qs);
    for (int i = 0; i < 200; ++i) {
      const double x = coord(rng), y = coord(rng), r = radius(rng);
      const int srid = i % 2 == 0 ? 4326 : 0;
      GeomPtr p = geo.Own(GEOSGeom_createPointFromXY_r(geo.handle(), x, y));
      GEOSSetSRID_r(geo.handle(), p.get(), srid);
      GeomPtr b = geo.Own(GEOSBuffer_r(geo.handle(), p.get(), r, qs));
      GEOSSetSRID_r(geo.handle(), b.get(), srid);
      ColumnBuilder want(TypeId::kGeometry);
      ASSERT_TRUE(geo.Write(b.get(), 2, &want));
      std::string got;
      circle.AppendEwkb(x, y, r, srid, &got);
      ASSERT_EQ(got, want.Finish().GetView(0)) << "qs " << qs << " point " << x << " " << y;
    }
  }
}

TEST(Buffer, ACircleTooSmallForItsCoordinatesIsGeossEmptyPolygon) {
  Harness h("buffer", {{"distance", 1e-12}});
  ASSERT_OK(h.Run(Features({{1, Ewkb("POINT (1000000 1000000)")}, {2, Ewkb("POINT (0 0)")}})));
  const auto out = h.Strings("geometry");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Wkt(out[0]), "POLYGON EMPTY");
  EXPECT_NEAR(Area(out[1]), RegularPolygonArea(1e-12, 32), 1e-30);
}

TEST(Buffer, BigEndianAndIsoInputGoesThroughGeosWithTheSameResult) {
  // POINT(1 2) big-endian with SRID 4326, written by hand.
  const std::string big(
      "\x00\x20\x00\x00\x01\x00\x00\x10\xe6\x3f\xf0\x00\x00\x00\x00\x00\x00"
      "\x40\x00\x00\x00\x00\x00\x00\x00",
      25);
  Point2D p;
  ASSERT_TRUE(ReadPoint2D(big, &p));
  EXPECT_EQ(p.x, 1.0);
  EXPECT_EQ(p.y, 2.0);
  EXPECT_EQ(p.srid, 4326);
  Harness h("buffer", {{"distance", 1.0}});
  ASSERT_OK(h.Run(Features({{1, big}, {2, Ewkb("POINT Z (1 2 3)")}})));
  const auto out = h.Strings("geometry");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0], out[1]);  // the Z point's buffer is 2-D, like GEOS's
  EXPECT_EQ(Srid(out[0]), 4326);
}

TEST(Buffer, FlatCapOnALineIsARectangle) {
  Harness flat("buffer", {{"distance", 1.0}, {"cap_style", "flat"}});
  ASSERT_OK(flat.Run(Features({{1, Ewkb("LINESTRING (0 0, 10 0)", 32632)}})));
  const std::string g = flat.Strings("geometry").at(0);
  EXPECT_NEAR(Area(g), 20.0, 1e-9);
  EXPECT_EQ(Wkt(g), "POLYGON ((10 1, 10 -1, 0 -1, 0 1, 10 1))");
  EXPECT_EQ(Srid(g), 32632);
  Harness square("buffer", {{"distance", 1.0}, {"cap_style", "square"}});
  ASSERT_OK(square.Run(Features({{1, Ewkb("LINESTRING (0 0, 10 0)", 32632)}})));
  EXPECT_NEAR(Area(square.Strings("geometry").at(0)), 24.0, 1e-9);
}

TEST(Buffer, DistanceExprPerRowAndNullDistanceGivesNull) {
  ColumnBuilder id(TypeId::kInt64), geometry(TypeId::kGeometry), radius(TypeId::kFloat64);
  for (int i = 1; i <= 3; ++i) {
    id.AppendInt64(i);
    geometry.AppendString(Ewkb(fmt::format("POINT ({} 0)", i * 100)));
  }
  radius.AppendFloat64(1);
  radius.AppendFloat64(3);
  radius.AppendNull();
  auto batch = Batch::MakeUnchecked(
      MakeSchema(
          {{"id", TypeId::kInt64}, {"geometry", TypeId::kGeometry}, {"radius", TypeId::kFloat64}}),
      {id.Finish(), geometry.Finish(), radius.Finish()}, 3);
  Harness h("buffer", {{"distance_expr", "radius * 2"}, {"as", "zone"}});
  ASSERT_OK(h.Run(batch));
  const auto zones = h.Strings("zone");
  ASSERT_EQ(zones.size(), 3u);
  EXPECT_NEAR(Area(zones[0]), RegularPolygonArea(2, 32), 1e-9);
  EXPECT_NEAR(Area(zones[1]), RegularPolygonArea(6, 32), 1e-9);
  EXPECT_EQ(zones[2], "null");
  EXPECT_EQ(Wkt(h.Strings("geometry").at(0)), "POINT (100 0)");  // kept beside `as`
}

TEST(Simplify, ReducesVerticesAndStaysValid) {
  // A 720-gon with every other vertex pushed out by 0.01: a jagged circle.
  std::string wkt = "POLYGON ((";
  for (int i = 0; i <= 720; ++i) {
    const double a = 2 * std::numbers::pi * (i % 720) / 720.0, r = 100 + (i % 2) * 0.01;
    wkt += fmt::format("{}{} {}", i == 0 ? "" : ", ", r * std::cos(a), r * std::sin(a));
  }
  wkt += "))";
  Harness h("simplify", {{"tolerance", 1.0}});
  ASSERT_OK(h.Run(Features({{1, Ewkb(wkt, 2154)}})));
  GeoThread& geo = GeoThread::Get();
  GeomPtr g = Parse(h.Strings("geometry").at(0));
  const int vertices = GEOSGetNumCoordinates_r(geo.handle(), g.get());
  EXPECT_LT(vertices, 100);
  EXPECT_GT(vertices, 4);
  EXPECT_EQ(GEOSisValid_r(geo.handle(), g.get()), 1);
  EXPECT_EQ(GEOSGetSRID_r(geo.handle(), g.get()), 2154);
}

TEST(Centroid, OfASquareIsItsCenter) {
  Harness h("centroid", J::object());
  ASSERT_OK(h.Run(Features({{1, Ewkb("POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0))", 3857)}, {2, ""}})));
  const auto out = h.Strings("geometry");
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(Wkt(out[0]), "POINT (2 2)");
  EXPECT_EQ(Srid(out[0]), 3857);
  EXPECT_EQ(out[1], "null");  // a null geometry passes as null
}

TEST(Measure, AreaAndLengthOfKnownShapes) {
  auto batch = Features({{1, Ewkb("POLYGON ((0 0, 4 0, 4 4, 0 4, 0 0))")},
                         {2, Ewkb("LINESTRING (0 0, 3 4)")},
                         {3, ""}});
  Harness area("area", J::object());
  ASSERT_OK(area.Run(batch));
  Harness length("length", {{"as", "perimeter"}});
  ASSERT_OK(length.Run(batch));
  const BatchPtr& a = area.out.rows.at(0);
  const BatchPtr& l = length.out.rows.at(0);
  EXPECT_EQ(a->GetColumn("area")->GetFloat64(0), 16.0);
  EXPECT_EQ(a->GetColumn("area")->GetFloat64(1), 0.0);
  EXPECT_TRUE(a->GetColumn("area")->IsNull(2));
  EXPECT_EQ(l->GetColumn("perimeter")->GetFloat64(0), 16.0);
  EXPECT_EQ(l->GetColumn("perimeter")->GetFloat64(1), 5.0);
  EXPECT_EQ(area.schema->field(2).type, TypeId::kFloat64);
}

TEST(IsValid, BowTieIsInvalidWithItsReasonAndMakeValidRepairsIt) {
  const std::string bow_tie = Ewkb("POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))", 4326);
  auto batch = Features({{1, bow_tie}, {2, Ewkb("POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))", 4326)}});
  Harness check("is_valid", {{"reason_as", "why"}});
  ASSERT_OK(check.Run(batch));
  const BatchPtr& out = check.out.rows.at(0);
  EXPECT_FALSE(out->GetColumn("is_valid")->GetBool(0));
  EXPECT_TRUE(out->GetColumn("is_valid")->GetBool(1));
  EXPECT_THAT(check.Strings("why"), ElementsAre("Self-intersection[1 1]", "null"));

  Harness fix("make_valid", J::object());
  ASSERT_OK(fix.Run(batch));
  const auto fixed = fix.Strings("geometry");
  GeoThread& geo = GeoThread::Get();
  GeomPtr g = Parse(fixed.at(0));
  EXPECT_EQ(GEOSisValid_r(geo.handle(), g.get()), 1);
  EXPECT_NEAR(Area(fixed[0]), 2.0, 1e-12);  // two triangles of area 1
  EXPECT_EQ(GEOSGeomTypeId_r(geo.handle(), g.get()), GEOS_MULTIPOLYGON);
  EXPECT_EQ(Srid(fixed[0]), 4326);
  EXPECT_EQ(Wkt(fixed[1]), "POLYGON ((0 0, 1 0, 1 1, 0 1, 0 0))");
}

TEST(Filters, BboxFilterKeepsTheRowsWhoseEnvelopeMeetsTheBox) {
  auto batch = Features({{1, Ewkb("POINT (1 1)")},
                         {2, Ewkb("POINT (5 5)")},
                         {3, Ewkb("LINESTRING (-5 -5, -1 0.5)")},  // envelope reaches in
                         {4, Ewkb("POLYGON ((3 3, 4 3, 4 4, 3 4, 3 3))")},
                         {5, ""},
                         {6, Ewkb("POINT (2 0)")},  // on the edge
                         {7, Ewkb("POINT EMPTY")}});
  Harness h("bbox_filter", {{"xmin", -1}, {"ymin", 0}, {"xmax", 2}, {"ymax", 2}});
  ASSERT_OK(h.Run(batch));
  EXPECT_THAT(h.Ids(), ElementsAre(1, 3, 6));
  EXPECT_NE(h.t->LossyBecause(), "");
}

TEST(Filters, IntersectsKeepsTheRowsMeetingTheGeometry) {
  auto batch = Features({{1, Ewkb("POINT (1 1)")},
                         {2, Ewkb("POINT (5 5)")},
                         {3, Ewkb("LINESTRING (-5 -5, -1 0.5)")},  // envelope only
                         {4, Ewkb("LINESTRING (-1 1, 3 1)")},      // crosses
                         {5, ""},
                         {6, Ewkb("POINT (2 0)")}});  // on the boundary
  Harness h("intersects", {{"wkt", "POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))"}});
  ASSERT_OK(h.Run(batch));
  EXPECT_THAT(h.Ids(), ElementsAre(1, 4, 6));
}

TEST(Filters, IntersectsTakesEwktAndRefusesRowsOfAnotherCrs) {
  // sluice writes EWKT; a shape with an SRID is compared only with rows in that CRS.
  Harness same("intersects", {{"wkt", "SRID=4326;POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))"}});
  ASSERT_OK(same.Run(Features({{1, Ewkb("POINT (1 1)")}, {2, Ewkb("POINT (5 5)")}})));
  EXPECT_THAT(same.Ids(), ElementsAre(1));
  Harness other("intersects", {{"wkt", "SRID=3857;POLYGON ((0 0, 2 0, 2 2, 0 2, 0 0))"}});
  EXPECT_THAT(other.Run(Features({{1, Ewkb("POINT (1 1)")}})),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("the row's geometry is in EPSG:4326, `wkt` in EPSG:3857")));
}

TEST(OnError, MalformedWkbFailsNamingTheRowAndItsId) {
  auto batch = Features({{7, Ewkb("POINT (1 1)")}, {42, std::string("\x01\x02\x03", 3)}});
  Harness h("centroid", {{"id_column", "id"}});
  EXPECT_THAT(h.Run(batch),
              StatusIs(StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("node 'g'"), HasSubstr("batch row 1 (id = 42)"),
                                        HasSubstr("not WKB/EWKB (3 bytes)"))));
  EXPECT_EQ(h.Counter("geometry_errors"), 1);
}

TEST(OnError, SkipDropsAndCountsAndDeadLetterRoutesTheRow) {
  auto batch = Features({{7, Ewkb("POINT (1 1)")},
                         {42, std::string("\x01\x02\x03", 3)},
                         {43, Ewkb("POLYGON ((0 0, 2 2, 2 0, 0 2, 0 0))")}});
  Harness skip("buffer", {{"distance", 1.0}, {"on_error", "skip"}, {"validate", true}});
  ASSERT_OK(skip.Run(batch));
  EXPECT_THAT(skip.Ids(), ElementsAre(7));
  EXPECT_EQ(skip.Counter("geometry_errors"), 2);
  EXPECT_EQ(skip.stats.discarded_rows.load(), 2);

  Harness dead("buffer", {{"distance", 1.0}, {"on_error", "dead_letter"}, {"id_column", "id"}});
  ASSERT_OK(dead.Run(batch));
  EXPECT_THAT(dead.Ids(), ElementsAre(7, 43));  // without validate a bow-tie is buffered
  BatchPtr letters = dead.ctx.dead_letters()->Take();
  ASSERT_NE(letters, nullptr);
  ASSERT_EQ(letters->num_rows(), 1);
  EXPECT_EQ(letters->GetColumn("position")->GetView(0), "row 1");
  EXPECT_THAT(std::string(letters->GetColumn("error")->GetView(0)),
              HasSubstr("batch row 1 (id = 42): column 'geometry' is not WKB/EWKB"));
  EXPECT_THAT(std::string(letters->GetColumn("record")->GetView(0)), HasSubstr("\"id\":42"));
  EXPECT_EQ(dead.Counter("geometry_errors"), 1);
}

TEST(Options, BadOptionsAreConfigErrorsAtTheOption) {
  auto error = [](const std::string& type, J options) {
    Harness h(type, std::move(options));
    return h.status;
  };
  EXPECT_THAT(error("buffer", {{"distance", 1}, {"cap_style", "butt"}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'cap_style': must be one of round, flat, square")));
  EXPECT_THAT(error("buffer", {{"distance", 1}, {"quadrant_segments", -2}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'quadrant_segments'")));
  EXPECT_THAT(error("buffer", {{"distance", 1}, {"distance_expr", "r"}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'distance_expr': give either `distance` or")));
  EXPECT_THAT(error("buffer", J::object()),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'distance': is required")));
  EXPECT_THAT(error("intersects", {{"wkt", "POLYGON ((0 0, 1"}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'wkt': WKT: expected a position (two or more numbers)")));
  EXPECT_THAT(error("reproject", {{"to", "EPSG:999999"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'to'")));
  EXPECT_THAT(error("bbox_filter", {{"xmin", 2}, {"ymin", 0}, {"xmax", 1}, {"ymax", 1}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'xmax'")));

  Harness h("area", {{"column", "shape"}});
  EXPECT_THAT(h.Run(Features({{1, Ewkb("POINT (0 0)")}})),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'column': no column 'shape' in the input")));
  Harness e("buffer", {{"distance_expr", "id || 'x'"}});
  EXPECT_THAT(e.Run(Features({{1, Ewkb("POINT (0 0)")}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'distance_expr'")));
}

TEST(Threads, EachThreadUsesItsOwnContextWithTheSameResults) {
  std::vector<std::pair<int64_t, std::string>> rows;
  for (int i = 0; i < 500; ++i) {
    rows.emplace_back(i, Ewkb(i % 2 == 0 ? fmt::format("POINT ({} {})", i, -i)
                                         : fmt::format("LINESTRING (0 0, {} 1)", i + 1)));
  }
  const BatchPtr batch = Features(rows);
  Harness a("buffer", {{"distance", 3.0}}), b("buffer", {{"distance", 3.0}});
  Status sa, sb;
  std::thread ta([&] { sa = a.Run(batch); }), tb([&] { sb = b.Run(batch); });
  ta.join();
  tb.join();
  ASSERT_OK(sa);
  ASSERT_OK(sb);
  EXPECT_EQ(a.Strings("geometry"), b.Strings("geometry"));
  EXPECT_NEAR(Area(a.Strings("geometry")[0]), RegularPolygonArea(3, 32), 1e-9);
}

}  // namespace
}  // namespace sluice::geo::testing
