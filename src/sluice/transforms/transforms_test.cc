#include "sluice/transforms/transforms.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <optional>

#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using ::sluice::testing::CollectingEmitter;

const NodeRegistry& Registry() {
  static const NodeRegistry* registry = [] {
    auto* r = new NodeRegistry();
    RegisterTransformNodes(r);
    return r;
  }();
  return *registry;
}

Result<std::unique_ptr<Transform>> MakeTransform(const std::string& type, nlohmann::json options) {
  const NodeTypeInfo* info = Registry().Find(type);
  if (info == nullptr) return Status::NotFound("no node type '{}'", type);
  return info->make_transform(NodeOptions::ForTest("t", std::move(options), type));
}

SchemaPtr PeopleSchema() {
  return MakeSchema({{"id", TypeId::kInt64},
                     {"name", TypeId::kString},
                     {"score", TypeId::kFloat64},
                     {"created_at", TypeId::kTimestamp}});
}

BatchPtr People() {
  auto batch = BatchFromJson(PeopleSchema(), R"([
    [1, "ann", 1.5, "2024-01-01T00:00:00Z"],
    [2, "bob", null, "2020-06-01T12:00:00Z"],
    [3, null, -2.0, null],
    [4, "dee", 10.0, "2023-12-31T23:59:59Z"]
  ])");
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *batch;
}

// Run `batch` through `t` and return the emitted batches.
std::vector<BatchPtr> Process(Transform* t, const BatchPtr& batch, int input = 0) {
  CollectingEmitter out;
  Status st = t->Process(batch, input, &out);
  EXPECT_TRUE(st.ok()) << st.ToString();
  return out.rows;
}

TEST(RegisterTransformNodes, RegistersEveryTransformWithItsOptions) {
  for (const char* name : {"filter", "map", "select", "rename", "cast"}) {
    const NodeTypeInfo* info = Registry().Find(name);
    ASSERT_NE(info, nullptr) << name;
    EXPECT_EQ(info->kind, NodeKind::kTransform);
    EXPECT_TRUE(info->stateless) << name;
    EXPECT_EQ(info->min_inputs, 1);
    EXPECT_EQ(info->max_inputs, 1);
    EXPECT_FALSE(info->doc.empty());
    EXPECT_FALSE(info->options.empty());
    for (const auto& o : info->options) EXPECT_FALSE(o.doc.empty()) << name << "." << o.name;
  }
  const NodeTypeInfo* u = Registry().Find("union");
  ASSERT_NE(u, nullptr);
  EXPECT_FALSE(u->stateless);
  EXPECT_EQ(u->min_inputs, 1);
  EXPECT_EQ(u->max_inputs, -1);
  EXPECT_EQ(Registry().Find("filter")->options[0].type, OptionType::kExpr);
  EXPECT_TRUE(Registry().Find("filter")->options[0].required);
}

// ---------------------------------------------------------------------------------------------
// filter

TEST(Filter, EmitsTheRowsWherePredicateIsTrue) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "id % 2 = 0"}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr out_schema, t->Bind({PeopleSchema()}));
  EXPECT_EQ(*out_schema, *PeopleSchema());
  auto out = Process(t.get(), People());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->ToString(),
            R"([[2,"bob",null,"2020-06-01T12:00:00Z"],[4,"dee",10.0,"2023-12-31T23:59:59Z"]])");
}

TEST(Filter, DropsNullAndFalseRows) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "created_at < '2024-01-01'"}}));
  auto out = Process(t.get(), People());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->num_rows(), 2);
  EXPECT_EQ(out[0]->column(0).GetInt64(0), 2);
  EXPECT_EQ(out[0]->column(0).GetInt64(1), 4);
}

TEST(Filter, EmitsNothingWhenNoRowPasses) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "created_at > now()"}}));
  EXPECT_TRUE(Process(t.get(), People()).empty());
}

