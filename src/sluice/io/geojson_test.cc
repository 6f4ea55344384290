#include "sluice/io/geojson.h"

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/io/csv.h"
#include "sluice/io/geometry.h"
#include "sluice/io/jsonl.h"
#include "sluice/testing/matchers.h"

namespace sluice::io {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

struct Decoded {
  std::vector<BatchPtr> batches;
  SchemaPtr schema;
  int64_t skipped = 0;
  std::vector<std::string> skipped_why;
  int64_t rows() const {
    int64_t n = 0;
    for (const auto& b : batches) n += b->num_rows();
    return n;
  }
  // Every row as JSONL with geometries as EWKT, which shows their SRIDs.
  std::string Text() const {
    std::string out;
    for (const auto& b : batches) {
      EncodeOptions o;
      o.geometry = GeometryText::kWkt;
      auto enc = MakeEncoder(Format::kJsonl, b->schema(), o);
      EXPECT_TRUE(enc.ok());
      (*enc)->Encode(*b, &out);
    }
    return out;
  }
};

// Decodes `input` fed `chunk` bytes at a time (all at once when 0).
Result<Decoded> Decode(std::string_view input, DecodeOptions options = {}, size_t chunk = 0) {
  Decoded d;
  options.on_skip = [&d](int64_t, const Status& why, std::string_view) {
    d.skipped_why.push_back(why.message());
  };
  SLUICE_ASSIGN_OR_RETURN(auto dec, GeoJsonDecoder::Make(std::move(options)));
  if (chunk == 0) chunk = std::max<size_t>(input.size(), 1);
  for (size_t pos = 0; pos < input.size(); pos += chunk) {
    SLUICE_RETURN_NOT_OK(dec->Feed(input.substr(pos, chunk), &d.batches));
  }
  SLUICE_RETURN_NOT_OK(dec->Finish(&d.batches));
  d.schema = dec->schema();
  d.skipped = dec->skipped_rows();
  return d;
}

constexpr const char* kCollection = R"({
  "type": "FeatureCollection",
  "name": "places",
  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::3857"}},
  "features": [
    {"type": "Feature", "id": 7, "properties": {"name": "a \"quoted\" }{ name", "pop": 10,
     "area": 1.5, "tags": ["x"], "ok": true},
     "geometry": {"type": "Point", "coordinates": [1.5, -2]}},
    {"type": "Feature", "id": 8, "properties": {"name": "日本", "pop": null, "area": 2},
     "geometry": {"type": "Polygon", "coordinates": [[[0,0],[4,0],[4,4],[0,0]]]}},
    {"type": "Feature", "id": 9, "properties": null, "geometry": null}
  ]
})";

constexpr const char* kCollectionRows =
    R"({"id":7,"name":"a \"quoted\" }{ name","pop":10,"area":1.5,"tags":["x"],"ok":true,)"
    R"x("geometry":"SRID=3857;POINT (1.5 -2)"})x"
    "\n"
    R"({"id":8,"name":"日本","pop":null,"area":2.0,"tags":null,"ok":null,)"
    R"x("geometry":"SRID=3857;POLYGON ((0 0, 4 0, 4 4, 0 0))"})x"
    "\n"
    R"({"id":9,"name":null,"pop":null,"area":null,"tags":null,"ok":null,"geometry":null})"
    "\n";

TEST(GeoJsonDecoderTest, ReadsAFeatureCollectionWithItsCrs) {
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(kCollection));
  EXPECT_EQ(d.schema->ToString(),
            "id:int64, name:string, pop:int64, area:float64, tags:json, ok:bool, "
            "geometry:geometry");
  EXPECT_EQ(d.Text(), kCollectionRows);
}

TEST(GeoJsonDecoderTest, TheCrsAppliesWithADeclaredSchemaToo) {
  // The file source declares the schema it peeked at: the file's crs must still apply.
  DecodeOptions o;
  o.schema = MakeSchema({{"id", TypeId::kInt64}, {"geometry", TypeId::kGeometry}});
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(kCollection, o));
  EXPECT_THAT(d.Text(), HasSubstr("SRID=3857;POINT (1.5 -2)"));
}

