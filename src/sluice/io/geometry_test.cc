#include "sluice/io/geometry.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/io/text_internal.h"
#include "sluice/testing/matchers.h"

namespace sluice::io::geom {
namespace {

auto Invalid(const char* message) {
  return sluice::testing::StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr(message));
}

std::string Unhex(std::string_view hex) {
  std::string out;
  EXPECT_TRUE(io::internal::ParseHex(hex, &out)) << hex;
  return out;
}

std::string Hex(std::string_view bytes) {
  std::string out(bytes.size() * 2, '\0');
  io::internal::WriteHex(bytes, out.data());
  return out;
}

std::string Ewkb(std::string_view wkt, int32_t srid = 0) {
  std::string out;
  Status st = WktToEwkb(wkt, srid, &out);
  EXPECT_TRUE(st.ok()) << wkt << ": " << st.ToString();
  return out;
}

std::string Wkt(std::string_view wkb, bool with_srid = true) {
  std::string out;
  Status st = AppendWkt(wkb, with_srid, &out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

std::string GeoJson(std::string_view wkb) {
  std::string out;
  Status st = AppendGeoJson(wkb, &out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out;
}

// POINT(1 2) with SRID 4326 as PostGIS prints it (ST_AsEWKB, little-endian).
constexpr const char* kPostgisPoint = "0101000020e6100000000000000000f03f0000000000000040";

TEST(GeometryTest, WritesTheEwkbPostgisWrites) {
  EXPECT_EQ(Hex(Ewkb("SRID=4326;POINT(1 2)")), kPostgisPoint);
  EXPECT_EQ(Hex(Ewkb("POINT(1 2)", 4326)), kPostgisPoint);
  std::string point;
  AppendEwkbPoint(1, 2, 4326, &point);
  EXPECT_EQ(Hex(point), kPostgisPoint);
  // Without an SRID: plain WKB.
  EXPECT_EQ(Hex(Ewkb("POINT(1 2)")), "0101000000000000000000f03f0000000000000040");
}

TEST(GeometryTest, InspectsTypeSridAndDimensions) {
  ASSERT_OK_AND_ASSIGN(EwkbInfo info, InspectEwkb(Unhex(kPostgisPoint)));
  EXPECT_EQ(info.type, kPoint);
  EXPECT_EQ(info.srid, 4326);
  EXPECT_FALSE(info.has_z);
  ASSERT_OK_AND_ASSIGN(info, InspectEwkb(Ewkb("LINESTRING Z (0 0 1, 1 1 2)", 3857)));
  EXPECT_EQ(info.type, kLineString);
  EXPECT_EQ(info.srid, 3857);
  EXPECT_TRUE(info.has_z);
  EXPECT_FALSE(info.has_m);
  ASSERT_OK_AND_ASSIGN(info, InspectEwkb(Ewkb("POINT M (1 2 3)")));
  EXPECT_TRUE(info.has_m);
  EXPECT_FALSE(info.has_z);
}

TEST(GeometryTest, WktRoundTripsEveryType) {
  const char* cases[] = {
      "SRID=4326;POINT (1 2)",
      "POINT (-0.5 1e-300)",
      "POINT EMPTY",
      "LINESTRING (0 0, 1 1, 2 0.25)",
      "LINESTRING EMPTY",
      "POLYGON ((0 0, 10 0, 10 10, 0 10, 0 0), (1 1, 2 1, 2 2, 1 1))",
      "POLYGON EMPTY",
      "MULTIPOINT ((1 2), (3 4))",
      "MULTILINESTRING ((0 0, 1 1), (2 2, 3 3))",
      "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))",
      "GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1), MULTIPOINT ((7 8)))",
      "GEOMETRYCOLLECTION EMPTY",
      "POINT Z (1 2 3)",
      "SRID=3857;LINESTRING Z (0 0 0, 1 1 1)",
      "POINT M (1 2 3)",
      "POINT ZM (1 2 3 4)",
      "MULTIPOLYGON Z (((0 0 1, 1 0 1, 1 1 1, 0 0 1)))",
      "GEOMETRYCOLLECTION M (POINT M (1 2 3), LINESTRING M (0 0 1, 1 1 2))",
      "POINT (0.1 0.30000000000000004)",
  };
  for (const char* wkt : cases) EXPECT_EQ(Wkt(Ewkb(wkt)), wkt);
}

TEST(GeometryTest, ReadsTheWktOtherToolsWrite) {
  // Case, spacing, glued dimensions, untagged 3D, bare multipoint positions.
  EXPECT_EQ(Wkt(Ewkb("point(1 2)")), "POINT (1 2)");
  EXPECT_EQ(Wkt(Ewkb("  POINTZ(1 2 3)  ")), "POINT Z (1 2 3)");
  EXPECT_EQ(Wkt(Ewkb("POINT(1 2 3)")), "POINT Z (1 2 3)");
  EXPECT_EQ(Wkt(Ewkb("POINT(1 2 3 4)")), "POINT ZM (1 2 3 4)");
  EXPECT_EQ(Wkt(Ewkb("MULTIPOINT(1 2,3 4)")), "MULTIPOINT ((1 2), (3 4))");
  EXPECT_EQ(Wkt(Ewkb("MULTIPOINT (1 2 5, 3 4 6)")), "MULTIPOINT Z ((1 2 5), (3 4 6))");
  EXPECT_EQ(Wkt(Ewkb("srid=4326 ; POINT(1 2)")), "SRID=4326;POINT (1 2)");
  // Untagged elements take the collection's dimensions.
  EXPECT_EQ(Wkt(Ewkb("GEOMETRYCOLLECTION M (POINT (1 2 3))")),
            "GEOMETRYCOLLECTION M (POINT M (1 2 3))");
  EXPECT_EQ(Wkt(Ewkb("POINT(1 2)", 4326), false), "POINT (1 2)");
}

TEST(GeometryTest, WritesGeoJson) {
  EXPECT_EQ(GeoJson(Unhex(kPostgisPoint)), R"({"type":"Point","coordinates":[1,2]})");
  EXPECT_EQ(GeoJson(Ewkb("POINT EMPTY")), R"({"type":"Point","coordinates":[]})");
  EXPECT_EQ(GeoJson(Ewkb("LINESTRING Z (0 0 1, 1.5 1 2)")),
            R"({"type":"LineString","coordinates":[[0,0,1],[1.5,1,2]]})");
  EXPECT_EQ(GeoJson(Ewkb("POLYGON ((0 0, 1 0, 1 1, 0 0))")),
            R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]})");
  EXPECT_EQ(GeoJson(Ewkb("MULTIPOINT ((1 2), (3 4))")),
            R"({"type":"MultiPoint","coordinates":[[1,2],[3,4]]})");
  EXPECT_EQ(GeoJson(Ewkb("MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)))")),
            R"({"type":"MultiPolygon","coordinates":[[[[0,0],[1,0],[1,1],[0,0]]]]})");
  EXPECT_EQ(GeoJson(Ewkb("GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))")),
            R"({"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2]},)"
            R"({"type":"LineString","coordinates":[[0,0],[1,1]]}]})");
  // M is dropped: GeoJSON has none.
  EXPECT_EQ(GeoJson(Ewkb("POINT M (1 2 9)")), R"({"type":"Point","coordinates":[1,2]})");
  EXPECT_EQ(GeoJson(Ewkb("POINT ZM (1 2 3 9)")), R"({"type":"Point","coordinates":[1,2,3]})");
}