TEST(Filter, PassesTheBatchItselfWhenEveryRowPasses) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "id > 0"}}));
  auto in = People();
  auto out = Process(t.get(), in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0], in);
}

TEST(Filter, BindsLazilyAndPerSchema) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "id >= 3"}}));
  EXPECT_EQ(Process(t.get(), People())[0]->num_rows(), 2);
  // A second schema where id is a float in another position.
  auto other = MakeSchema({{"x", TypeId::kBool}, {"id", TypeId::kFloat64}});
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(other, "[[true, 2.5], [false, 3.5]]"));
  auto out = Process(t.get(), batch);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->ToString(), "[[false,3.5]]");
  EXPECT_EQ(Process(t.get(), People())[0]->num_rows(), 2);
}

TEST(Filter, ReportsErrorsAgainstTheWhereOption) {
  EXPECT_THAT(MakeTransform("filter", {{"where", "id >"}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("node 't': option 'where': expression 'id >': at column 5: "
                                 "expected a value")));
  EXPECT_THAT(MakeTransform("filter", nlohmann::json::object()),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'where': is required")));
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "nmae = 'x'"}}));
  EXPECT_THAT(t->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'where': expression 'nmae = 'x'': unknown field 'nmae' "
                                 "\u2014 did you mean 'name'?")));
  CollectingEmitter out;
  EXPECT_THAT(t->Process(People(), 0, &out),
              StatusIs(StatusCode::kConfigError, HasSubstr("did you mean 'name'?")));
  ASSERT_OK_AND_ASSIGN(auto not_bool, MakeTransform("filter", {{"where", "id + 1"}}));
  EXPECT_THAT(not_bool->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("expression 'id + 1' is int64, but a filter needs a bool")));
  ASSERT_OK_AND_ASSIGN(auto mistyped, MakeTransform("filter", {{"where", "name > 5"}}));
  EXPECT_THAT(
      mistyped->Bind({PeopleSchema()}),
      StatusIs(StatusCode::kConfigError, HasSubstr("cannot compare string 'name' with int64 '5'")));
}

TEST(Filter, UnknownInputSchemaBindsToNull) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("filter", {{"where", "anything > 1"}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({nullptr}));
  EXPECT_EQ(schema, nullptr);
}

// ---------------------------------------------------------------------------------------------
// map