TEST(GeoJsonDecoderTest, AnyChunkingGivesTheSameRows) {
  for (size_t chunk : {1, 2, 3, 7, 64}) {
    ASSERT_OK_AND_ASSIGN(Decoded d, Decode(kCollection, {}, chunk));
    EXPECT_EQ(d.Text(), kCollectionRows) << "chunk " << chunk;
  }
}

TEST(GeoJsonDecoderTest, TheSridOptionWinsAndWgs84IsTheDefault) {
  DecodeOptions o;
  o.srid = 2154;
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(kCollection, o));
  EXPECT_THAT(d.Text(), HasSubstr("SRID=2154;POINT (1.5 -2)"));
  ASSERT_OK_AND_ASSIGN(
      d,
      Decode(
          R"({"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,2]}})"));
  EXPECT_EQ(d.Text(), "{\"geometry\":\"SRID=4326;POINT (1 2)\"}\n");
}

TEST(GeoJsonDecoderTest, ReadsFeatureSequencesAndBareGeometries) {
  const std::string seq =
      "\x1e{\"type\":\"Feature\",\"properties\":{\"k\":1},\"geometry\":{\"type\":\"LineString\","
      "\"coordinates\":[[0,0,1],[1,1,2]]}}\n"
      "\x1e{\"type\":\"Feature\",\"properties\":{\"k\":2},\"geometry\":{\"type\":\"MultiPoint\","
      "\"coordinates\":[[1,2],[3,4]]}}\n"
      "{\"type\":\"Point\",\"coordinates\":[5,6]}\n";
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(seq));
  EXPECT_EQ(d.Text(),
            "{\"k\":1,\"geometry\":\"SRID=4326;LINESTRING Z (0 0 1, 1 1 2)\"}\n"
            "{\"k\":2,\"geometry\":\"SRID=4326;MULTIPOINT ((1 2), (3 4))\"}\n"
            "{\"k\":null,\"geometry\":\"SRID=4326;POINT (5 6)\"}\n");
}

TEST(GeoJsonDecoderTest, AnIdPropertyMovesTheFeatureIdToFeatureId) {
  ASSERT_OK_AND_ASSIGN(
      Decoded d, Decode(R"({"type":"Feature","id":"f1","properties":{"id":5},"geometry":null})"));
  EXPECT_EQ(d.Text(), "{\"feature_id\":\"f1\",\"id\":5,\"geometry\":null}\n");
}

TEST(GeoJsonDecoderTest, ADeclaredSchemaTakesItsColumns) {
  DecodeOptions o;
  o.schema = MakeSchema(
      {{"id", TypeId::kString}, {"pop", TypeId::kFloat64}, {"shape", TypeId::kGeometry}});
  o.geometry_column = "shape";
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(R"({"type":"FeatureCollection","features":[
      {"type":"Feature","id":"x","properties":{"pop":3,"other":1},
       "geometry":{"type":"Point","coordinates":[1,2]}}]})",
                                         o));
  EXPECT_EQ(d.Text(), "{\"id\":\"x\",\"pop\":3.0,\"shape\":\"SRID=4326;POINT (1 2)\"}\n");
}

TEST(GeoJsonDecoderTest, APropertyNamedLikeTheGeometryColumnIsRefused) {
  EXPECT_THAT(
      Decode(R"({"type":"Feature","properties":{"geometry":"x"},"geometry":null})").status(),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("set geometry_column")));
}