TEST(GeometryTest, ReadsBigEndianAndIsoTypeCodes) {
  // POINT(1 2), big-endian WKB.
  EXPECT_EQ(Wkt(Unhex("00000000013ff00000000000004000000000000000")), "POINT (1 2)");
  // ISO POINT Z (type 1001), little-endian.
  EXPECT_EQ(Wkt(Unhex("01e9030000000000000000f03f00000000000000400000000000000840")),
            "POINT Z (1 2 3)");
  // A big-endian multipoint holding a little-endian point.
  EXPECT_EQ(Wkt(Unhex("000000000400000001"
                      "0101000000000000000000f03f0000000000000040")),
            "MULTIPOINT ((1 2))");
}

TEST(GeometryTest, MalformedEwkbIsAnErrorNamingTheByte) {
  const std::string good = Unhex(kPostgisPoint);
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(InspectEwkb(good.substr(0, n)).ok()) << "truncated to " << n;
  }
  EXPECT_THAT(InspectEwkb(good + "x").status(), Invalid("1 bytes after"));
  EXPECT_THAT(InspectEwkb(Unhex("02")).status(), Invalid("truncated"));
  EXPECT_THAT(InspectEwkb(Unhex("0208000000")).status(), Invalid("bad byte order 2"));
  EXPECT_THAT(InspectEwkb(Unhex("0108000000")).status(), Invalid("unsupported geometry type 8"));
  // A line string claiming 2^32-1 points in a few bytes: refused before reading any.
  EXPECT_THAT(InspectEwkb(Unhex("0102000000ffffffff")).status(), Invalid("4294967295 positions"));
  // A multipoint holding a line string.
  EXPECT_THAT(InspectEwkb(Unhex("010400000001000000010200000000000000")).status(),
              Invalid("a LineString inside a MultiPoint"));
  // A Point M inside a 2-D MultiPoint (found by fuzzing: no WKT can say it; PostGIS refuses it).
  EXPECT_THAT(InspectEwkb(Unhex("0000000004000000010101000040000000000000f03f000000000000f03f"
                                "0000000000000000"))
                  .status(),
              Invalid("a Point M inside a 2D geometry at byte 9: dimensions mixed"));
  // Collections nested deeper than 32 levels.
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "010700000001000000";
  deep += "0101000000000000000000f03f0000000000000040";
  EXPECT_THAT(InspectEwkb(Unhex(deep)).status(), Invalid("nested"));
}