TEST(Map, MappingAddsAndReplacesColumnsFromTheInput) {
  // Under a mapping every expression sees the input row: double_id uses the original id.
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("map", {{"columns",
                                                      {{"id", "id * 10"},
                                                       {"double_id", "id * 2"},
                                                       {"label", "upper(coalesce(name, '?'))"}}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({PeopleSchema()}));
  EXPECT_EQ(schema->ToString(),
            "id:int64, name:string, score:float64, created_at:timestamp, double_id:int64, "
            "label:string");
  auto out = Process(t.get(), People());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(*out[0]->schema(), *schema);
  EXPECT_EQ(out[0]->ToString(), R"([[10,"ann",1.5,"2024-01-01T00:00:00Z",2,"ANN"],)"
                                R"([20,"bob",null,"2020-06-01T12:00:00Z",4,"BOB"],)"
                                R"([30,null,-2.0,null,6,"?"],)"
                                R"([40,"dee",10.0,"2023-12-31T23:59:59Z",8,"DEE"]])");
}

TEST(Map, ListRunsInOrderAndSeesEarlierColumns) {
  nlohmann::json columns = nlohmann::json::array(
      {{{"b", "id + 1"}}, {{"a", "b * 2"}}, {{"id", "a - b"}}, {{"big", "a > 5"}}});
  ASSERT_OK_AND_ASSIGN(auto t,
                       MakeTransform("map", {{"columns", columns}, {"drop", {"name", "score"}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({PeopleSchema()}));
  EXPECT_EQ(schema->ToString(), "id:int64, created_at:timestamp, b:int64, a:int64, big:bool");
  auto out = Process(t.get(), People());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->ToString(),
            R"([[2,"2024-01-01T00:00:00Z",2,4,false],[3,"2020-06-01T12:00:00Z",3,6,true],)"
            R"([4,null,4,8,true],[5,"2023-12-31T23:59:59Z",5,10,true]])");
}

TEST(Map, AcceptsValuesThatYamlTyped) {
  ASSERT_OK_AND_ASSIGN(
      auto t, MakeTransform("map", {{"columns", {{"one", 1}, {"yes", true}, {"x", 2.5}}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({PeopleSchema()}));
  EXPECT_EQ(schema->field(4).name, "one");
  EXPECT_EQ(schema->field(4).type, TypeId::kInt64);
  EXPECT_EQ(schema->field(5).type, TypeId::kFloat64);
  EXPECT_EQ(schema->field(6).type, TypeId::kBool);
}

TEST(Map, DropOnly) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("map", {{"drop", {"score", "created_at"}}}));
  auto in = People();
  auto out = Process(t.get(), in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->schema()->ToString(), "id:int64, name:string");
  EXPECT_EQ(out[0]->column(0).values_buffer(), in->column(0).values_buffer());  // zero-copy
}

TEST(Map, ReportsErrorsWithTheColumn) {
  EXPECT_THAT(MakeTransform("map", {{"columns", {{"x", "1 +"}}}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'columns': column 'x': expression '1 +': at column 4")));
  EXPECT_THAT(MakeTransform("map", nlohmann::json::object()),
              StatusIs(StatusCode::kConfigError, HasSubstr("at least one of 'columns' or 'drop'")));
  EXPECT_THAT(MakeTransform("map", {{"columns", "x"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("expected a mapping")));
  EXPECT_THAT(MakeTransform("map", {{"columns", {{"x", {1, 2}}}}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("'x': expected a string")));
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("map", {{"columns", {{"x", "nmae || 'a'"}}}}));
  EXPECT_THAT(t->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'columns': column 'x': expression 'nmae || 'a'': unknown "
                                 "field 'nmae'")));
  ASSERT_OK_AND_ASSIGN(auto d, MakeTransform("map", {{"drop", {"scroe"}}}));
  EXPECT_THAT(d->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'drop': unknown field 'scroe' \u2014 did you mean "
                                 "'score'?")));
}

// ---------------------------------------------------------------------------------------------
// select and rename

TEST(Select, KeepsTheListedColumnsInOrder) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("select", {{"columns", {"name", "id"}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({PeopleSchema()}));
  EXPECT_EQ(schema->ToString(), "name:string, id:int64");
  auto in = People();
  auto out = Process(t.get(), in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0]->ToString(), R"([["ann",1],["bob",2],[null,3],["dee",4]])");
  EXPECT_EQ(out[0]->column(1).values_buffer(), in->column(0).values_buffer());  // zero-copy
}

TEST(Select, ReportsUnknownAndDuplicateColumns) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("select", {{"columns", {"id", "nme"}}}));
  EXPECT_THAT(t->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'columns': unknown field 'nme' \u2014 did you mean "
                                 "'name'?")));
  EXPECT_THAT(MakeTransform("select", {{"columns", {"id", "id"}}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("'id' is listed twice")));
  EXPECT_THAT(MakeTransform("select", nlohmann::json::object()),
              StatusIs(StatusCode::kConfigError, HasSubstr("list at least one column")));
}

TEST(Rename, RenamesWithoutCopying) {
  ASSERT_OK_AND_ASSIGN(
      auto t, MakeTransform("rename", {{"columns", {{"name", "full_name"}, {"id", "pk"}}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({PeopleSchema()}));
  EXPECT_EQ(schema->ToString(), "pk:int64, full_name:string, score:float64, created_at:timestamp");
  auto in = People();
  auto out = Process(t.get(), in);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(*out[0]->schema(), *schema);
  EXPECT_EQ(out[0]->ToString(), in->ToString());
}

TEST(Rename, ReportsUnknownColumnsAndCollisions) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("rename", {{"columns", {{"nam", "n"}}}}));
  EXPECT_THAT(t->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError, HasSubstr("unknown field 'nam'")));
  ASSERT_OK_AND_ASSIGN(auto c, MakeTransform("rename", {{"columns", {{"name", "id"}}}}));
  EXPECT_THAT(c->Bind({PeopleSchema()}),
              StatusIs(StatusCode::kConfigError, HasSubstr("two columns are called 'id'")));
  // Swapping two names is fine.
  ASSERT_OK_AND_ASSIGN(auto swap,
                       MakeTransform("rename", {{"columns", {{"name", "id"}, {"id", "name"}}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr swapped, swap->Bind({PeopleSchema()}));
  EXPECT_EQ(swapped->field(0).name, "name");
  EXPECT_EQ(swapped->field(1).name, "id");
}

// ---------------------------------------------------------------------------------------------
// cast

SchemaPtr TextSchema() {
  return MakeSchema({{"s", TypeId::kString},
                     {"i", TypeId::kInt64},
                     {"f", TypeId::kFloat64},
                     {"b", TypeId::kBool},
                     {"t", TypeId::kTimestamp}});
}

std::string CastOne(const std::string& column, const std::string& type, const std::string& rows,
                    const std::string& on_error = "fail") {
  auto t = MakeTransform("cast", {{"columns", {{column, type}}}, {"on_error", on_error}});
  if (!t.ok()) return t.status().ToString();
  auto batch = BatchFromJson(TextSchema(), rows);
  if (!batch.ok()) return batch.status().ToString();
  CollectingEmitter out;
  Status st = (*t)->Process(*batch, 0, &out);
  if (!st.ok()) return st.ToString();
  const int index = TextSchema()->FieldIndex(column);
  auto rows_json = nlohmann::json::parse(out.rows.at(0)->ToString());
  nlohmann::json values = nlohmann::json::array();
  for (const auto& r : rows_json) values.push_back(r[static_cast<size_t>(index)]);
  EXPECT_EQ(out.rows[0]->schema()->field(index).type, *ParseTypeName(type));
  return values.dump();
}

TEST(Cast, StringToNumbersBoolsAndTimestamps) {
  const std::string rows =
      R"([[" 42 ", 0, 0, true, 0], ["-7", 0, 0, true, 0], [null, 0, 0, true, 0]])";
  EXPECT_EQ(CastOne("s", "int", rows), "[42,-7,null]");
  EXPECT_EQ(CastOne("s", "double", rows), "[42.0,-7.0,null]");
  EXPECT_EQ(CastOne("s", "bool", R"([["yes",0,0,true,0],["F",0,0,true,0],["1",0,0,true,0]])"),
            "[true,false,true]");
  EXPECT_EQ(CastOne("s", "timestamp", R"([["2024-05-06 07:08:09",0,0,true,0]])"),
            R"(["2024-05-06T07:08:09Z"])");
  EXPECT_EQ(CastOne("s", "json", R"([["{\"a\": 1}",0,0,true,0]])"), R"([{"a":1}])");
}

TEST(Cast, NumbersToOtherTypes) {
  const std::string rows = R"([["", 5, 2.75, true, "2024-01-02T03:04:05Z"],
                               ["", -1, -1e300, false, 0]])";
  EXPECT_EQ(CastOne("i", "string", rows), R"(["5","-1"])");
  EXPECT_EQ(CastOne("i", "float64", rows), "[5.0,-1.0]");
  EXPECT_EQ(CastOne("i", "bool", rows), "[true,true]");
  EXPECT_EQ(CastOne("i", "timestamp", rows),
            R"(["1970-01-01T00:00:00.000005Z","1969-12-31T23:59:59.999999Z"])");
  EXPECT_EQ(CastOne("f", "string", rows), R"(["2.75","-1e+300"])");
  EXPECT_EQ(CastOne("f", "int64", rows, "null"), "[2,null]");
  EXPECT_EQ(CastOne("b", "int64", rows), "[1,0]");
  EXPECT_EQ(CastOne("b", "string", rows), R"(["true","false"])");
  EXPECT_EQ(CastOne("t", "string", rows), R"(["2024-01-02T03:04:05Z","1970-01-01T00:00:00Z"])");
  EXPECT_EQ(CastOne("t", "int64", rows), "[1704164645000000,0]");
}

TEST(Cast, GeometriesFromAndToText) {
  // WKT, EWKT and hex EWKB read into EWKB (shown in hex); anything else is a bad value.
  EXPECT_EQ(CastOne("s", "geometry",
                    R"x([["POINT (1 2)", 0, 0, true, 0],
                        [" SRID=4326;POINT(1 2) ", 0, 0, true, 0],
                        ["0101000020e6100000000000000000f03f0000000000000040", 0, 0, true, 0]])x"),
            R"(["0101000000000000000000f03f0000000000000040",)"
            R"("0101000020e6100000000000000000f03f0000000000000040",)"
            R"("0101000020e6100000000000000000f03f0000000000000040"])");
  EXPECT_THAT(CastOne("s", "geometry", R"x([["POINT (1", 0, 0, true, 0]])x"),
              HasSubstr("row 0: cannot convert string 'POINT (1' to geometry"));
  EXPECT_THAT(CastOne("s", "geometry", R"([["0101", 0, 0, true, 0]])"),
              HasSubstr("cannot convert string '0101' to geometry"));
  // And back to text, as EWKT.
  auto to_geometry = MakeTransform("cast", {{"columns", {{"s", "geometry"}}}});
  auto to_text = MakeTransform("cast", {{"columns", {{"s", "string"}}}});
  ASSERT_OK(to_geometry.status());
  ASSERT_OK(to_text.status());
  ASSERT_OK_AND_ASSIGN(
      auto batch,
      BatchFromJson(TextSchema(), R"x([["SRID=3857;LINESTRING(0 0,1 1.5)",0,0,true,0]])x"));
  CollectingEmitter geometry, text;
  ASSERT_OK((*to_geometry)->Process(batch, 0, &geometry));
  ASSERT_OK((*to_text)->Process(geometry.rows.at(0), 0, &text));
  EXPECT_EQ(text.rows.at(0)->column(0).GetView(0), "SRID=3857;LINESTRING (0 0, 1 1.5)");
  // A json column of GeoJSON objects (WGS 84).
  auto to_json = MakeTransform("cast", {{"columns", {{"s", "json"}}}});
  ASSERT_OK(to_json.status());
  ASSERT_OK_AND_ASSIGN(
      auto objects,
      BatchFromJson(TextSchema(),
                    R"([["{\"type\":\"Point\",\"coordinates\":[1,2]}",0,0,true,0]])"));
  CollectingEmitter json, point, point_text;
  ASSERT_OK((*to_json)->Process(objects, 0, &json));
  ASSERT_OK((*to_geometry)->Process(json.rows.at(0), 0, &point));
  ASSERT_OK((*to_text)->Process(point.rows.at(0), 0, &point_text));
  EXPECT_EQ(point_text.rows.at(0)->column(0).GetView(0), "SRID=4326;POINT (1 2)");
}

TEST(Cast, SameBytesUnderAnotherTypeShareTheBuffers) {
  // json -> string, string -> bytes, bytes -> string, geometry -> bytes: the values (and nulls)
  // are those of the input, in the input's own buffers, also for a slice of a batch.
  const std::vector<std::pair<TypeId, TypeId>> relabels = {{TypeId::kJson, TypeId::kString},
                                                           {TypeId::kString, TypeId::kBytes},
                                                           {TypeId::kBytes, TypeId::kString},
                                                           {TypeId::kGeometry, TypeId::kBytes}};
  for (const auto& [from, to] : relabels) {
    SCOPED_TRACE(std::string(TypeName(from)) + " -> " + std::string(TypeName(to)));
    ColumnBuilder b(from);
    const std::vector<std::optional<std::string>> values = {
        "{\"a\":1}", std::nullopt, std::string("\0\xff\x01", 3), "", "\"é\"", std::nullopt};
    for (const auto& v : values) v ? b.AppendString(*v) : b.AppendNull();
    std::vector<Column> cols;
    cols.push_back(b.Finish());
    BatchPtr whole = Batch::MakeUnchecked(MakeSchema({{"v", from}}), std::move(cols), 6);
    BatchPtr batch = whole->Slice(1, 4);  // rows 1..4: null, bytes, empty, "é"
    ASSERT_OK_AND_ASSIGN(auto t,
                         MakeTransform("cast", {{"columns", {{"v", std::string(TypeName(to))}}}}));
    CollectingEmitter out;
    ASSERT_OK(t->Process(batch, 0, &out));
    ASSERT_EQ(out.rows.size(), 1u);
    const Column& c = out.rows[0]->column(0);
    EXPECT_EQ(c.type(), to);
    EXPECT_EQ(out.rows[0]->schema()->field(0).type, to);
    ASSERT_EQ(c.length(), 4);
    EXPECT_EQ(c.null_count(), 1);
    for (int64_t i = 0; i < 4; ++i) {
      const auto& want = values[static_cast<size_t>(i + 1)];
      ASSERT_EQ(c.IsNull(i), !want.has_value()) << i;
      if (want) {
        EXPECT_EQ(c.GetView(i), *want) << i;
      }
    }
    EXPECT_EQ(c.data_buffer().get(), batch->column(0).data_buffer().get());
  }
}

TEST(Cast, FailsWithTheRowOrMakesNull) {
  const std::string rows =
      R"([["12", 0, 0, true, 0], ["x12", 0, 0, true, 0], ["", 0, 0, true, 0]])";
  EXPECT_EQ(CastOne("s", "int64", rows),
            "invalid argument: node 't': column 's' row 1: cannot convert string 'x12' to int64 "
            "(set on_error: null to turn such values into nulls, or dead_letter to route their "
            "rows)");
  EXPECT_EQ(CastOne("s", "int64", rows, "null"), "[12,null,null]");
  EXPECT_THAT(CastOne("f", "int64", R"([["", 0, 1e300, true, 0]])"),
              HasSubstr("row 0: cannot convert float64 1e+300 to int64"));
  EXPECT_THAT(CastOne("s", "timestamp", R"([["yesterday", 0, 0, true, 0]])"),
              HasSubstr("cannot convert string 'yesterday' to timestamp"));
  EXPECT_THAT(CastOne("s", "json", R"([["{oops", 0, 0, true, 0]])"),
              HasSubstr("cannot convert string '{oops' to json"));
}

TEST(Cast, ChecksTypesWhenBinding) {
  EXPECT_THAT(MakeTransform("cast", {{"columns", {{"s", "integr"}}}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'columns': column 's': unknown type 'integr'")));
  EXPECT_THAT(MakeTransform("cast", {{"columns", {{"s", "int"}}}, {"on_error", "skip"}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("must be fail, null or dead_letter")));
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("cast", {{"columns", {{"b", "timestamp"}}}}));
  EXPECT_THAT(
      t->Bind({TextSchema()}),
      StatusIs(StatusCode::kConfigError, HasSubstr("cannot cast bool column 'b' to timestamp")));
  ASSERT_OK_AND_ASSIGN(auto u, MakeTransform("cast", {{"columns", {{"q", "int"}}}}));
  EXPECT_THAT(u->Bind({TextSchema()}),
              StatusIs(StatusCode::kConfigError, HasSubstr("unknown field 'q'")));
  ASSERT_OK_AND_ASSIGN(auto ok,
                       MakeTransform("cast", {{"columns", {{"i", "string"}, {"s", "text"}}}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, ok->Bind({TextSchema()}));
  EXPECT_EQ(schema->ToString(), "s:string, i:string, f:float64, b:bool, t:timestamp");
}

// ---------------------------------------------------------------------------------------------
// union

TEST(Union, PassesBatchesOfEqualSchemasThrough) {
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("union", nlohmann::json::object()));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({PeopleSchema(), PeopleSchema()}));
  EXPECT_EQ(*schema, *PeopleSchema());
  auto in = People();
  auto out0 = Process(t.get(), in, 0);
  auto out1 = Process(t.get(), in, 1);
  ASSERT_EQ(out0.size(), 1u);
  ASSERT_EQ(out1.size(), 1u);
  EXPECT_EQ(out0[0], in);
  EXPECT_EQ(out1[0], in);
}

TEST(Union, RejectsDifferentSchemasUnlessByName) {
  auto a = MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}});
  auto b = MakeSchema({{"name", TypeId::kString}, {"extra", TypeId::kBool}});
  ASSERT_OK_AND_ASSIGN(auto strict, MakeTransform("union", nlohmann::json::object()));
  EXPECT_THAT(strict->Bind({a, b}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("input 1 has columns [name:string, extra:bool] but input 0 has "
                                 "[id:int64, name:string]")));

  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("union", {{"by_name", true}}));
  ASSERT_OK_AND_ASSIGN(SchemaPtr schema, t->Bind({a, b}));
  EXPECT_EQ(schema->ToString(), "id:int64, name:string, extra:bool");
  ASSERT_OK_AND_ASSIGN(auto ba, BatchFromJson(a, R"([[1, "x"]])"));
  ASSERT_OK_AND_ASSIGN(auto bb, BatchFromJson(b, R"([["y", true], [null, false]])"));
  auto out_a = Process(t.get(), ba, 0);
  auto out_b = Process(t.get(), bb, 1);
  ASSERT_EQ(out_a.size(), 1u);
  ASSERT_EQ(out_b.size(), 1u);
  EXPECT_EQ(*out_a[0]->schema(), *schema);
  EXPECT_EQ(out_a[0]->ToString(), R"([[1,"x",null]])");
  EXPECT_EQ(out_b[0]->ToString(), R"([[null,"y",true],[null,null,false]])");

  auto c = MakeSchema({{"id", TypeId::kString}});
  EXPECT_THAT(t->Bind({a, c}), StatusIs(StatusCode::kConfigError,
                                        HasSubstr("column 'id' is int64 in an earlier input but "
                                                  "string in input 1")));
}

TEST(Union, UnboundSchemasAreFixedByTheFirstBatch) {
  auto a = MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}});
  auto b = MakeSchema({{"name", TypeId::kString}});
  auto c = MakeSchema({{"name", TypeId::kString}, {"other", TypeId::kBool}});
  ASSERT_OK_AND_ASSIGN(auto t, MakeTransform("union", {{"by_name", true}}));
  ASSERT_OK_AND_ASSIGN(auto ba, BatchFromJson(a, R"([[1, "x"]])"));
  ASSERT_OK_AND_ASSIGN(auto bb, BatchFromJson(b, R"([["y"]])"));
  ASSERT_OK_AND_ASSIGN(auto bc, BatchFromJson(c, R"([["z", true]])"));
  EXPECT_EQ(Process(t.get(), ba, 0)[0]->ToString(), R"([[1,"x"]])");
  EXPECT_EQ(Process(t.get(), bb, 1)[0]->ToString(), R"([[null,"y"]])");
  CollectingEmitter out;
  EXPECT_THAT(t->Process(bc, 2, &out),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("input 2 has a column 'other' that the output schema")));

  ASSERT_OK_AND_ASSIGN(auto strict, MakeTransform("union", nlohmann::json::object()));
  EXPECT_EQ(Process(strict.get(), ba, 0).size(), 1u);
  EXPECT_THAT(strict->Process(bb, 1, &out),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("set by_name: true")));
}

}  // namespace
}  // namespace sluice