TEST(GeoJsonDecoderTest, ErrorsNameTheLineAndTheFeature) {
  struct Case {
    std::string input;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"{\"type\":\"FeatureCollection\",\"features\":[\n"
       "{\"type\":\"Feature\",\"properties\":{},\"geometry\":null},\n"
       "{\"type\":\"Feature\",\"properties\":{},\"geometry\":{\"type\":\"Polygon\","
       "\"coordinates\":[[[0,0],[1,0],[1,1],[0,1]]]}}]}",
       "line 3: feature 1: geometry: Polygon coordinates: ring 0: a polygon ring is not closed"},
      {"{\"type\":\"FeatureCollection\",\"features\":[{\"type\":\"Feature\"", "ends inside"},
      {"{\"type\":\"FeatureCollection\",\"features\":[1]}", "feature 0 is not an object"},
      {"[1,2]", "expected a GeoJSON object, got an array"},
      {"{\"type\":\"Feature\",\"properties\":{}}", "needs a \"geometry\" member"},
      {"{\"type\":\"Feature\",\"geometry\":{\"type\":\"Circle\",\"coordinates\":[]}}",
       "unknown geometry type \"Circle\""},
      {"{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[1,\"a\"]}}",
       "a coordinate must be a number"},
      {"{\"type\":\"Feature\",\"geometry\":{\"type\":\"Point\",\"coordinates\":[1]}}",
       "a position needs 2 or more numbers"},
      {"{\"type\":\"Feature\" \"x\"}", "invalid JSON"},
      {"}", "expected a GeoJSON object, got '}'"},
      // Found by fuzzing: a collection cut short after its features (it crashed), and a
      // record separator in it.
      {"{\"features\":[],\"name\":\"x\"", "ends inside a JSON value"},
      {"{\"features\":[],\x1e", "a record separator inside a collection"},
  };
  for (const Case& c : cases) {
    DecodeOptions o;
    o.schema = MakeSchema({{"geometry", TypeId::kGeometry}});
    EXPECT_THAT(Decode(c.input, o).status(),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr(c.message)))
        << c.input;
  }
}

// geometry TEXT: the EWKT of a GeoJSON geometry read through a feature, or the error.
std::string GeometryOf(const std::string& geometry) {
  DecodeOptions o;
  o.schema = MakeSchema({{"geometry", TypeId::kGeometry}});
  auto d = Decode(R"({"type":"Feature","properties":{},"geometry":)" + geometry + "}", o);
  if (!d.ok()) return d.status().message();
  return d->Text();
}

TEST(GeoJsonDecoderTest, GeometriesKeepTheirDimensionsOrAreRefused) {
  EXPECT_EQ(
      GeometryOf(
          R"({"type":"GeometryCollection","geometries":[{"type":"Point","coordinates":[1,2,3]}]})"),
      "{\"geometry\":\"SRID=4326;GEOMETRYCOLLECTION Z (POINT Z (1 2 3))\"}\n");
  EXPECT_THAT(GeometryOf(R"({"type":"LineString","coordinates":[[0,0],[1,1,9]]})"),
              HasSubstr("a position of 3 numbers where the first had 2"));
  EXPECT_THAT(
      GeometryOf(
          R"({"type":"MultiPolygon","coordinates":[[],[[[0,0,1],[1,0,1],[1,1,1],[0,0,1]]]]})"),
      HasSubstr("dimensions mixed"));
  EXPECT_THAT(GeometryOf(R"({"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[-0.0,0]]]})"),
              HasSubstr("not closed"));
  // What the writer makes of empty lines reads back.
  EXPECT_EQ(GeometryOf(R"({"type":"LineString","coordinates":[]})"),
            "{\"geometry\":\"SRID=4326;LINESTRING EMPTY\"}\n");
  EXPECT_EQ(GeometryOf(R"({"type":"MultiLineString","coordinates":[[],[[1,2],[3,4]]]})"),
            "{\"geometry\":\"SRID=4326;MULTILINESTRING (EMPTY, (1 2, 3 4))\"}\n");
}

TEST(GeoJsonDecoderTest, EachFeatureOfASequenceHasItsOwnCrs) {
  const std::string seq =
      "{\"type\":\"Feature\",\"properties\":{\"k\":1},\"geometry\":null}\n"
      "{\"type\":\"Feature\",\"properties\":{\"k\":2},\"geometry\":{\"type\":\"Point\","
      "\"coordinates\":[1,2]},\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
      "\"urn:ogc:def:crs:EPSG:6.6:3857\"}}}\n"
      "{\"type\":\"Feature\",\"properties\":{\"k\":3},\"geometry\":{\"type\":\"Point\","
      "\"coordinates\":[5,6]},\"crs\":{\"type\":\"name\",\"properties\":{\"name\":"
      "\"http://www.opengis.net/def/crs/EPSG/0/2154\"}}}\n"
      "{\"type\":\"Feature\",\"properties\":{\"k\":4},\"geometry\":{\"type\":\"Point\","
      "\"coordinates\":[7,8]}}\n";
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(seq));
  EXPECT_EQ(d.Text(),
            "{\"k\":1,\"geometry\":null}\n"
            "{\"k\":2,\"geometry\":\"SRID=3857;POINT (1 2)\"}\n"
            "{\"k\":3,\"geometry\":\"SRID=2154;POINT (5 6)\"}\n"
            "{\"k\":4,\"geometry\":\"SRID=4326;POINT (7 8)\"}\n");
  // Written back, each keeps its SRID.
  std::string text;
  for (const auto& b : d.batches) {
    GeoJsonEncoder enc(b->schema());
    enc.Encode(*b, &text);
  }
  ASSERT_OK_AND_ASSIGN(Decoded again, Decode(text));
  EXPECT_EQ(again.Text(), d.Text());
  // A crs that names no EPSG code is an error, not WGS 84.
  EXPECT_THAT(
      Decode(
          R"({"type":"FeatureCollection","crs":{"type":"name","properties":{"name":"LOCAL_CS[x]"}},"features":[]})")
          .status(),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("names no EPSG code")));
}