TEST(GeometryTest, RefusesWhatPostgisRefuses) {
  // Found by review: each of these loaded into PostGIS fails the whole COPY, so it is refused
  // where it is read.
  std::string out;
  // A ring not closed, closed only by -0.0 (PostGIS compares bytes), too short; a 1-point line.
  EXPECT_THAT(WktToEwkb("POLYGON ((0 0, 1 0, 1 1, -0 0))", 0, &out), Invalid("not closed"));
  EXPECT_THAT(InspectEwkb(Unhex("01030000000100000004000000"
                                "00000000000000000000000000000000"
                                "000000000000f03f0000000000000000"
                                "000000000000f03f000000000000f03f"
                                "0000000000000000000000000000f03f"))
                  .status(),
              Invalid("a polygon ring that is not closed at byte 9"));
  EXPECT_THAT(InspectEwkb(Unhex("010300000001000000000000000000")).status(),
              Invalid("a polygon ring of 0 positions"));
  EXPECT_THAT(InspectEwkb(Unhex("01020000000100000000000000000000000000000000000000")).status(),
              Invalid("a LineString of 1 position"));
  // Mixed dimensions made by an empty element that comes first.
  EXPECT_THAT(WktToEwkb("GEOMETRYCOLLECTION (LINESTRING EMPTY, POINT (1 2 3))", 0, &out),
              Invalid("dimensions mixed"));
  EXPECT_THAT(WktToEwkb("MULTILINESTRING (EMPTY, (1 2 3, 4 5 6))", 0, &out),
              Invalid("dimensions mixed"));
  EXPECT_TRUE(out.empty());
  // An empty line is fine (PostGIS: LINESTRING EMPTY).
  EXPECT_EQ(Wkt(Ewkb("MULTILINESTRING (EMPTY, (1 2, 3 4))")),
            "MULTILINESTRING (EMPTY, (1 2, 3 4))");
}

TEST(GeometryTest, GeoJsonRefusesNonFiniteCoordinates) {
  std::string out;
  EXPECT_THAT(AppendGeoJson(Ewkb("POINT (1 inf)"), &out), Invalid("GeoJSON cannot hold"));
  EXPECT_EQ(Wkt(Ewkb("POINT (1 inf)")), "POINT (1 inf)");
}

