#include "sluice/expr/expr.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "sluice/core/time.h"
#include "sluice/expr/text_bytes.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

// ---------------------------------------------------------------------------------------------
// Parsing

std::string ParseError(std::string_view text) {
  auto r = ParseExpr(text);
  return r.ok() ? "OK" : r.status().message();
}

TEST(ParseExpr, BuildsTreeWithPrecedence) {
  ASSERT_OK_AND_ASSIGN(auto e, ParseExpr("a + b * c > 3 or not d and e"));
  ASSERT_EQ(e->kind, Expr::Kind::kBinary);
  EXPECT_EQ(e->op, Expr::Op::kOr);
  const Expr& cmp = *e->args[0];
  EXPECT_EQ(cmp.op, Expr::Op::kGt);
  EXPECT_EQ(cmp.text, "a + b * c > 3");
  const Expr& add = *cmp.args[0];
  EXPECT_EQ(add.op, Expr::Op::kAdd);
  EXPECT_EQ(add.args[0]->kind, Expr::Kind::kField);
  EXPECT_EQ(add.args[0]->name, "a");
  EXPECT_EQ(add.args[1]->op, Expr::Op::kMul);
  EXPECT_EQ(add.args[1]->text, "b * c");
  EXPECT_EQ(add.args[1]->position, 4);
  const Expr& conj = *e->args[1];
  EXPECT_EQ(conj.op, Expr::Op::kAnd);
  EXPECT_EQ(conj.args[0]->kind, Expr::Kind::kUnary);
  EXPECT_EQ(conj.args[0]->op, Expr::Op::kNot);
  EXPECT_EQ(e->height, 5);
}

TEST(ParseExpr, NotBindsLooserThanComparison) {
  ASSERT_OK_AND_ASSIGN(auto e, ParseExpr("!a = b"));
  EXPECT_EQ(e->op, Expr::Op::kNot);
  EXPECT_EQ(e->args[0]->op, Expr::Op::kEq);
}

TEST(ParseExpr, SymbolicOperatorsMatchKeywords) {
  ASSERT_OK_AND_ASSIGN(auto e, ParseExpr("a && b || c"));
  EXPECT_EQ(e->op, Expr::Op::kOr);
  EXPECT_EQ(e->args[0]->op, Expr::Op::kAnd);
  for (auto [text, op] : std::vector<std::pair<std::string, Expr::Op>>{{"a = 1", Expr::Op::kEq},
                                                                       {"a == 1", Expr::Op::kEq},
                                                                       {"a != 1", Expr::Op::kNe},
                                                                       {"a <> 1", Expr::Op::kNe},
                                                                       {"a < 1", Expr::Op::kLt},
                                                                       {"a <= 1", Expr::Op::kLe},
                                                                       {"a > 1", Expr::Op::kGt},
                                                                       {"a >= 1", Expr::Op::kGe},
                                                                       {"a % 1", Expr::Op::kMod},
                                                                       {"a / 1", Expr::Op::kDiv},
                                                                       {"a - 1", Expr::Op::kSub}}) {
    ASSERT_OK_AND_ASSIGN(auto parsed, ParseExpr(text));
    EXPECT_EQ(parsed->op, op) << text;
  }
}

TEST(ParseExpr, Literals) {
  ASSERT_OK_AND_ASSIGN(auto s, ParseExpr("'it''s'"));
  EXPECT_EQ(s->literal_kind, Expr::LiteralKind::kString);
  EXPECT_EQ(s->string_value, "it's");
  ASSERT_OK_AND_ASSIGN(auto f, ParseExpr("1.5e3"));
  EXPECT_EQ(f->literal_kind, Expr::LiteralKind::kFloat);
  EXPECT_EQ(f->float_value, 1500.0);
  ASSERT_OK_AND_ASSIGN(auto i, ParseExpr("9223372036854775807"));
  EXPECT_EQ(i->int_value, 9223372036854775807LL);
  ASSERT_OK_AND_ASSIGN(auto t, ParseExpr("TRUE"));
  EXPECT_EQ(t->literal_kind, Expr::LiteralKind::kBool);
  EXPECT_TRUE(t->bool_value);
  ASSERT_OK_AND_ASSIGN(auto n, ParseExpr("Null"));
  EXPECT_EQ(n->literal_kind, Expr::LiteralKind::kNull);
  ASSERT_OK_AND_ASSIGN(auto q, ParseExpr("\"odd \"\"name\"\"\""));
  EXPECT_EQ(q->kind, Expr::Kind::kField);
  EXPECT_EQ(q->name, "odd \"name\"");
}