TEST(GeoJsonDecoderTest, OddShapesFoundByReview) {
  // A Feature with a foreign member called features is still one feature.
  ASSERT_OK_AND_ASSIGN(
      Decoded d,
      Decode(
          R"({"type":"Feature","features":[{"inner":1}],"properties":{"outer":1},"geometry":null})"));
  EXPECT_EQ(d.Text(), "{\"outer\":1,\"geometry\":null}\n");
  // A string among a collection's features is not skipped silently.
  EXPECT_THAT(Decode(R"({"type":"FeatureCollection","features":["oops"]})").status(),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("feature 0 is not an object")));
  // Properties named id and feature_id besides a feature id: refused, not two columns of a name.
  EXPECT_THAT(
      Decode(R"({"type":"Feature","id":"x","properties":{"id":1,"feature_id":2},"geometry":null})")
          .status(),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("declare the source's schema")));
}

TEST(GeoJsonDecoderTest, BadTextsOfASequenceAreSkippedUnderSkip) {
  const std::string seq =
      "{\"type\":\"Feature\",\"properties\":{\"k\":1},\"geometry\":null}\n"
      "not json\n"
      "\x1e{\"type\":\"Feature\",\"properties\":{\"k\":2}\n"  // cut short
      "\x1e{\"type\":\"Feature\",\"properties\":{\"k\":3},\"geometry\":null}\n"
      "{\"type\":\"Feature\",\"properties\":{\"k\":4";  // cut short at the end
  DecodeOptions o;
  o.on_error = OnError::kSkip;
  for (size_t chunk : {0, 1, 5}) {
    ASSERT_OK_AND_ASSIGN(Decoded d, Decode(seq, o, chunk));
    EXPECT_EQ(d.Text(), "{\"k\":1,\"geometry\":null}\n{\"k\":3,\"geometry\":null}\n");
    EXPECT_EQ(d.skipped, 3);
    ASSERT_EQ(d.skipped_why.size(), 3u);
    EXPECT_THAT(d.skipped_why[0],
                HasSubstr("line 2: feature 1: expected a GeoJSON object, got 'n'"));
    EXPECT_THAT(d.skipped_why[1], HasSubstr("line 3: feature 2: a truncated GeoJSON text"));
    EXPECT_THAT(d.skipped_why[2],
                HasSubstr("line 5: feature 4: the input ends inside this feature"));
  }
  o.on_error = OnError::kFail;
  EXPECT_THAT(Decode(seq, o).status(),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("line 2: expected a GeoJSON object, got 'n'")));
}

TEST(GeoJsonDecoderTest, SkipCountsAndReportsBadFeatures) {
  DecodeOptions o;
  o.on_error = OnError::kSkip;
  o.source_name = "in.geojson";
  o.schema = MakeSchema({{"k", TypeId::kInt64}, {"geometry", TypeId::kGeometry}});
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(R"({"type":"FeatureCollection","features":[
{"type":"Feature","properties":{"k":1},"geometry":{"type":"Point","coordinates":[1,2]}},
{"type":"Feature","properties":{"k":2},"geometry":{"type":"LineString","coordinates":[[1,2]]}},
{"type":"Feature","properties":{"k":"three"},"geometry":null},
{"type":"Feature","properties":{"k":4},"geometry":null}]})",
                                         o));
  EXPECT_EQ(d.skipped, 2);
  ASSERT_EQ(d.skipped_why.size(), 2u);
  EXPECT_THAT(d.skipped_why[0], HasSubstr("in.geojson:3: feature 1: geometry: LineString"));
  EXPECT_THAT(d.skipped_why[1], HasSubstr("in.geojson:4: feature 2: expected int64 for 'k'"));
  EXPECT_EQ(d.Text(),
            "{\"k\":1,\"geometry\":\"SRID=4326;POINT (1 2)\"}\n{\"k\":4,\"geometry\":null}\n");
}