TEST(GeometryTest, MalformedWktIsAnErrorNamingTheCharacter) {
  struct Case {
    const char* wkt;
    const char* message;
  };
  const Case cases[] = {
      {"", "unknown geometry type ''"},
      {"CIRCLE(1 2)", "unknown geometry type 'CIRCLE'"},
      {"POINT(1)", "expected a position"},
      {"POINT(1 2", "expected ')'"},
      {"POINT(1 2) x", "unexpected text after the geometry at character 12"},
      {"LINESTRING(1 2)", "needs 2 or more positions, has 1"},
      {"POLYGON((0 0, 1 0, 1 1, 0 1))", "not closed"},
      {"POLYGON((0 0, 1 0, 0 0))", "needs 4 or more"},
      {"LINESTRING(0 0, 1 1 1)", "a position of 3 numbers where 2 are expected"},
      {"SRID=x;POINT(1 2)", "expected an SRID number"},
      {"SRID=4326 POINT(1 2)", "expected ';'"},
      {"POINT Z (1 2)", "a position of 2 numbers where 3 are expected"},
      {"GEOMETRYCOLLECTION (POINT (1 2), POINT Z (1 2 3))", "dimensions mixed"},
      {"GEOMETRYCOLLECTION (POINT (1 2 3), POINT M (1 2 3))", "dimensions mixed"},
      {"GEOMETRYCOLLECTION Z (POINT M (1 2 3))", "dimensions mixed"},
  };
  for (const Case& c : cases) {
    std::string out = "kept";
    EXPECT_THAT(WktToEwkb(c.wkt, 0, &out), Invalid(c.message)) << c.wkt;
    EXPECT_EQ(out, "kept") << "a failed parse leaves the output as it was";
  }
  std::string deep;
  for (int i = 0; i < 40; ++i) deep += "GEOMETRYCOLLECTION(";
  std::string out;
  EXPECT_THAT(WktToEwkb(deep, 0, &out), Invalid("too deep"));
}

TEST(GeometryTest, ReadsGeoPackageBlobs) {
  // "GP", version 0, flags 0x03 (little-endian header, a 2-D envelope), srs_id 3857, the
  // envelope (minx maxx miny maxy), then WKB: POINT (1 2).
  const std::string blob = Unhex(
      "47500003110f0000"
      "000000000000f03f000000000000f03f00000000000000400000000000000040"
      "0101000000000000000000f03f0000000000000040");
  ASSERT_TRUE(IsGeoPackageBlob(blob));
  std::string out;
  ASSERT_OK(GeoPackageToEwkb(blob, &out));
  EXPECT_EQ(Wkt(out), "SRID=3857;POINT (1 2)");
  // Big-endian header without an envelope, srs_id -1 (undefined): no SRID; ISO POINT Z WKB.
  out.clear();
  ASSERT_OK(GeoPackageToEwkb(Unhex("4750000"
                                   "0ffffffff"
                                   "01e9030000000000000000f03f00000000000000400000000000000840"),
                             &out));
  EXPECT_EQ(Wkt(out), "POINT Z (1 2 3)");
  out.clear();
  EXPECT_THAT(GeoPackageToEwkb(Unhex("47500100"), &out), Invalid("not a GeoPackage"));
  EXPECT_THAT(GeoPackageToEwkb(Unhex("4750010000000000"
                                     "0101000000"),
                               &out),
              Invalid("version 1"));
  EXPECT_THAT(GeoPackageToEwkb(Unhex("4750002100000000"
                                     "0101000000"),
                               &out),
              Invalid("extended"));
  EXPECT_THAT(GeoPackageToEwkb(Unhex("475000030000000000"), &out), Invalid("header needs 40"));
  EXPECT_THAT(GeoPackageToEwkb(Unhex("4750000100000000"
                                     "0101000000"),
                               &out),
              Invalid("truncated"));
  EXPECT_TRUE(out.empty());
}

TEST(GeometryTest, TextIsHexEwkbOrWkt) {
  std::string out;
  ASSERT_OK(TextToEwkb(kPostgisPoint, 0, &out));
  EXPECT_EQ(Hex(out), kPostgisPoint);
  out.clear();
  ASSERT_OK(TextToEwkb("\\x0101000020e6100000000000000000f03f0000000000000040", 0, &out));
  EXPECT_EQ(Hex(out), kPostgisPoint);
  out.clear();
  ASSERT_OK(TextToEwkb("POINT(1 2)", 4326, &out));
  EXPECT_EQ(Hex(out), kPostgisPoint);
  EXPECT_THAT(TextToEwkb("0101", 0, &out), Invalid("truncated"));
  EXPECT_THAT(TextToEwkb("abz", 0, &out), Invalid("hex EWKB or WKT"));
}

}  // namespace
}  // namespace sluice::io::geom