TEST(ParseExpr, DurationsAreMicroseconds) {
  const std::vector<std::pair<std::string, int64_t>> cases = {
      {"90d", 90 * kMicrosPerDay},
      {"12h", 12 * 3600LL * kMicrosPerSecond},
      {"30m", 30 * 60LL * kMicrosPerSecond},
      {"15s", 15 * kMicrosPerSecond},
      {"500ms", 500'000},
      {"250us", 250},
      {"1h30m", 90 * 60LL * kMicrosPerSecond},
      {"2w", 14 * kMicrosPerDay},
  };
  for (const auto& [text, micros] : cases) {
    ASSERT_OK_AND_ASSIGN(auto e, ParseExpr(text));
    EXPECT_EQ(e->literal_kind, Expr::LiteralKind::kDuration) << text;
    EXPECT_EQ(e->int_value, micros) << text;
  }
}

TEST(ParseExpr, InIsAndCalls) {
  ASSERT_OK_AND_ASSIGN(auto in, ParseExpr("x not in (1, 2, 3)"));
  EXPECT_EQ(in->kind, Expr::Kind::kIn);
  EXPECT_TRUE(in->negated);
  EXPECT_EQ(in->args.size(), 4u);
  ASSERT_OK_AND_ASSIGN(auto is, ParseExpr("x IS NOT NULL"));
  EXPECT_EQ(is->kind, Expr::Kind::kIsNull);
  EXPECT_TRUE(is->negated);
  ASSERT_OK_AND_ASSIGN(auto call, ParseExpr("COALESCE(a, now())"));
  EXPECT_EQ(call->kind, Expr::Kind::kCall);
  EXPECT_EQ(call->name, "coalesce");
  ASSERT_EQ(call->args.size(), 2u);
  EXPECT_EQ(call->args[1]->name, "now");
  EXPECT_TRUE(call->args[1]->args.empty());
}

TEST(ParseExpr, ErrorsGiveTheColumn) {
  EXPECT_EQ(ParseError("a +"), "expression 'a +': at column 4: expected a value");
  EXPECT_EQ(ParseError(""), "expression '': at column 1: expected a value");
  EXPECT_EQ(ParseError("(a + 1"),
            "expression '(a + 1': at column 7: expected ')' to close '(' at column 1, got end of "
            "expression");
  EXPECT_EQ(ParseError("a = 'abc"), "expression 'a = 'abc': at column 5: unterminated string");
  EXPECT_EQ(ParseError("a # b"), "expression 'a # b': at column 3: unexpected character '#'");
  EXPECT_EQ(ParseError("a b"), "expression 'a b': at column 3: unexpected 'b'");
  EXPECT_THAT(ParseError("x < 90x"), HasSubstr("at column 5: '90x' is not a number or a duration"));
  EXPECT_THAT(ParseError("99999999999999999999"),
              HasSubstr("at column 1: integer '99999999999999999999' is out of range"));
  EXPECT_THAT(ParseError("1e999"), HasSubstr("number '1e999' is out of range"));
  EXPECT_THAT(ParseError("99999999999999w"), HasSubstr("is not a number or a duration"));
  EXPECT_THAT(ParseError("x in 1"), HasSubstr("at column 6: expected '(' after 'in', got '1'"));
  EXPECT_THAT(ParseError("x in ()"), HasSubstr("at column 7: expected a value, got ')'"));
  EXPECT_THAT(ParseError("x is 5"), HasSubstr("at column 6: expected 'null' after 'is', got '5'"));
  EXPECT_THAT(ParseError("x not 5"), HasSubstr("expected 'in' after 'not'"));
  EXPECT_THAT(ParseError("f(a b)"), HasSubstr("at column 5: expected ',' or ')'"));
  EXPECT_THAT(ParseError("a and or b"), HasSubstr("at column 7: expected a value, got 'or'"));
  EXPECT_THAT(ParseError("a & b"), HasSubstr("unexpected character '&'"));
  EXPECT_THAT(ParseError("a = \x01"), HasSubstr("unexpected byte 0x01"));
  EXPECT_THAT(ParseError("\"abc"), HasSubstr("unterminated quoted name"));
  EXPECT_EQ(ParseExpr("a +").status().code(), StatusCode::kInvalidArgument);
}

TEST(ParseExpr, RejectsDeepNesting) {
  EXPECT_THAT(ParseExpr(std::string(5000, '(') + "1" + std::string(5000, ')')),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nested more than")));
  EXPECT_THAT(ParseExpr(std::string(5000, '-') + "1"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nested more than")));
  std::string chain = "1";
  for (int i = 0; i < 1000; ++i) chain += " + 1";
  EXPECT_THAT(ParseExpr(chain),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("nested more than 200 levels")));
  std::string ok = "1";
  for (int i = 0; i < 150; ++i) ok += " + 1";
  EXPECT_OK(ParseExpr(ok));
}

// ---------------------------------------------------------------------------------------------
// Binding

SchemaPtr TestSchema() {
  return MakeSchema({{"id", TypeId::kInt64},
                     {"x", TypeId::kFloat64},
                     {"name", TypeId::kString},
                     {"flag", TypeId::kBool},
                     {"ts", TypeId::kTimestamp},
                     {"n", TypeId::kInt64},
                     {"b", TypeId::kBool},
                     {"data", TypeId::kBytes},
                     {"doc", TypeId::kJson},
                     {"odd name", TypeId::kString}});
}

std::string BindError(std::string_view text) {
  auto r = ParseAndBind(text, *TestSchema());
  return r.ok() ? "OK" : r.status().message();
}

TypeId TypeOf(std::string_view text) {
  auto r = ParseAndBind(text, *TestSchema());
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? (*r)->type() : TypeId::kJson;
}

TEST(Bind, ResultTypes) {
  EXPECT_EQ(TypeOf("id + 1"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("id + 1.5"), TypeId::kFloat64);
  EXPECT_EQ(TypeOf("id / 2"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("x % 2"), TypeId::kFloat64);
  EXPECT_EQ(TypeOf("-x"), TypeId::kFloat64);
  EXPECT_EQ(TypeOf("ts - 90d"), TypeId::kTimestamp);
  EXPECT_EQ(TypeOf("1d + ts"), TypeId::kTimestamp);
  EXPECT_EQ(TypeOf("now() - ts"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("ts - '2024-01-01'"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("id > x"), TypeId::kBool);
  EXPECT_EQ(TypeOf("coalesce(n, x)"), TypeId::kFloat64);
  EXPECT_EQ(TypeOf("coalesce(null, name)"), TypeId::kString);
  EXPECT_EQ(TypeOf("lower(\"odd name\")"), TypeId::kString);
  EXPECT_EQ(TypeOf("length(data)"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("date_trunc('day', ts)"), TypeId::kTimestamp);
  EXPECT_EQ(TypeOf("abs(n)"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("null"), TypeId::kBool);
  EXPECT_EQ(TypeOf("id + null"), TypeId::kInt64);
  EXPECT_EQ(TypeOf("name"), TypeId::kString);
}

TEST(Bind, UnknownFieldSuggestsTheClosestName) {
  EXPECT_EQ(BindError("nmae = 'x'"),
            "expression 'nmae = 'x'': unknown field 'nmae' \u2014 did you mean 'name'?");
  EXPECT_EQ(BindError("ID > 1"),
            "expression 'ID > 1': unknown field 'ID' \u2014 did you mean 'id'?");
  EXPECT_THAT(BindError("zzzzzz > 1"),
              HasSubstr("unknown field 'zzzzzz' (fields: id, x, name, flag, ts, n, b, data"));
}

TEST(Bind, TypeErrorsNameTheExpression) {
  EXPECT_EQ(BindError("name > 5"),
            "expression 'name > 5': cannot compare string 'name' with int64 '5'");
  EXPECT_THAT(BindError("ts < name"),
              HasSubstr("cannot compare timestamp 'ts' with string 'name'"));
  EXPECT_THAT(BindError("ts < 'yesterday'"), HasSubstr("'yesterday' is not a timestamp"));
  EXPECT_THAT(BindError("id and flag"), HasSubstr("'and' expects bool operands, got int64 'id'"));
  EXPECT_THAT(BindError("not name"), HasSubstr("'not' expects bool operands, got string 'name'"));
  EXPECT_THAT(BindError("-name"), HasSubstr("cannot negate string 'name'"));
  EXPECT_THAT(BindError("name + 1"), HasSubstr("cannot apply '+' to string 'name' and int64 '1'"));
  EXPECT_THAT(BindError("ts + ts"), HasSubstr("cannot apply '+' to timestamp 'ts' and timestamp"));
  EXPECT_THAT(BindError("ts * 2"), HasSubstr("cannot apply '*' to timestamp 'ts'"));
  EXPECT_THAT(BindError("id in (1, 'a')"),
              HasSubstr("cannot compare int64 'id' with string ''a'' in the list of 'in'"));
  EXPECT_THAT(BindError("coalesce(id, name)"),
              HasSubstr("coalesce() arguments must share a type, got int64 'id' and string"));
  EXPECT_THAT(BindError("coalesce()"), HasSubstr("coalesce() takes at least 1 argument"));
  EXPECT_THAT(BindError("lower(id)"), HasSubstr("lower() expects a string, got int64 'id'"));
  EXPECT_THAT(BindError("lower(name, name)"), HasSubstr("lower() takes 1 argument, got 2"));
  EXPECT_THAT(BindError("now(1)"), HasSubstr("now() takes 0 arguments, got 1"));
  EXPECT_THAT(BindError("length(id)"), HasSubstr("length() expects a string"));
  EXPECT_THAT(BindError("abs(name)"), HasSubstr("abs() expects int64 or float64"));
  EXPECT_THAT(BindError("date_trunc('fortnight', ts)"), HasSubstr("date_trunc() takes a unit"));
  EXPECT_THAT(BindError("date_trunc(name, ts)"), HasSubstr("got 'name'"));
  EXPECT_THAT(BindError("date_trunc('day', id)"),
              HasSubstr("date_trunc() expects a timestamp, got int64 'id'"));
  EXPECT_THAT(BindError("lowr(name)"),
              HasSubstr("unknown function 'lowr' \u2014 did you mean 'lower'?"));
  EXPECT_THAT(BindError("frobnicate(name)"),
              HasSubstr("unknown function 'frobnicate' (functions:"));
  EXPECT_THAT(ParseAndBind("name > 5", *TestSchema()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("name > 5")));
}

// ---------------------------------------------------------------------------------------------
// Evaluation

BatchPtr TestBatch() {
  auto batch = BatchFromJson(TestSchema(), R"([
    [1, 1.5, "Alice", true, "2024-03-15T10:30:45.5Z", 10, true, "00ff", {"a": 1}, "x"],
    [2, -2.0, "bob", false, "2024-01-01T00:00:00Z", null, false, "", [], "y"],
    [3, 0.0, null, true, null, 0, null, null, null, null],
    [4, null, "Émile", false, "1969-12-31T23:59:59Z", -7, true, "01", "é", "z"]
  ])");
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *batch;
}

// Evaluate `text` over `batch` and return the values as a JSON array ("[1,null,3]").
std::string Eval(std::string_view text, const BatchPtr& batch = TestBatch()) {
  auto bound = ParseAndBind(text, *batch->schema());
  if (!bound.ok()) return "error: " + bound.status().message();
  auto column = (*bound)->Evaluate(*batch);
  if (!column.ok()) return "error: " + column.status().message();
  EXPECT_EQ(column->length(), batch->num_rows());
  EXPECT_EQ(column->type(), (*bound)->type());
  auto out = Batch::Make(MakeSchema({{"r", column->type()}}), {*column});
  if (!out.ok()) return "error: " + out.status().message();
  auto rows = nlohmann::json::parse((*out)->ToString());
  nlohmann::json flat = nlohmann::json::array();
  for (const auto& r : rows) flat.push_back(r[0]);
  return flat.dump();
}

TEST(Evaluate, FieldsAndLiterals) {
  EXPECT_EQ(Eval("id"), "[1,2,3,4]");
  EXPECT_EQ(Eval("\"odd name\""), R"(["x","y",null,"z"])");
  EXPECT_EQ(Eval("7"), "[7,7,7,7]");
  EXPECT_EQ(Eval("'s'"), R"(["s","s","s","s"])");
  EXPECT_EQ(Eval("null"), "[null,null,null,null]");
  EXPECT_EQ(Eval("true"), "[true,true,true,true]");
  EXPECT_EQ(Eval("2.5"), "[2.5,2.5,2.5,2.5]");
}

TEST(Evaluate, Arithmetic) {
  EXPECT_EQ(Eval("id + n"), "[11,null,3,-3]");
  EXPECT_EQ(Eval("id - 1"), "[0,1,2,3]");
  EXPECT_EQ(Eval("n * 2"), "[20,null,0,-14]");
  EXPECT_EQ(Eval("n / 3"), "[3,null,0,-2]");
  EXPECT_EQ(Eval("n % 3"), "[1,null,0,-1]");
  EXPECT_EQ(Eval("id + x"), "[2.5,0.0,3.0,null]");
  EXPECT_EQ(Eval("x * 2"), "[3.0,-4.0,0.0,null]");
  EXPECT_EQ(Eval("x / 2"), "[0.75,-1.0,0.0,null]");
  EXPECT_EQ(Eval("x % 1"), "[0.5,-0.0,0.0,null]");
  EXPECT_EQ(Eval("-n"), "[-10,null,0,7]");
  EXPECT_EQ(Eval("-x"), "[-1.5,2.0,-0.0,null]");
  EXPECT_EQ(Eval("1 + 2 * 3"), "[7,7,7,7]");
  EXPECT_EQ(Eval("(1 + 2) * 3"), "[9,9,9,9]");
  EXPECT_EQ(Eval("id + null"), "[null,null,null,null]");
}

TEST(Evaluate, DivisionByZeroGivesNull) {
  EXPECT_EQ(Eval("id / n"), "[0,null,null,0]");
  EXPECT_EQ(Eval("id % n"), "[1,null,null,4]");
  EXPECT_EQ(Eval("id / 0"), "[null,null,null,null]");
  EXPECT_EQ(Eval("id % 0"), "[null,null,null,null]");
  EXPECT_EQ(Eval("x / 0.0"), "[null,null,null,null]");
  EXPECT_EQ(Eval("1 / x"), "[0.6666666666666666,-0.5,null,null]");
}

TEST(Evaluate, IntegerOverflowWraps) {
  EXPECT_EQ(Eval("9223372036854775807 + id"),
            "[-9223372036854775808,-9223372036854775807,-9223372036854775806,"
            "-9223372036854775805]");
  EXPECT_EQ(Eval("(-9223372036854775807 - id) / -1"),
            "[-9223372036854775808,-9223372036854775807,-9223372036854775806,"
            "-9223372036854775805]");
  EXPECT_EQ(Eval("(-9223372036854775807 - 1) / -1"),
            "[-9223372036854775808,-9223372036854775808,"
            "-9223372036854775808,-9223372036854775808]");
  EXPECT_EQ(Eval("(-9223372036854775807 - 1) % -1"), "[0,0,0,0]");
  EXPECT_EQ(Eval("abs(-9223372036854775807 - 1)"),
            "[-9223372036854775808,-9223372036854775808,"
            "-9223372036854775808,-9223372036854775808]");
  EXPECT_EQ(Eval("4611686018427387904 * id"),
            "[4611686018427387904,-9223372036854775808,-4611686018427387904,0]");
}

TEST(Evaluate, Comparisons) {
  EXPECT_EQ(Eval("id = 2"), "[false,true,false,false]");
  EXPECT_EQ(Eval("id == 2"), "[false,true,false,false]");
  EXPECT_EQ(Eval("id != 2"), "[true,false,true,true]");
  EXPECT_EQ(Eval("id <> 2"), "[true,false,true,true]");
  EXPECT_EQ(Eval("n < 1"), "[false,null,true,true]");
  EXPECT_EQ(Eval("n <= 0"), "[false,null,true,true]");
  EXPECT_EQ(Eval("n > 0"), "[true,null,false,false]");
  EXPECT_EQ(Eval("n >= 10"), "[true,null,false,false]");
  EXPECT_EQ(Eval("2 < id"), "[false,false,true,true]");
  EXPECT_EQ(Eval("id > x"), "[false,true,true,null]");
  EXPECT_EQ(Eval("name = 'bob'"), "[false,true,null,false]");
  EXPECT_EQ(Eval("name < 'b'"), "[true,false,null,false]");
  EXPECT_EQ(Eval("name >= \"odd name\""), "[false,false,null,true]");  // 0xC3 > z
  EXPECT_EQ(Eval("flag = b"), "[true,true,null,false]");
  EXPECT_EQ(Eval("flag > b"), "[false,false,null,false]");
  EXPECT_EQ(Eval("id = null"), "[null,null,null,null]");
  EXPECT_EQ(Eval("1 < 2"), "[true,true,true,true]");
}

TEST(Evaluate, ThreeValuedLogic) {
  auto schema = MakeSchema({{"p", TypeId::kBool}, {"q", TypeId::kBool}});
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(schema, R"([
    [true, true], [true, false], [true, null],
    [false, true], [false, false], [false, null],
    [null, true], [null, false], [null, null]])"));
  EXPECT_EQ(Eval("p and q", batch), "[true,false,null,false,false,false,null,false,null]");
  EXPECT_EQ(Eval("p && q", batch), "[true,false,null,false,false,false,null,false,null]");
  EXPECT_EQ(Eval("p or q", batch), "[true,true,true,true,false,null,true,null,null]");
  EXPECT_EQ(Eval("p || q", batch), "[true,true,true,true,false,null,true,null,null]");
  EXPECT_EQ(Eval("not p", batch), "[false,false,false,true,true,true,null,null,null]");
  EXPECT_EQ(Eval("!q", batch), "[false,true,null,false,true,null,false,true,null]");
  EXPECT_EQ(Eval("p and null", batch), "[null,null,null,false,false,false,null,null,null]");
  EXPECT_EQ(Eval("q or true", batch), "[true,true,true,true,true,true,true,true,true]");
  EXPECT_EQ(Eval("null or false", batch), "[null,null,null,null,null,null,null,null,null]");
  EXPECT_EQ(Eval("p is null", batch), "[false,false,false,false,false,false,true,true,true]");
  EXPECT_EQ(Eval("q is not null", batch), "[true,true,false,true,true,false,true,true,false]");
}

TEST(Evaluate, InLists) {
  EXPECT_EQ(Eval("id in (1, 3)"), "[true,false,true,false]");
  EXPECT_EQ(Eval("id not in (1, 3)"), "[false,true,false,true]");
  EXPECT_EQ(Eval("n in (10, 0)"), "[true,null,true,false]");
  // SQL: no match with a null in the list is null, not false.
  EXPECT_EQ(Eval("id in (1, null)"), "[true,null,null,null]");
  EXPECT_EQ(Eval("id not in (1, null)"), "[false,null,null,null]");
  EXPECT_EQ(Eval("id in (1.0, 2.5)"), "[true,false,false,false]");
  EXPECT_EQ(Eval("name in ('bob', 'Alice')"), "[true,true,null,false]");
  EXPECT_EQ(Eval("id in (n, 4)"), "[false,null,false,true]");
  EXPECT_EQ(Eval("ts in ('2024-01-01', '1969-12-31T23:59:59Z')"), "[false,true,null,true]");
}

TEST(Evaluate, IsNull) {
  EXPECT_EQ(Eval("name is null"), "[false,false,true,false]");
  EXPECT_EQ(Eval("name is not null"), "[true,true,false,true]");
  EXPECT_EQ(Eval("id is null"), "[false,false,false,false]");
  EXPECT_EQ(Eval("null is null"), "[true,true,true,true]");
  EXPECT_EQ(Eval("(n + 1) is null"), "[false,true,false,false]");
}

TEST(Evaluate, Functions) {
  EXPECT_EQ(Eval("coalesce(n, id)"), "[10,2,0,-7]");
  EXPECT_EQ(Eval("coalesce(n, -1)"), "[10,-1,0,-7]");
  EXPECT_EQ(Eval("coalesce(null, n)"), "[10,null,0,-7]");
  EXPECT_EQ(Eval("coalesce(name, \"odd name\", 'none')"), R"(["Alice","bob","none","Émile"])");
  EXPECT_EQ(Eval("coalesce(x, n)"), "[1.5,-2.0,0.0,-7.0]");
  EXPECT_EQ(Eval("coalesce(b, flag)"), "[true,false,true,true]");
  EXPECT_EQ(Eval("coalesce(id, n)"), "[1,2,3,4]");
  EXPECT_EQ(Eval("lower(name)"), R"(["alice","bob",null,"Émile"])");
  EXPECT_EQ(Eval("upper(name)"), R"(["ALICE","BOB",null,"ÉMILE"])");
  EXPECT_EQ(Eval("upper('abc')"), R"(["ABC","ABC","ABC","ABC"])");
  EXPECT_EQ(Eval("length(name)"), "[5,3,null,5]");
  EXPECT_EQ(Eval("length(data)"), "[2,0,null,1]");
  EXPECT_EQ(Eval("length(doc)"), R"([7,2,null,3])");
  EXPECT_EQ(Eval("abs(n)"), "[10,null,0,7]");
  EXPECT_EQ(Eval("abs(x)"), "[1.5,2.0,0.0,null]");
  EXPECT_EQ(Eval("lower(null)"), "[null,null,null,null]");
}

// A batch of one string column `t` holding `values`.
BatchPtr StringBatch(const std::vector<std::string>& values) {
  ColumnBuilder text(TypeId::kString, static_cast<int64_t>(values.size()));
  for (const std::string& v : values) text.AppendString(v);
  auto batch = Batch::Make(MakeSchema({{"t", TypeId::kString}}), {text.Finish()});
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *batch;
}

// length() counts code points: every byte but UTF-8 continuation bytes (10xxxxxx), also in
// malformed text. Strings of every length around the 8-byte words it reads, ASCII columns (a
// shortcut) and mixed ones, whole and sliced, against a byte-by-byte count.
TEST(Evaluate, LengthCountsCodePointsInEveryString) {
  std::mt19937_64 rng(7);
  const auto reference = [](std::string_view s) {
    int64_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
  };
  for (const bool ascii : {true, false}) {
    std::vector<std::string> values;
    for (int i = 0; i < 300; ++i) {
      std::string s;
      const int len = static_cast<int>(rng() % 40);
      for (int k = 0; k < len; ++k) {
        const uint64_t r = rng();
        if (ascii || r % 3 != 0) {
          s += static_cast<char>(0x20 + r % 0x5F);
        } else {
          // Lead and continuation bytes of 2-4 byte sequences, lone continuations, 0xFF.
          static constexpr unsigned char kHigh[] = {0xC3, 0xA9, 0xE2, 0x82, 0xAC, 0xF0,
                                                    0x9F, 0x98, 0x80, 0xBF, 0xFF, 0x80};
          s += static_cast<char>(kHigh[(r >> 8) % std::size(kHigh)]);
        }
      }
      values.push_back(s);
    }
    const BatchPtr batch = StringBatch(values);
    for (const auto& [offset, length] : {std::pair<int64_t, int64_t>{0, 300}, {13, 201}}) {
      const BatchPtr part = batch->Slice(offset, length);
      const auto got = nlohmann::json::parse(Eval("length(t)", part));
      ASSERT_EQ(got.size(), static_cast<size_t>(length));
      for (int64_t i = 0; i < length; ++i) {
        const std::string& s = values[static_cast<size_t>(offset + i)];
        EXPECT_EQ(got[static_cast<size_t>(i)].get<int64_t>(), reference(s))
            << "ascii=" << ascii << " row " << offset + i << " of " << s.size() << " bytes";
      }
    }
  }
}

// upper() and lower() change ASCII letters only; every other byte (UTF-8 sequences, malformed
// bytes, punctuation) is kept. Columns far longer than a vector register, whole and sliced.
TEST(Evaluate, UpperAndLowerChangeAsciiLettersOnly) {
  std::mt19937_64 rng(9);
  std::vector<std::string> values;
  for (int i = 0; i < 200; ++i) {
    std::string s;
    const int len = static_cast<int>(rng() % 90);
    for (int k = 0; k < len; ++k) s += static_cast<char>(rng() % 256);
    values.push_back(s);
  }
  const BatchPtr batch = StringBatch(values);
  for (const auto& [offset, length] : {std::pair<int64_t, int64_t>{0, 200}, {7, 150}}) {
    const BatchPtr part = batch->Slice(offset, length);
    for (const bool upper : {true, false}) {
      auto bound = ParseAndBind(upper ? "upper(t)" : "lower(t)", *part->schema());
      ASSERT_TRUE(bound.ok()) << bound.status().ToString();
      auto column = (*bound)->Evaluate(*part);
      ASSERT_TRUE(column.ok()) << column.status().ToString();
      ASSERT_EQ(column->length(), length);
      for (int64_t i = 0; i < length; ++i) {
        std::string want = values[static_cast<size_t>(offset + i)];
        for (char& c : want) {
          if (upper && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
          if (!upper && c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
        EXPECT_EQ(column->GetView(i), want) << (upper ? "upper" : "lower") << " row " << i;
      }
    }
  }
}

// The byte loops of every build this machine can run (the baseline one everywhere, the AVX2 one
// where the CPU has it) against byte-by-byte references: every length to 300 at every alignment,
// a high byte anywhere or nowhere.
TEST(TextBytes, EveryBuildAgreesWithAByteByByteReference) {
  using expr_internal::Isa;
  std::vector<Isa> builds = {Isa::kBaseline};
  if (expr_internal::BestIsa() == Isa::kAvx2) builds.push_back(Isa::kAvx2);
  std::mt19937_64 rng(5);
  std::vector<char> in(320), out(320);
  for (const Isa isa : builds) {
    for (int64_t len = 0; len <= 300; ++len) {
      for (int64_t at = 0; at < 8; ++at) {
        for (auto& c : in) c = static_cast<char>(0x20 + rng() % 0x5F);  // ASCII
        const bool high = rng() % 2 == 0 && len > 0;
        if (high) in[static_cast<size_t>(at + static_cast<int64_t>(rng() % len))] = '\xC3';
        const char* p = in.data() + at;
        EXPECT_EQ(expr_internal::IsAscii(p, len, isa), !high) << len << " at " << at;
        int64_t continuation = 0;
        for (int64_t i = 0; i < len; ++i)
          continuation += (static_cast<uint8_t>(p[i]) & 0xC0) == 0x80;
        EXPECT_EQ(expr_internal::ContinuationBytes(p, len), continuation);
        for (const bool upper : {true, false}) {
          const char lo = upper ? 'a' : 'A';
          expr_internal::FlipCase(p, out.data(), len, lo, static_cast<char>(lo + 25), isa);
          for (int64_t i = 0; i < len; ++i) {
            const char c = p[i];
            const char want = upper ? ((c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c)
                                    : ((c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c);
            ASSERT_EQ(out[static_cast<size_t>(i)], want)
                << "build " << static_cast<int>(isa) << " length " << len << " at " << at;
          }
        }
      }
    }
  }
}

TEST(Evaluate, DateTrunc) {
  EXPECT_EQ(Eval("date_trunc('year', ts)"),
            R"(["2024-01-01T00:00:00Z","2024-01-01T00:00:00Z",null,"1969-01-01T00:00:00Z"])");
  EXPECT_EQ(Eval("date_trunc('month', ts)"),
            R"(["2024-03-01T00:00:00Z","2024-01-01T00:00:00Z",null,"1969-12-01T00:00:00Z"])");
  EXPECT_EQ(Eval("date_trunc('week', ts)"),
            R"(["2024-03-11T00:00:00Z","2024-01-01T00:00:00Z",null,"1969-12-29T00:00:00Z"])");
  EXPECT_EQ(Eval("date_trunc('DAY', ts)"),
            R"(["2024-03-15T00:00:00Z","2024-01-01T00:00:00Z",null,"1969-12-31T00:00:00Z"])");
  EXPECT_EQ(Eval("date_trunc('hour', ts)"),
            R"(["2024-03-15T10:00:00Z","2024-01-01T00:00:00Z",null,"1969-12-31T23:00:00Z"])");
  EXPECT_EQ(Eval("date_trunc('minute', ts)"),
            R"(["2024-03-15T10:30:00Z","2024-01-01T00:00:00Z",null,"1969-12-31T23:59:00Z"])");
  EXPECT_EQ(Eval("date_trunc('second', ts)"),
            R"(["2024-03-15T10:30:45Z","2024-01-01T00:00:00Z",null,"1969-12-31T23:59:59Z"])");
  EXPECT_EQ(Eval("date_trunc('day', '2024-05-06T07:08:09Z') = '2024-05-06'"),
            "[true,true,true,true]");
}

TEST(Evaluate, TimestampsAndDurations) {
  EXPECT_EQ(
      Eval("ts + 1d"),
      R"(["2024-03-16T10:30:45.500000Z","2024-01-02T00:00:00Z",null,"1970-01-01T23:59:59Z"])");
  EXPECT_EQ(
      Eval("ts - 30m"),
      R"(["2024-03-15T10:00:45.500000Z","2023-12-31T23:30:00Z",null,"1969-12-31T23:29:59Z"])");
  EXPECT_EQ(
      Eval("500ms + ts"),
      R"(["2024-03-15T10:30:46Z","2024-01-01T00:00:00.500000Z",null,"1969-12-31T23:59:59.500000Z"])");
  EXPECT_EQ(Eval("ts - '2024-01-01'"), "[6431445500000,0,null,-1704067201000000]");
  EXPECT_EQ(Eval("ts >= '2024-01-01'"), "[true,true,null,false]");
  EXPECT_EQ(Eval("ts < '2024-01-01T00:00:00.000001Z'"), "[false,true,null,true]");
  EXPECT_EQ(Eval("ts > now() - 90d"), "[false,false,null,false]");
  EXPECT_EQ(Eval("ts < now() - 90d"), "[true,true,null,true]");
  EXPECT_EQ(Eval("now() - now()"), "[0,0,0,0]");
  EXPECT_EQ(
      Eval("coalesce(ts, '2000-01-01')"),
      R"(["2024-03-15T10:30:45.500000Z","2024-01-01T00:00:00Z","2000-01-01T00:00:00Z","1969-12-31T23:59:59Z"])");
}

TEST(Evaluate, NowIsTheCurrentTime) {
  auto batch = TestBatch();
  ASSERT_OK_AND_ASSIGN(auto bound, ParseAndBind("now()", *batch->schema()));
  const int64_t before = NowMicros();
  ASSERT_OK_AND_ASSIGN(Column c, bound->Evaluate(*batch));
  const int64_t after = NowMicros();
  ASSERT_EQ(c.type(), TypeId::kTimestamp);
  EXPECT_GE(c.GetInt64(0), before);
  EXPECT_LE(c.GetInt64(0), after);
  EXPECT_EQ(c.GetInt64(3), c.GetInt64(0));
}

TEST(Evaluate, SlicedInputsKeepTheirNulls) {
  // Nulls at every third row; slices at bit offsets that are and are not multiples of 8.
  auto schema = MakeSchema({{"v", TypeId::kInt64}, {"s", TypeId::kString}, {"e", TypeId::kBool}});
  std::string json = "[";
  for (int i = 0; i < 40; ++i) {
    if (i > 0) json += ",";
    const char* even = i % 2 == 0 ? "true" : "false";
    json += i % 3 == 0 ? fmt::format("[null, null, {}]", even)
                       : fmt::format("[{}, \"s{}\", {}]", i, i, even);
  }
  json += "]";
  ASSERT_OK_AND_ASSIGN(auto batch, BatchFromJson(schema, json));
  for (int64_t offset : {0, 3, 8, 13}) {
    auto slice = batch->Slice(offset, 20);
    std::string expected_sum = "[";
    std::string expected_upper = "[";
    std::string expected_and = "[";
    for (int64_t i = offset; i < offset + 20; ++i) {
      if (i > offset) {
        expected_sum += ",";
        expected_upper += ",";
        expected_and += ",";
      }
      const bool null = i % 3 == 0;
      expected_sum += null ? "null" : std::to_string(i + 1);
      expected_upper += null ? "null" : fmt::format("\"S{}\"", i);
      expected_and += null ? (i % 2 == 0 ? "false" : "null") : (i % 2 == 0 ? "false" : "true");
    }
    expected_sum += "]";
    expected_upper += "]";
    expected_and += "]";
    EXPECT_EQ(Eval("v + 1", slice), expected_sum) << offset;
    EXPECT_EQ(Eval("v + (v - v) + 1", slice), expected_sum) << offset;
    EXPECT_EQ(Eval("upper(s)", slice), expected_upper) << offset;
    EXPECT_EQ(Eval("coalesce(upper(s), null)", slice), expected_upper) << offset;
    EXPECT_EQ(Eval("not e and v > 0", slice), expected_and) << offset;
  }
}

// Code points of valid UTF-8: its bytes less its continuation bytes.
int64_t CodePoints(std::string_view s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

TEST(Evaluate, ExpressionsWithStringTemporariesGiveEveryRowOfALargeBatch) {
  // A number or bool computed from strings is evaluated a slice of rows at a time (1024), so
  // that its strings stay in the cache: the batch is sliced at offsets that are not a multiple
  // of that, has nulls on the slices' edges, unicode, empty strings, and rows past the last
  // whole slice.
  auto schema = MakeSchema({{"s", TypeId::kString}, {"t", TypeId::kString}, {"v", TypeId::kInt64}});
  const std::vector<std::string> pieces = {"a", "Z", "é", "ß", "日本", "🙂", " ", "x_y", "Ω"};
  std::mt19937 rng(18);
  ColumnBuilder s(TypeId::kString), t(TypeId::kString), v(TypeId::kInt64);
  std::vector<std::optional<std::string>> ss, ts;
  constexpr int64_t kRows = 5003;
  for (int64_t i = 0; i < kRows; ++i) {
    auto text = [&]() -> std::optional<std::string> {
      if (rng() % 7 == 0 || i == 1023 || i == 1024 || i == 1027 || i == 2050) return std::nullopt;
      std::string out;
      for (uint32_t k = rng() % 12; k > 0; --k) out += pieces[rng() % pieces.size()];
      return out;
    };
    ss.push_back(text());
    ts.push_back(text());
    ss.back() ? s.AppendString(*ss.back()) : s.AppendNull();
    ts.back() ? t.AppendString(*ts.back()) : t.AppendNull();
    v.AppendInt64(i);
  }
  auto whole = Batch::MakeUnchecked(schema, {s.Finish(), t.Finish(), v.Finish()}, kRows);
  for (int64_t offset : {0, 3}) {
    auto batch = whole->Slice(offset, kRows - offset);
    const int64_t rows = batch->num_rows();
    ASSERT_OK_AND_ASSIGN(auto sum,
                         ParseAndBind("length(lower(s)) * 3 + length(upper(t)) - v", *schema));
    ASSERT_OK_AND_ASSIGN(Column got, sum->Evaluate(*batch));
    ASSERT_EQ(got.length(), rows);
    ASSERT_OK_AND_ASSIGN(auto first, ParseAndBind("coalesce(length(upper(s)), -1)", *schema));
    ASSERT_OK_AND_ASSIGN(Column got_first, first->Evaluate(*batch));
    ASSERT_OK_AND_ASSIGN(auto constant, ParseAndBind("length(upper('héllo'))", *schema));
    ASSERT_OK_AND_ASSIGN(Column five, constant->Evaluate(*batch));
    ASSERT_EQ(five.length(), rows);
    int64_t nulls = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const auto& a = ss[static_cast<size_t>(offset + i)];
      const auto& b = ts[static_cast<size_t>(offset + i)];
      if (!a || !b) {
        ++nulls;
        EXPECT_FALSE(got.IsValid(i)) << offset << " row " << i;
      } else {
        ASSERT_TRUE(got.IsValid(i)) << offset << " row " << i;
        EXPECT_EQ(got.GetInt64(i), CodePoints(*a) * 3 + CodePoints(*b) - (offset + i))
            << offset << " row " << i;
      }
      EXPECT_EQ(got_first.GetInt64(i), a ? CodePoints(*a) : -1) << offset << " row " << i;
      EXPECT_EQ(five.GetInt64(i), 5) << offset << " row " << i;
    }
    EXPECT_EQ(got.null_count(), nulls) << offset;

    // A filter on strings keeps the rows a row-by-row reading keeps, in order.
    ASSERT_OK_AND_ASSIGN(auto pred, ParseAndBind("length(lower(s)) % 3 = 1", *schema));
    ASSERT_OK_AND_ASSIGN(auto kept, pred->Filter(batch));
    std::vector<int64_t> expected;
    for (int64_t i = 0; i < rows; ++i) {
      const auto& a = ss[static_cast<size_t>(offset + i)];
      if (a && CodePoints(*a) % 3 == 1) expected.push_back(offset + i);
    }
    ASSERT_EQ(kept->num_rows(), static_cast<int64_t>(expected.size())) << offset;
    for (size_t k = 0; k < expected.size(); ++k) {
      EXPECT_EQ(kept->column(2).GetInt64(static_cast<int64_t>(k)), expected[k]) << offset;
    }
  }
}

TEST(Evaluate, EmptyBatches) {
  // Found by expr_fuzz: three-valued logic over zero rows passed null to memset.
  auto empty = TestBatch()->Slice(0, 0);
  EXPECT_EQ(Eval("id not in (1, null, n)", empty), "[]");
  EXPECT_EQ(Eval("b and flag", empty), "[]");
  EXPECT_EQ(Eval("coalesce(name, 'x')", empty), "[]");
  EXPECT_EQ(Eval("'x'", empty), "[]");
}

TEST(Evaluate, RejectsABatchWithAnotherSchema) {
  auto batch = TestBatch();
  ASSERT_OK_AND_ASSIGN(auto bound, ParseAndBind("n + 1", *batch->schema()));
  auto other = MakeSchema({{"n", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto other_batch, BatchFromJson(other, R"([["a"]])"));
  EXPECT_THAT(bound->Evaluate(*other_batch),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("expression 'n + 1': field 'n' (int64) is not at position 6")));
}

// ---------------------------------------------------------------------------------------------
// Filtering

TEST(Filter, KeepsRowsWherePredicateIsTrue) {
  auto batch = TestBatch();
  ASSERT_OK_AND_ASSIGN(auto even, ParseAndBind("id % 2 = 0", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out, even->Filter(batch));
  EXPECT_EQ(out->num_rows(), 2);
  EXPECT_EQ(out->column(0).GetInt64(0), 2);
  EXPECT_EQ(out->column(0).GetInt64(1), 4);
}

TEST(Filter, DropsNullPredicates) {
  auto batch = TestBatch();
  ASSERT_OK_AND_ASSIGN(auto positive, ParseAndBind("n >= 0", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out, positive->Filter(batch));
  ASSERT_EQ(out->num_rows(), 2);
  EXPECT_EQ(out->column(0).GetInt64(0), 1);
  EXPECT_EQ(out->column(0).GetInt64(1), 3);
}

TEST(Filter, ReturnsTheSameBatchWhenAllPassAndEmptyWhenNone) {
  auto batch = TestBatch();
  ASSERT_OK_AND_ASSIGN(auto all, ParseAndBind("id > 0", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out_all, all->Filter(batch));
  EXPECT_EQ(out_all, batch);
  ASSERT_OK_AND_ASSIGN(auto none, ParseAndBind("id > 100", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out_none, none->Filter(batch));
  EXPECT_EQ(out_none->num_rows(), 0);
  ASSERT_OK_AND_ASSIGN(auto always, ParseAndBind("true or null", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out_always, always->Filter(batch));
  EXPECT_EQ(out_always, batch);
  ASSERT_OK_AND_ASSIGN(auto never, ParseAndBind("null", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out_never, never->Filter(batch));
  EXPECT_EQ(out_never->num_rows(), 0);
  ASSERT_OK_AND_ASSIGN(auto no_nulls, ParseAndBind("id is not null", *batch->schema()));
  ASSERT_OK_AND_ASSIGN(auto out_no_nulls, no_nulls->Filter(batch));
  EXPECT_EQ(out_no_nulls, batch);
}

TEST(Filter, RejectsNonBoolExpressions) {
  auto batch = TestBatch();
  ASSERT_OK_AND_ASSIGN(auto bound, ParseAndBind("id + 1", *batch->schema()));
  EXPECT_THAT(bound->Filter(batch),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("is int64, not bool")));
}

TEST(ClosestName, UsesEditDistanceWithTranspositions) {
  const std::vector<std::string> names = {"name", "created_at", "id"};
  EXPECT_EQ(ClosestName("nmae", names), "name");
  EXPECT_EQ(ClosestName("craeted_at", names), "created_at");
  EXPECT_EQ(ClosestName("created", names), "");
  EXPECT_EQ(ClosestName("xyz", names), "");
}

}  // namespace
}  // namespace sluice