TEST(GeoJsonDecoderTest, ALargeCollectionComesInBatches) {
  std::string input = R"({"type":"FeatureCollection","features":[)";
  for (int i = 0; i < 5000; ++i) {
    if (i > 0) input += ",";
    input += fmt::format(
        R"({{"type":"Feature","id":{},"properties":{{"v":{}}},"geometry":{{"type":"Point","coordinates":[{},{}]}}}})",
        i, i * 2, i, -i);
  }
  input += "]}";
  DecodeOptions o;
  o.batch_rows = 1000;
  o.infer_rows = 10;
  ASSERT_OK_AND_ASSIGN(Decoded d, Decode(input, o, 4096));
  ASSERT_EQ(d.batches.size(), 5u);
  EXPECT_EQ(d.rows(), 5000);
  const BatchPtr& last = d.batches.back();
  EXPECT_EQ(last->column(0).GetInt64(999), 4999);
  EXPECT_EQ(last->column(1).GetInt64(999), 9998);
  std::string wkt;
  ASSERT_OK(geom::AppendWkt(last->column(2).GetView(999), true, &wkt));
  EXPECT_EQ(wkt, "SRID=4326;POINT (4999 -4999)");
}

TEST(GeoJsonEncoderTest, WritesFeaturesThatReadBackTheSame) {
  ASSERT_OK_AND_ASSIGN(Decoded first, Decode(kCollection));
  std::string text;
  for (const auto& b : first.batches) {
    GeoJsonEncoder enc(b->schema());
    enc.Encode(*b, &text);
    ASSERT_OK(enc.status());
  }
  EXPECT_THAT(text, HasSubstr(R"({"type":"Feature","properties":{"id":7,"name":)"));
  EXPECT_THAT(text, HasSubstr(R"("geometry":{"type":"Point","coordinates":[1.5,-2]},"crs")"));
  EXPECT_THAT(
      text,
      HasSubstr(R"("crs":{"type":"name","properties":{"name":"urn:ogc:def:crs:EPSG::3857"}})"));
  ASSERT_OK_AND_ASSIGN(Decoded again, Decode(text));  // the SRID comes back from the crs
  EXPECT_EQ(again.Text(), kCollectionRows);
}

TEST(GeometryTextTest, InferenceFindsGeometryColumns) {
  // JSONL: WKT, hex EWKB and GeoJSON objects are geometries; a column with one value that is
  // none stays text (or json).
  const std::string jsonl =
      R"x({"w":"POINT (1 2)","h":"0101000020e6100000000000000000f03f0000000000000040","o":{"type":"Point","coordinates":[1,2]},"m":"POINT (1 2)","j":{"type":"Point","coordinates":[1,2]}})x"
      "\n"
      R"x({"w":"SRID=3857;LINESTRING (0 0, 1 1)","h":null,"o":{"type":"LineString","coordinates":[[0,0],[1,1]]},"m":"Lyon","j":{"a":1}})x"
      "\n";
  ASSERT_OK_AND_ASSIGN(auto dec, MakeDecoder(Format::kJsonl, DecodeOptions()));
  std::vector<BatchPtr> out;
  ASSERT_OK(dec->Feed(jsonl, &out));
  ASSERT_OK(dec->Finish(&out));
  EXPECT_EQ(dec->schema()->ToString(), "w:geometry, h:geometry, o:geometry, m:string, j:json");
  std::string wkt;
  ASSERT_OK(geom::AppendWkt(out.at(0)->column(2).GetView(1), true, &wkt));
  EXPECT_EQ(wkt, "SRID=4326;LINESTRING (0 0, 1 1)");  // a GeoJSON object is WGS 84
  // CSV: a WKT column.
  ASSERT_OK_AND_ASSIGN(auto csv, MakeDecoder(Format::kCsv, DecodeOptions()));
  out.clear();
  ASSERT_OK(csv->Feed("id,wkt,name\n1,\"POLYGON ((0 0, 1 0, 1 1, 0 0))\",a\n2,POINT (3 4),POINT\n",
                      &out));
  ASSERT_OK(csv->Finish(&out));
  EXPECT_EQ(csv->schema()->ToString(), "id:int64, wkt:geometry, name:string");
}

TEST(GeoJsonEncoderTest, AGeoJsonFileNeedsAGeometryColumn) {
  EXPECT_THAT(
      MakeEncoder(Format::kGeoJson, MakeSchema({{"wkt", TypeId::kString}})).status(),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("format geojson needs a geometry column")));
}

TEST(GeoJsonEncoderTest, ANonFiniteCoordinateIsAnErrorNotASilentNull) {
  std::string wkb;
  ASSERT_OK(geom::WktToEwkb("POINT (1 nan)", 4326, &wkb));
  ColumnBuilder b(TypeId::kGeometry);
  b.AppendString(wkb);
  auto batch = Batch::MakeUnchecked(MakeSchema({{"g", TypeId::kGeometry}}), {b.Finish()}, 1);
  GeoJsonEncoder enc(batch->schema());
  std::string out;
  enc.Encode(*batch, &out);
  EXPECT_THAT(enc.status(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("GeoJSON cannot")));
}

TEST(GeometryTextTest, JsonlAndCsvWriteWktOrGeoJsonOnRequest) {
  std::string wkb;
  ASSERT_OK(geom::WktToEwkb("POINT (1 2)", 4326, &wkb));
  ColumnBuilder g(TypeId::kGeometry), k(TypeId::kInt64);
  g.AppendString(wkb);
  k.AppendInt64(1);
  g.AppendNull();
  k.AppendInt64(2);
  auto batch = Batch::MakeUnchecked(MakeSchema({{"k", TypeId::kInt64}, {"g", TypeId::kGeometry}}),
                                    {k.Finish(), g.Finish()}, 2);
  auto encode = [&](Format f, GeometryText t) {
    EncodeOptions o;
    o.geometry = t;
    auto enc = MakeEncoder(f, batch->schema(), o);
    EXPECT_TRUE(enc.ok());
    std::string out;
    (*enc)->Begin(&out);
    (*enc)->Encode(*batch, &out);
    return out;
  };
  EXPECT_EQ(encode(Format::kJsonl, GeometryText::kGeoJson),
            "{\"k\":1,\"g\":{\"type\":\"Point\",\"coordinates\":[1,2]}}\n{\"k\":2,\"g\":null}\n");
  EXPECT_EQ(encode(Format::kJsonl, GeometryText::kWkt),
            "{\"k\":1,\"g\":\"SRID=4326;POINT (1 2)\"}\n{\"k\":2,\"g\":null}\n");
  EXPECT_EQ(encode(Format::kCsv, GeometryText::kWkt), "k,g\n1,SRID=4326;POINT (1 2)\n2,\n");
  // What is written reads back into the same geometry.
  DecodeOptions o;
  o.schema = batch->schema();
  for (Format f : {Format::kJsonl, Format::kCsv}) {
    for (GeometryText t : {GeometryText::kWkt, GeometryText::kGeoJson, GeometryText::kHex}) {
      if (f == Format::kCsv && t == GeometryText::kGeoJson) continue;  // CSV reads WKT or hex
      ASSERT_OK_AND_ASSIGN(auto dec, MakeDecoder(f, o));
      std::vector<BatchPtr> out;
      ASSERT_OK(dec->Feed(encode(f, t), &out));
      ASSERT_OK(dec->Finish(&out));
      ASSERT_EQ(out.size(), 1u);
      EXPECT_EQ(out[0]->column(1).GetView(0), wkb) << FormatName(f) << " " << int(t);
      EXPECT_TRUE(out[0]->column(1).IsNull(1));
    }
  }
}

}  // namespace
}  // namespace sluice::io
