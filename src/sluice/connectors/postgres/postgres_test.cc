// The `postgres` source and sink against the server of `scripts/services start`.

#include "sluice/connectors/postgres/postgres.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/connectors/postgres/pg_test_util.h"
#include "sluice/connectors/postgres/pg_types.h"
#include "sluice/core/time.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::sluice::testing::IsOk;
using ::sluice::testing::StatusIs;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

class PostgresNodesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dsn_ = pg::TestDsn();
    ASSERT_FALSE(dsn_.empty());
    ASSERT_OK_AND_ASSIGN(admin_, pg::PgConnection::Connect(dsn_));
  }
  void TearDown() override {
    for (const auto& t : tables_) (void)admin_->Exec("DROP TABLE IF EXISTS " + t + " CASCADE");
    for (const auto& t : types_) (void)admin_->Exec("DROP TYPE IF EXISTS " + t + " CASCADE");
    for (const auto& t : types_) (void)admin_->Exec("DROP DOMAIN IF EXISTS " + t + " CASCADE");
  }

  std::string NewName(std::string_view stem = "t") {
    tables_.push_back(pg::UniqueTableName(stem));
    return tables_.back();
  }
  void Exec(const std::string& sql) { ASSERT_THAT(admin_->Exec(sql), IsOk()) << sql; }
  std::string Text(const std::string& sql) { return pg::QueryText(admin_.get(), sql); }
  int64_t Int(const std::string& sql) { return pg::QueryInt(admin_.get(), sql); }

  NodeContext* Context(const std::string& id) {
    contexts_.push_back(
        std::make_unique<NodeContext>(id, "postgres", &stats_, &cancelled_, /*dry_run=*/false));
    return contexts_.back().get();
  }

  Result<std::unique_ptr<Source>> OpenSource(OptionJson options) {
    if (!options.contains("dsn")) options["dsn"] = dsn_;
    SLUICE_ASSIGN_OR_RETURN(auto source, MakePostgresSource(NodeOptions::ForTest("src", options)));
    SLUICE_RETURN_NOT_OK(source->Open(Context("src")));
    return source;
  }

  Result<std::unique_ptr<Sink>> OpenSink(OptionJson options) {
    if (!options.contains("dsn")) options["dsn"] = dsn_;
    SLUICE_ASSIGN_OR_RETURN(auto sink, MakePostgresSink(NodeOptions::ForTest("out", options)));
    SLUICE_RETURN_NOT_OK(sink->Open(Context("out")));
    return sink;
  }

  // Read every batch; return their sizes.
  static std::vector<int64_t> ReadAll(Source* source, std::vector<BatchPtr>* batches) {
    std::vector<int64_t> sizes;
    for (uint64_t seq = 0;; ++seq) {
      auto next = source->Next(seq);
      EXPECT_THAT(next, IsOk());
      if (!next.ok() || *next == nullptr) break;
      sizes.push_back((*next)->num_rows());
      batches->push_back(*next);
    }
    return sizes;
  }

  int64_t Counter(const std::string& name) {
    auto counters = stats_.Counters();
    auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }

  std::string dsn_;
  std::unique_ptr<pg::PgConnection> admin_;
  std::vector<std::string> tables_;
  std::vector<std::string> types_;  // dropped after the tables
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  std::vector<std::unique_ptr<NodeContext>> contexts_;
};

SchemaPtr EveryTypeSchema() {
  return MakeSchema({{"b", TypeId::kBool},
                     {"i", TypeId::kInt64},
                     {"f", TypeId::kFloat64},
                     {"s", TypeId::kString},
                     {"y", TypeId::kBytes},
                     {"ts", TypeId::kTimestamp},
                     {"g", TypeId::kGeometry},
                     {"j", TypeId::kJson}});
}

// A point (1 2) with SRID 4326 and a line, as EWKB.
constexpr const char* kEveryTypeRows = R"([
  [true, 1, 1.5, "a", "00ff", "2024-01-02T03:04:05.123456Z",
   "0101000020e6100000000000000000f03f0000000000000040", {"k": [1, 2]}],
  [false, -9223372036854775808, -0.25, "", "", "1901-12-13T20:45:52Z",
   "0102000000020000000000000000000000000000000000000000000000000000400000000000000040", "text"],
  [null, null, null, null, null, null, null, null],
  [true, 9223372036854775807, 1e300, "ünïcode ✓", "000102", "2262-04-11T23:47:16Z", null, 42]
])";

TEST_F(PostgresNodesTest, SinkThenSourceRoundTripsEveryTypeIncludingGeometry) {
  const std::string table = NewName();
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(EveryTypeSchema(), kEveryTypeRows));
  {
    ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table}, {"create_table", true}}));
    ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
    ASSERT_THAT(sink->Close(), IsOk());
  }
  // The server sees real PostGIS geometries, jsonb and timestamptz.
  EXPECT_EQ(Text("SELECT ST_AsText(g) || ' ' || ST_SRID(g) FROM " + table + " WHERE i = 1"),
            "POINT(1 2) 4326");
  EXPECT_EQ(Text("SELECT j->'k'->>1 FROM " + table + " WHERE i = 1"), "2");
  EXPECT_EQ(Text("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = '" +
                 table + "'::regclass AND attname = 'ts'"),
            "timestamp with time zone");
  EXPECT_EQ(Text("SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') FROM " + table +
                 " WHERE i = 1"),
            "2024-01-02 03:04:05.123456");

  ASSERT_OK_AND_ASSIGN(auto source,
                       OpenSource({{"query", "SELECT * FROM " + table + " ORDER BY i NULLS LAST"},
                                   {"schema", {{"j", "json"}}}}));
  EXPECT_EQ(*source->schema(), *EveryTypeSchema());
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(source.get(), &batches), std::vector<int64_t>{4});
  ASSERT_EQ(batches.size(), 1u);
  ASSERT_OK_AND_ASSIGN(BatchPtr expected, BatchFromJson(EveryTypeSchema(), kEveryTypeRows));
  // Ordered by i: the row with i = NULL comes last.
  EXPECT_EQ(batches[0]->ToString(),
            Batch::MakeUnchecked(expected->schema(), expected->Take({1, 0, 3, 2})->columns(), 4)
                ->ToString());
  ASSERT_THAT(source->Close(), IsOk());
}

TEST_F(PostgresNodesTest, SourceReadsPostgresTypesAndCastsTheRestToText) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table +
       " (a int2, b int4, c real, n numeric(12, 3), v varchar(10), u uuid, d date, "
       "t timestamp, js json, iv interval, arr int[])");
  Exec("INSERT INTO " + table +
       " VALUES (-2, 70000, 0.5, 12345.678, 'hi', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
       "'1969-07-20', '2000-01-01 00:00:01', '[1, 2]', '1 day 2 hours', '{1,2}')");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", table}}));
  EXPECT_EQ(source->schema()->ToString(),
            "a:int64, b:int64, c:float64, n:string, v:string, u:string, d:string, "
            "t:timestamp, js:string, iv:string, arr:string");
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(),
            R"([[-2,70000,0.5,"12345.678","hi","a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",)"
            R"("1969-07-20","2000-01-01T00:00:01Z","[1, 2]","1 day 02:00:00","{1,2}"]])");

  // The old mappings on request: numeric as float64, date as timestamp, json as json.
  ASSERT_OK_AND_ASSIGN(
      auto old, OpenSource({{"table", table},
                            {"columns", {"n", "d", "js"}},
                            {"schema", {{"n", "float64"}, {"d", "timestamp"}, {"js", "json"}}}}));
  batches.clear();
  ReadAll(old.get(), &batches);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), R"([[12345.678,"1969-07-20T00:00:00Z",[1,2]]])");

  // Declared as string, a numeric keeps every digit.
  ASSERT_OK_AND_ASSIGN(auto exact, OpenSource({{"table", table},
                                               {"columns", {"n", "b"}},
                                               {"schema", {{"n", "string"}, {"b", "string"}}}}));
  batches.clear();
  ReadAll(exact.get(), &batches);
  ASSERT_EQ(batches.size(), 1u);
  EXPECT_EQ(batches[0]->ToString(), R"([["12345.678","70000"]])");

  EXPECT_THAT(OpenSource({{"table", table}, {"schema", {{"d", "bool"}}}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("column 'd' is PostgreSQL date")));
  EXPECT_THAT(OpenSource({{"table", table}, {"schema", {{"zz", "string"}}}}),
              StatusIs(StatusCode::kConfigError, HasSubstr("names column 'zz'")));
}

// A table of every kind of PostgreSQL value that has been lost before: numerics beyond double,
// non-finite floats, numerics, dates and timestamps, json spelled oddly, JSON null beside SQL
// NULL, and types without a binary codec (read and written as their text forms).
std::string Nulls(int n) {
  std::string out;
  for (int i = 0; i < n; ++i) out += ", NULL";
  return out;
}

std::vector<std::string> EveryValueTableSql(const std::string& t) {
  std::vector<std::string> sql;
  sql.push_back("CREATE TYPE " + t + "_mood AS ENUM ('sad', 'ok', 'happy')");
  sql.push_back("CREATE DOMAIN " + t + "_pos AS int CHECK (VALUE > 0)");
  sql.push_back("CREATE TYPE " + t + "_pair AS (a int, b text)");
  sql.push_back(
      "CREATE TABLE " + t + " (id int PRIMARY KEY, n30 numeric(30,10), n numeric, f4 real, " +
      "f8 float8, ts timestamp, tstz timestamptz, d date, j json, jb jsonb, tx text, " +
      "by bytea, ip inet, net cidr, mac macaddr, arr int[], tarr text[], iv interval, " +
      "tm time, tmtz timetz, m money, r int4range, tsr tstzrange, e " + t + "_mood, dom " + t +
      "_pos, comp " + t + "_pair, bits bit(8), vb varbit, x xml, tsv tsvector, u uuid, " +
      "bo bool, i2 int2, i8 int8, ch char(5), vc varchar(10), \"_meta\" text, " + "\"a.b\" text)");
  sql.push_back(
      "INSERT INTO " + t +
      " VALUES "
      "(1, 12345678901234567890.1234567890, 99999999999999999999999999999999999999.5, "
      "'NaN', 'Infinity', 'infinity', '-infinity', '5874897-12-31', "
      "'{\"a\" :  1,  \"a\":2}', '{\"b\": [1, 2.50, 1e400]}', 'ünïcode ✓ 日本', "
      "'\\x00ff00', '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '{1,NULL,3}', "
      "'{\"a,b\",\"c\\\"d\",NULL}', '-1 year 2 mons -3 days 04:05:06.789', '23:59:59.999999', "
      "'12:00:00+05:30', '-1234.56', '[1,10)', "
      "'[2024-01-01 00:00:00+00,infinity)', 'happy', 7, ROW(1, 'x,y'), B'10100101', "
      "B'101', '<a b=\"c\">d</a>', 'fat:1A cat:2', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', "
      "true, -32768, 9223372036854775807, 'ab', 'xyz', 'meta', 'dot'), "
      "(2, -0.0000000001, 'NaN', '-Infinity', 'NaN', '-infinity', 'infinity', '-infinity', "
      "'null', 'null', '', '', '::1', '::/0', '00:00:00:00:00:00', '{}', '{}', '0', "
      "'00:00', '00:00:00-12', '0', 'empty', '(,)', 'sad', 1, ROW(NULL, NULL), B'00000000', "
      "B'', '', '', '00000000-0000-0000-0000-000000000000', false, 0, 0, '', '', '', ''), "
      "(3, 0.0000000000, 'Infinity', 'Infinity', '-Infinity', "
      "'294247-01-10 04:00:54.775806', '4713-01-01 00:00:00+00 BC', '4714-11-24 BC', "
      "E'{\\n  \"k\": \"v\\\\tw\"\\n}', '[]', E'tab\\tnew\\nline \"q\" \\\\ back', "
      "'\\x'" +
      Nulls(26) +
      "), "
      "(4, NULL, '-Infinity', '-0', '-0', '2000-01-01 00:00:00.000001', "
      "'1970-01-01 00:00:00+00', 'infinity'" +
      Nulls(30) + "), (5" + Nulls(37) + ")");
  return sql;
}

TEST_F(PostgresNodesTest, EveryValueRoundTripsExactlyThroughSourceAndSinkInEveryMode) {
  const std::string from = NewName("from");
  for (const char* type : {"_mood", "_pos", "_pair"}) types_.push_back(from + type);
  for (const std::string& sql : EveryValueTableSql(from)) Exec(sql);
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", from}, {"batch_rows", 2}}));
  const Schema& schema = *source->schema();
  EXPECT_EQ(schema.field(schema.FieldIndex("n30")).type, TypeId::kString);
  EXPECT_EQ(schema.field(schema.FieldIndex("ip")).type, TypeId::kString);
  EXPECT_EQ(schema.field(schema.FieldIndex("_meta")).type, TypeId::kString);
  std::vector<BatchPtr> batches;
  EXPECT_EQ(ReadAll(source.get(), &batches), (std::vector<int64_t>{2, 2, 1}));
  ASSERT_OK_AND_ASSIGN(BatchPtr all, Concatenate(batches));
  const Column& n30 = all->column(schema.FieldIndex("n30"));
  EXPECT_EQ(n30.GetView(0), "12345678901234567890.1234567890");
  EXPECT_EQ(all->column(schema.FieldIndex("n")).GetView(0),
            "99999999999999999999999999999999999999.5");
  EXPECT_EQ(all->column(schema.FieldIndex("d")).GetView(0), "5874897-12-31");
  EXPECT_EQ(all->column(schema.FieldIndex("j")).GetView(0), R"({"a" :  1,  "a":2})");
  EXPECT_EQ(all->column(schema.FieldIndex("j")).GetView(1), "null");
  EXPECT_TRUE(all->column(schema.FieldIndex("j")).IsNull(3));
  EXPECT_EQ(all->column(schema.FieldIndex("tstz")).GetInt64(0),
            std::numeric_limits<int64_t>::min());
  EXPECT_EQ(all->column(schema.FieldIndex("ip")).GetView(0), "192.168.0.1/24");

  const std::string digest = "SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM ";
  const std::string want = Text(digest + from + " t");
  ASSERT_FALSE(want.empty());
  for (const char* mode : {"insert", "upsert", "insert_batch"}) {
    SCOPED_TRACE(mode);
    const std::string to = NewName("to");
    Exec("CREATE TABLE " + to + " (LIKE " + from + " INCLUDING ALL)");
    OptionJson options = {{"table", to}, {"mode", mode}};
    if (std::string_view(mode) == "upsert") options["key"] = {"id"};
    ASSERT_OK_AND_ASSIGN(auto sink, OpenSink(options));
    for (const BatchPtr& b : batches) ASSERT_THAT(sink->Write(b, AckSet()), IsOk());
    if (std::string_view(mode) == "upsert") {  // again: every row updated to itself
      for (const BatchPtr& b : batches) ASSERT_THAT(sink->Write(b, AckSet()), IsOk());
    }
    ASSERT_THAT(sink->Close(), IsOk());
    EXPECT_EQ(Text(digest + to + " t"), want)
        << Text("SELECT string_agg(r, E'\\n') FROM ((SELECT 'source ' || t::text AS r FROM " +
                from + " t EXCEPT SELECT 'source ' || t::text FROM " + to +
                " t) UNION ALL (SELECT 'target ' || t::text FROM " + to +
                " t EXCEPT SELECT 'target ' || t::text FROM " + from + " t)) d");
    EXPECT_EQ(Int("SELECT count(*) FROM (SELECT t::text FROM " + from +
                  " t EXCEPT SELECT t::text FROM " + to + " t) d"),
              0);
  }
}

// With create_table, the table is made with the PostgreSQL types of the batches' pg_types tag
// (what postgres_archive sets and an archive's manifest records), so a restore into a table
// sluice creates has the original's column types and every row's text form.
TEST_F(PostgresNodesTest, CreateTableUsesTheRecordedPostgresTypes) {
  const std::string from = NewName("from");
  for (const char* type : {"_mood", "_pos", "_pair"}) types_.push_back(from + type);
  for (const std::string& sql : EveryValueTableSql(from)) Exec(sql);
  ASSERT_OK_AND_ASSIGN(auto conn, pg::PgConnection::Connect(dsn_));
  ASSERT_OK_AND_ASSIGN(pg::RelationPlan plan, pg::PlanRelation(conn.get(), "\"" + from + "\""));
  nlohmann::json pg_types = nlohmann::json::object();
  for (const pg::PgColumnPlan& c : plan.columns) pg_types[c.name] = c.pg_type;
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", from}, {"batch_rows", 2}}));
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  ASSERT_FALSE(batches.empty());

  const std::string to = NewName("to");
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", to}, {"create_table", true}}));
  for (const BatchPtr& b : batches) {
    ASSERT_THAT(sink->Write(b->WithTags(b->tags().With(tag::kPgTypes, pg_types.dump())), AckSet()),
                IsOk());
  }
  ASSERT_THAT(sink->Close(), IsOk());
  const std::string types =
      "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY "
      "attnum) FROM pg_attribute WHERE attnum > 0 AND NOT attisdropped AND attrelid = ";
  EXPECT_EQ(Text(types + "'" + to + "'::regclass"), Text(types + "'" + from + "'::regclass"));
  EXPECT_THAT(Text(types + "'" + to + "'::regclass"),
              AllOf(HasSubstr("n30 numeric(30,10)"), HasSubstr("arr integer[]"),
                    HasSubstr("dom " + from + "_pos"), HasSubstr("vc character varying(10)")));
  const std::string digest = "SELECT md5(string_agg(t::text, E'\\n' ORDER BY id)) FROM ";
  EXPECT_EQ(Text(digest + to + " t"), Text(digest + from + " t"));

  // Without the tag, types come from the sluice types.
  const std::string plain = NewName("plain");
  ASSERT_OK_AND_ASSIGN(sink, OpenSink({{"table", plain}, {"create_table", true}}));
  ASSERT_THAT(sink->Write(batches[0], AckSet()), IsOk());
  EXPECT_THAT(Text(types + "'" + plain + "'::regclass"),
              AllOf(HasSubstr("n30 text"), HasSubstr("id bigint")));
}

TEST_F(PostgresNodesTest, CreateTableRefusesARecordedTypeTheDatabaseLacks) {
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"id", TypeId::kInt64}, {"e", TypeId::kString}}),
                                     R"([[1, "happy"]])"));
  const std::string table = NewName();
  ASSERT_OK_AND_ASSIGN(
      auto sink, OpenSink({{"table", table}, {"create_table", true}, {"retry_max_attempts", 1}}));
  EXPECT_THAT(
      sink->Write(batch->WithTags({{"pg_types", R"({"id":"integer","e":"sluice_no_such_mood"})"}}),
                  AckSet()),
      StatusIs(StatusCode::kInvalidArgument,
               AllOf(HasSubstr("node 'out': creating table '" + table + "'"),
                     HasSubstr("column 'e' had type sluice_no_such_mood"),
                     HasSubstr("create it first"))));
  // A type text is a type name and nothing else.
  for (const char* bad : {"int); DROP TABLE x; --", "int -- x", "int /* x */", "int)"}) {
    SCOPED_TRACE(bad);
    const nlohmann::json tag = {{"id", "integer"}, {"e", bad}};
    EXPECT_THAT(sink->Write(batch->WithTags({{"pg_types", tag.dump()}}), AckSet()), Not(IsOk()));
  }
  EXPECT_EQ(Int("SELECT count(*) FROM pg_class WHERE relname = '" + table + "'"), 0);
}

TEST_F(PostgresNodesTest, PlanRelationNamesTypesForRestoreAndSelectsTextForms) {
  const std::string table = NewName();
  for (const char* type : {"_mood", "_pos", "_pair"}) types_.push_back(table + type);
  for (const std::string& sql : EveryValueTableSql(table)) Exec(sql);
  ASSERT_OK_AND_ASSIGN(auto conn, pg::PgConnection::Connect(dsn_));
  ASSERT_OK_AND_ASSIGN(pg::RelationPlan plan, pg::PlanRelation(conn.get(), "\"" + table + "\""));
  ASSERT_EQ(plan.columns.size(), 38u);
  auto column = [&](std::string_view name) -> const pg::PgColumnPlan& {
    const int i = plan.Find(name);
    EXPECT_GE(i, 0) << name;
    return plan.columns[static_cast<size_t>(std::max(i, 0))];
  };
  EXPECT_EQ(column("n30").pg_type, "numeric(30,10)");
  EXPECT_EQ(column("n30").type, TypeId::kString);
  EXPECT_FALSE(column("n30").as_text);
  EXPECT_EQ(column("arr").pg_type, "integer[]");
  EXPECT_TRUE(column("arr").as_text);
  EXPECT_EQ(column("arr").select_expr, "\"arr\"::text AS \"arr\"");
  EXPECT_EQ(column("vc").pg_type, "character varying(10)");
  EXPECT_EQ(column("dom").pg_type, table + "_pos");    // the domain, for restores
  EXPECT_EQ(column("dom").codec, pg::PgCodec::kInt4);  // its base type's binary format
  EXPECT_EQ(column("e").codec, pg::PgCodec::kText);
  EXPECT_EQ(column("tstz").type, TypeId::kTimestamp);
  EXPECT_EQ(column("a.b").select_expr, "\"a.b\"");
  EXPECT_EQ(plan.schema->num_fields(), 38);
  EXPECT_EQ(plan.codecs.size(), 38u);
  EXPECT_THAT(plan.select_list, HasSubstr("\"id\", \"n30\", \"n\", "));
  EXPECT_THAT(plan.select_list, HasSubstr("\"ip\"::text AS \"ip\""));

  // Retyping: numeric to float64 stays binary; a date as bool is refused naming the type.
  ASSERT_THAT(plan.Retype("n", TypeId::kFloat64), IsOk());
  EXPECT_EQ(column("n").codec, pg::PgCodec::kNumeric);
  EXPECT_THAT(plan.Retype("d", TypeId::kBool),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("column 'd' is PostgreSQL date, which cannot be read as bool")));
  ASSERT_THAT(plan.Keep({"id", "ip"}), IsOk());
  EXPECT_EQ(plan.select_list, "\"id\", \"ip\"::text AS \"ip\"");

  // A subquery plans the same way (a domain shows its base type there).
  ASSERT_OK_AND_ASSIGN(
      pg::RelationPlan sub,
      pg::PlanRelation(conn.get(), "(SELECT id, dom, iv FROM " + table + ") AS q"));
  EXPECT_EQ(sub.select_list, "\"id\", \"dom\", \"iv\"::text AS \"iv\"");
  EXPECT_EQ(sub.columns[1].pg_type, "integer");
  EXPECT_THAT(pg::PlanRelation(conn.get(), "sluice_no_such_table"),
              StatusIs(StatusCode::kNotFound, HasSubstr("sluice_no_such_table")));
}

TEST_F(PostgresNodesTest, TextFormValuesTheColumnRefusesNameTheColumn) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table + " (id int, ip inet)");
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"id", TypeId::kInt64}, {"ip", TypeId::kString}}),
                                     R"([[1, "not an address"]])"));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table}, {"retry_max_attempts", 1}}));
  EXPECT_THAT(sink->Write(batch, AckSet()),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not an address")));
  ASSERT_OK_AND_ASSIGN(BatchPtr numbers,
                       BatchFromJson(MakeSchema({{"ip", TypeId::kInt64}}), R"([[1]])"));
  EXPECT_THAT(sink->Write(numbers, AckSet()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("cannot write int64 column 'ip' to column of type inet")));
}

TEST_F(PostgresNodesTest, HundredThousandRowsStreamInBatchesAndCopyBack) {
  const std::string from = NewName("from");
  const std::string to = NewName("to");
  Exec("CREATE TABLE " + from +
       " AS SELECT g AS id, md5(g::text) AS payload, now() - g * interval '1 second' AS at "
       "FROM generate_series(1, 100000) g");
  Exec("ANALYZE " + from);
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", from}, {"batch_rows", 30000}}));
  EXPECT_EQ(source->EstimatedRows(), 100000);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", to}, {"create_table", true}}));
  std::vector<int64_t> sizes;
  for (uint64_t seq = 0;; ++seq) {
    ASSERT_OK_AND_ASSIGN(BatchPtr batch, source->Next(seq));
    if (batch == nullptr) break;
    sizes.push_back(batch->num_rows());
    ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
  }
  EXPECT_EQ(sizes, (std::vector<int64_t>{30000, 30000, 30000, 10000}));
  ASSERT_THAT(sink->Close(), IsOk());
  ASSERT_THAT(source->Close(), IsOk());
  const std::string digest =
      "SELECT md5(string_agg(id || payload || extract(epoch FROM at)::text, ',' ORDER BY id)) "
      "FROM ";
  EXPECT_EQ(Text(digest + to), Text(digest + from));
  EXPECT_EQ(Int("SELECT count(*) FROM " + to), 100000);
  auto phases = stats_.Phases();
  EXPECT_GT(phases["copy"], 0);
  EXPECT_GT(phases["read"], 0);
}

TEST_F(PostgresNodesTest, ParallelReadSplitsKeyRangesWithoutLosingOrRepeatingRows) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table +
       " AS SELECT g AS id, g % 7 AS r FROM generate_series(-50, 9999) g");
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", table},
                                                {"where", "r <> 3"},
                                                {"parallel", 4},
                                                {"key", "id"},
                                                {"batch_rows", 1000}}));
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  std::set<int64_t> ids;
  int64_t rows = 0;
  for (const auto& b : batches) {
    for (int64_t r = 0; r < b->num_rows(); ++r) ids.insert(b->column(0).GetInt64(r));
    rows += b->num_rows();
  }
  const int64_t expected = Int("SELECT count(*) FROM " + table + " WHERE r <> 3");
  EXPECT_EQ(rows, expected);
  EXPECT_EQ(static_cast<int64_t>(ids.size()), expected);
  EXPECT_EQ(*ids.begin(), -50);
  ASSERT_THAT(source->Close(), IsOk());

  EXPECT_THAT(MakePostgresSource(
                  NodeOptions::ForTest("src", {{"dsn", dsn_}, {"table", table}, {"parallel", 2}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("integer 'key'")));
}

// The label column (by name) of every row of every batch, sorted: a row read twice or not at
// all shows as a difference, not only as a different count.
std::vector<std::string> SortedLabels(const std::vector<BatchPtr>& batches) {
  std::vector<std::string> labels;
  for (const auto& b : batches) {
    const int c = b->schema()->FieldIndex("label");
    EXPECT_GE(c, 0);
    if (c < 0) return labels;
    for (int64_t r = 0; r < b->num_rows(); ++r) labels.emplace_back(b->column(c).GetView(r));
  }
  std::sort(labels.begin(), labels.end());
  return labels;
}

TEST_F(PostgresNodesTest, ParallelReadKeepsRowsWithNullNegativeAndExtremeKeys) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table + " (id int8, label text)");
  Exec("INSERT INTO " + table +
       " VALUES (-9223372036854775808, 'min'), (-9223372036854775807, 'min+1'), "
       "(-3, 'm3'), (-1, 'm1'), (0, 'zero'), (1, 'one'), (2, 'two'), "
       "(9223372036854775806, 'max-1'), (9223372036854775807, 'max'), "
       "(NULL, 'null-a'), (NULL, 'null-b'), (NULL, 'null-c')");
  const std::string all = Text("SELECT string_agg(label, ',' ORDER BY label) FROM " + table);
  auto read_labels = [&](OptionJson options) {
    std::vector<std::string> labels;
    auto source = OpenSource(std::move(options));
    EXPECT_THAT(source, IsOk());
    if (!source.ok()) return labels;
    std::vector<BatchPtr> batches;
    ReadAll(source->get(), &batches);
    EXPECT_THAT((*source)->Close(), IsOk());
    return SortedLabels(batches);
  };
  auto expected = [&](const std::string& where) {
    const std::string text = Text("SELECT string_agg(label, ',' ORDER BY label) FROM " + table +
                                  (where.empty() ? "" : " WHERE " + where));
    std::vector<std::string> labels;
    for (size_t begin = 0; begin < text.size();) {
      const size_t end = std::min(text.find(',', begin), text.size());
      labels.push_back(text.substr(begin, end - begin));
      begin = end + 1;
    }
    std::sort(labels.begin(), labels.end());
    return labels;
  };
  ASSERT_EQ(expected("").size(), 12u) << all;
  // The full int64 range split in 4, 3 and 64 ranges; one row per batch so that every reader's
  // batches interleave.
  for (int parallel : {2, 3, 4, 64}) {
    EXPECT_EQ(
        read_labels({{"table", table}, {"parallel", parallel}, {"key", "id"}, {"batch_rows", 1}}),
        expected(""))
        << "parallel " << parallel;
  }
  // The key need not be read; 'where' keeps some NULL-key rows; a query with an int4 key
  // (OFFSET 0 keeps the cast from seeing the filtered-out ids).
  EXPECT_EQ(read_labels({{"table", table},
                         {"columns", {"label"}},
                         {"where", "label <> 'null-b' AND label <> 'zero'"},
                         {"parallel", 4},
                         {"key", "id"}}),
            expected("label <> 'null-b' AND label <> 'zero'"));
  EXPECT_EQ(read_labels({{"query", "SELECT id::int4 AS k, label FROM (SELECT * FROM " + table +
                                       " WHERE id IS NULL OR id BETWEEN -3 AND 2 OFFSET 0) AS f"},
                         {"parallel", 8},
                         {"key", "k"}}),
            expected("id IS NULL OR id BETWEEN -3 AND 2"));
  // Only NULL keys: no range to split, every row still read.
  EXPECT_EQ(
      read_labels({{"table", table}, {"where", "id IS NULL"}, {"parallel", 4}, {"key", "id"}}),
      expected("id IS NULL"));
  // No rows at all.
  EXPECT_EQ(read_labels({{"table", table}, {"where", "false"}, {"parallel", 4}, {"key", "id"}}),
            std::vector<std::string>{});
}

TEST_F(PostgresNodesTest, ParallelReadRefusesAKeyThatIsNotAnIntegerColumn) {
  const std::string table = NewName();
  // Keys between the integers: ranges of integers would skip them.
  Exec("CREATE TABLE " + table +
       " AS SELECT g / 2.0 AS n, g::text AS s, g AS i, 'row ' || g AS label "
       "FROM generate_series(1, 20) g");
  EXPECT_THAT(OpenSource({{"table", table}, {"parallel", 4}, {"key", "n"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("node 'src'"), HasSubstr("option 'key'"),
                             HasSubstr("column 'n' is numeric"), HasSubstr("parallel: 1"))));
  EXPECT_THAT(
      OpenSource({{"query", "SELECT s, label FROM " + table}, {"parallel", 2}, {"key", "s"}}),
      StatusIs(StatusCode::kConfigError, HasSubstr("column 's' is text")));
  EXPECT_THAT(OpenSource({{"table", table}, {"parallel", 2}, {"key", "nope"}}),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("option 'key': 'nope' is not a column of table '" + table)));
  // One reader reads any table whatever 'key' names.
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"table", table}, {"key", "n"}}));
  std::vector<BatchPtr> batches;
  ReadAll(source.get(), &batches);
  EXPECT_EQ(SortedLabels(batches).size(), 20u);
}

TEST_F(PostgresNodesTest, UpsertRefusesABatchWithNullKeysAndWritesNothingOfIt) {
  const std::string table = NewName();
  // A unique key on nullable columns: NULLs never conflict, so a NULL-key row would be
  // inserted again on every run (and DISTINCT ON would keep one of several).
  Exec("CREATE TABLE " + table + " (id int8, part text, name text, UNIQUE (id, part))");
  Exec("INSERT INTO " + table + " VALUES (1, 'x', 'old')");
  auto schema =
      MakeSchema({{"id", TypeId::kInt64}, {"part", TypeId::kString}, {"name", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto sink,
                       OpenSink({{"table", table}, {"mode", "upsert"}, {"key", {"id", "part"}}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(schema, R"([[1, "x", "new"], [null, "x", "a"], [2, "x", "b"],
                                [null, "x", "c"], [3, null, "d"]])"));
  EXPECT_THAT(sink->Write(batch, AckSet()),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("node 'out'"), HasSubstr(table),
                             HasSubstr("3 of the batch's 5 rows have a NULL key"),
                             HasSubstr("columns 'id', 'part'"))));
  EXPECT_EQ(Text("SELECT string_agg(coalesce(id::text, '-') || part || name, ',' ORDER BY id) "
                 "FROM " +
                 table),
            "1xold");
  // The sink stays usable: a batch with keys is written.
  ASSERT_OK_AND_ASSIGN(BatchPtr good, BatchFromJson(schema, R"([[1, "x", "new"], [2, "y", "b"]])"));
  ASSERT_THAT(sink->Write(good, AckSet()), IsOk());
  EXPECT_EQ(Text("SELECT string_agg(id || part || name, ',' ORDER BY id) FROM " + table),
            "1xnew,2yb");
  ASSERT_THAT(sink->Close(), IsOk());

  // A created table's primary key: the same message, not the server's NOT NULL violation.
  const std::string created = NewName();
  ASSERT_OK_AND_ASSIGN(
      auto sink2,
      OpenSink({{"table", created}, {"create_table", true}, {"mode", "upsert"}, {"key", {"id"}}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr one_null,
                       BatchFromJson(schema, R"([[1, "x", "a"], [null, "y", "b"]])"));
  EXPECT_THAT(sink2->Write(one_null, AckSet()),
              StatusIs(StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("1 of the batch's 2 rows have a NULL key (column 'id')"))));
  EXPECT_EQ(Int("SELECT count(*) FROM " + created), 0);
}

TEST_F(PostgresNodesTest, UpsertKeepsTheLastOfDuplicateKeysAcrossALargeBatch) {
  const std::string table = NewName();
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"label", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(
      auto sink,
      OpenSink({{"table", table}, {"create_table", true}, {"mode", "upsert"}, {"key", {"id"}}}));
  // 30,000 rows over 1,000 keys, each key's rows spread over the whole batch (many pages of the
  // staging table); key k's last row is row 29000 + k. Written twice: the second batch's staging
  // table reuses the truncated one.
  for (int round = 0; round < 2; ++round) {
    std::vector<ColumnBuilder> builders;
    builders.emplace_back(TypeId::kInt64, 30000);
    builders.emplace_back(TypeId::kString, 30000);
    for (int64_t r = 0; r < 30000; ++r) {
      builders[0].AppendInt64(r % 1000);
      builders[1].AppendString(fmt::format("round {} row {} {}", round, r, std::string(40, 'x')));
    }
    std::vector<Column> columns;
    for (auto& b : builders) columns.push_back(b.Finish());
    ASSERT_OK_AND_ASSIGN(BatchPtr batch, Batch::Make(schema, std::move(columns)));
    ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
    EXPECT_EQ(Int("SELECT count(*) FROM " + table), 1000);
    EXPECT_EQ(Int("SELECT count(*) FROM " + table + " WHERE label = format('round %s row %s %s', " +
                  std::to_string(round) + ", 29000 + id, repeat('x', 40))"),
              1000)
        << "round " << round;
  }
  ASSERT_THAT(sink->Close(), IsOk());
}

TEST_F(PostgresNodesTest, UpsertUpdatesExistingKeysAndKeepsTheLastRowOfABatch) {
  const std::string table = NewName();
  auto schema =
      MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}, {"n", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(
      auto sink,
      OpenSink({{"table", table}, {"create_table", true}, {"mode", "upsert"}, {"key", {"id"}}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr first, BatchFromJson(schema, R"([[1, "a", 1], [2, "b", 2]])"));
  ASSERT_THAT(sink->Write(first, AckSet()), IsOk());
  ASSERT_OK_AND_ASSIGN(BatchPtr second,
                       BatchFromJson(schema, R"([[2, "B", 20], [3, "c", 3], [3, "C", 30]])"));
  ASSERT_THAT(sink->Write(second, AckSet()), IsOk());
  EXPECT_EQ(Text("SELECT string_agg(id || ':' || name || ':' || n, ',' ORDER BY id) FROM " + table),
            "1:a:1,2:B:20,3:C:30");
  // The key became the primary key of the created table.
  EXPECT_EQ(Int("SELECT count(*) FROM pg_indexes WHERE tablename = '" + table +
                "' AND indexdef LIKE '%UNIQUE%(id)%'"),
            1);
  auto phases = stats_.Phases();
  EXPECT_GT(phases["insert"], 0);
  EXPECT_GT(phases["copy"], 0);

  EXPECT_THAT(MakePostgresSink(NodeOptions::ForTest(
                  "out", {{"dsn", dsn_}, {"table", table}, {"mode", "upsert"}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("upsert needs 'key'")));
}

// Batches of new keys are COPYed straight into the table; the first batch with a key the table
// has (or a key twice) is upserted through the staging table, and so is every batch after it.
// Only a unique index on exactly the key allows that: without one, nothing is written directly
// (a rerun would add its rows twice) and the upsert fails as ON CONFLICT does.
TEST_F(PostgresNodesTest, UpsertCopiesNewKeysStraightInAndStagesOnceAKeyClashes) {
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"name", TypeId::kString}});
  for (const bool keep : {true, false}) {
    const std::string table = NewName();
    Exec("CREATE TABLE " + table + " (id int8 PRIMARY KEY, name text)");
    const double before = stats_.Phases()["insert"];
    ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table},
                                              {"mode", "upsert"},
                                              {"key", {"id"}},
                                              {"on_conflict", keep ? "keep" : "update"}}));
    ASSERT_OK_AND_ASSIGN(BatchPtr fresh, BatchFromJson(schema, R"([[1, "a"], [2, "b"]])"));
    ASSERT_THAT(sink->Write(fresh, AckSet()), IsOk());
    EXPECT_EQ(stats_.Phases()["insert"], before) << "new keys are not staged";
    ASSERT_OK_AND_ASSIGN(BatchPtr clash,
                         BatchFromJson(schema, R"([[3, "c"], [2, "B"], [4, "d"], [4, "D"]])"));
    ASSERT_THAT(sink->Write(clash, AckSet()), IsOk());
    EXPECT_GT(stats_.Phases()["insert"], before);
    EXPECT_EQ(Text("SELECT string_agg(id || name, ',' ORDER BY id) FROM " + table),
              keep ? "1a,2b,3c,4d" : "1a,2B,3c,4D");
    ASSERT_OK_AND_ASSIGN(BatchPtr later, BatchFromJson(schema, R"([[5, "e"]])"));
    const double staged = stats_.Phases()["insert"];
    ASSERT_THAT(sink->Write(later, AckSet()), IsOk());
    EXPECT_GT(stats_.Phases()["insert"], staged) << "staged after a clash";
    EXPECT_EQ(Int("SELECT count(*) FROM " + table), 5);
    ASSERT_THAT(sink->Close(), IsOk());
  }
  for (const char* index : {"", "CREATE INDEX ON {} (id)", "CREATE UNIQUE INDEX ON {} (id, name)",
                            "CREATE UNIQUE INDEX ON {} (id) WHERE id > 0"}) {
    const std::string table = NewName();
    Exec("CREATE TABLE " + table + " (id int8, name text)");
    if (*index != 0) Exec(fmt::format(fmt::runtime(index), table));
    ASSERT_OK_AND_ASSIGN(auto sink,
                         OpenSink({{"table", table}, {"mode", "upsert"}, {"key", {"id"}}}));
    ASSERT_OK_AND_ASSIGN(BatchPtr fresh, BatchFromJson(schema, R"([[1, "a"], [2, "b"]])"));
    EXPECT_THAT(sink->Write(fresh, AckSet()),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("ON CONFLICT")))
        << index;
    EXPECT_EQ(Int("SELECT count(*) FROM " + table), 0) << index;
  }
  // A unique index whose INCLUDE column is part of the key is not the key's index: no direct
  // COPY, and the upsert fails on its first batch as ON CONFLICT (id, name) does.
  {
    const std::string table = NewName();
    Exec("CREATE TABLE " + table + " (id int8, name text, UNIQUE (id) INCLUDE (name))");
    ASSERT_OK_AND_ASSIGN(auto sink,
                         OpenSink({{"table", table}, {"mode", "upsert"}, {"key", {"id", "name"}}}));
    ASSERT_OK_AND_ASSIGN(BatchPtr fresh, BatchFromJson(schema, R"([[1, "a"]])"));
    EXPECT_THAT(sink->Write(fresh, AckSet()),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("ON CONFLICT")));
    EXPECT_EQ(Int("SELECT count(*) FROM " + table), 0);
  }
  // A BEFORE INSERT trigger that drops rows (COPY would count fewer rows than it sent) and a
  // rule (COPY ignores rules): the batch is upserted through the staging table, as without
  // the shortcut.
  {
    const std::string table = NewName();
    Exec("CREATE TABLE " + table + " (id int8 PRIMARY KEY, name text)");
    Exec("CREATE TABLE " + table + "_audit (id int8)");
    tables_.push_back(table + "_audit");
    Exec("CREATE FUNCTION " + table +
         "_skip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN IF NEW.name = 'skip' THEN "
         "RETURN NULL; END IF; RETURN NEW; END $$");
    Exec("CREATE TRIGGER skip BEFORE INSERT ON " + table + " FOR EACH ROW EXECUTE FUNCTION " +
         table + "_skip()");
    const double before = stats_.Phases()["insert"];
    ASSERT_OK_AND_ASSIGN(auto sink,
                         OpenSink({{"table", table}, {"mode", "upsert"}, {"key", {"id"}}}));
    ASSERT_OK_AND_ASSIGN(BatchPtr rows, BatchFromJson(schema, R"([[1, "a"], [2, "skip"]])"));
    ASSERT_THAT(sink->Write(rows, AckSet()), IsOk());
    EXPECT_GT(stats_.Phases()["insert"], before) << "staged";
    EXPECT_EQ(Text("SELECT string_agg(id || name, ',' ORDER BY id) FROM " + table), "1a");
    ASSERT_THAT(sink->Close(), IsOk());
    // With a rule, PostgreSQL refuses ON CONFLICT: the upsert says so and writes nothing (a
    // COPY would have written the rows and skipped the rule).
    Exec("DROP TRIGGER skip ON " + table);
    Exec("CREATE RULE audit AS ON INSERT TO " + table + " DO ALSO INSERT INTO " + table +
         "_audit VALUES (NEW.id)");
    ASSERT_OK_AND_ASSIGN(auto sink2,
                         OpenSink({{"table", table}, {"mode", "upsert"}, {"key", {"id"}}}));
    ASSERT_OK_AND_ASSIGN(BatchPtr more, BatchFromJson(schema, R"([[3, "c"]])"));
    EXPECT_THAT(sink2->Write(more, AckSet()),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("rules")));
    EXPECT_EQ(Int("SELECT count(*) FROM " + table + " WHERE id = 3"), 0);
  }
}

TEST_F(PostgresNodesTest, InsertBatchWritesThroughPreparedMultiRowInserts) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table +
       " (id int4, name varchar(20), amount numeric, u uuid, day date, doc jsonb)");
  auto schema = MakeSchema({{"id", TypeId::kInt64},
                            {"name", TypeId::kString},
                            {"amount", TypeId::kFloat64},
                            {"u", TypeId::kString},
                            {"day", TypeId::kTimestamp},
                            {"doc", TypeId::kJson}});
  std::string rows = "[";
  for (int i = 0; i < 2500; ++i) {
    rows += fmt::format(
        R"({}[{}, "n{}", {}.5, "00000000-0000-0000-0000-{:012}", "2024-03-01", {{"i": {}}}])",
        i == 0 ? "" : ",", i, i, i, i, i);
  }
  rows += R"(, [null, null, null, null, null, null]])";
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, rows));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table}, {"mode", "insert_batch"}}));
  ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
  EXPECT_EQ(Int("SELECT count(*) FROM " + table), 2501);
  EXPECT_EQ(Text("SELECT name || ' ' || amount || ' ' || u || ' ' || day || ' ' || (doc->>'i') "
                 "FROM " +
                 table + " WHERE id = 2499"),
            "n2499 2499.5 00000000-0000-0000-0000-000000002499 2024-03-01 2499");
  EXPECT_EQ(Int("SELECT count(*) FROM " + table + " WHERE id IS NULL AND doc IS NULL"), 1);
}

TEST_F(PostgresNodesTest, CreateTableDeclaresIndexesAndDailyPartitions) {
  const std::string table = NewName();
  auto schema =
      MakeSchema({{"id", TypeId::kInt64}, {"at", TypeId::kTimestamp}, {"host", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table},
                                            {"create_table", true},
                                            {"indexes", {"host", "at"}},
                                            {"partition_by", "at"},
                                            {"partition_interval", "day"}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, R"([[1, "2024-05-01T10:00:00Z", "a"],
                                                 [2, "2024-05-01T23:59:59Z", "b"],
                                                 [3, "2024-05-03T00:00:00Z", "a"],
                                                 [4, null, "c"]])"));
  ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
  ASSERT_OK_AND_ASSIGN(BatchPtr more,
                       BatchFromJson(schema, R"([[5, "2024-05-03T12:00:00Z", "a"]])"));
  ASSERT_THAT(sink->Write(more, AckSet()), IsOk());
  EXPECT_EQ(Int("SELECT count(*) FROM " + table), 5);
  EXPECT_EQ(Text("SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i "
                 "JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = '" +
                 table + "'::regclass"),
            table + "_default," + table + "_p20240501," + table + "_p20240503");
  EXPECT_EQ(Int("SELECT count(*) FROM " + table + "_p20240503"), 2);
  EXPECT_EQ(Int("SELECT count(*) FROM pg_indexes WHERE tablename = '" + table +
                "' AND (indexdef LIKE '%(host)' OR indexdef LIKE '%(at)')"),
            2);

  EXPECT_THAT(MakePostgresSink(NodeOptions::ForTest(
                  "out", {{"dsn", dsn_}, {"table", table}, {"indexes", {"host"}}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("set create_table: true")));
}

// A samples table: day partitions made ahead of the newest row, dropped once they end more than
// `retention` before it (only the partitions the sink names), one index on (host, ts).
TEST_F(PostgresNodesTest, PartitionsAheadAndRetentionDropOnlyExpiredOwnPartitions) {
  const std::string table = NewName();
  auto schema =
      MakeSchema({{"ts", TypeId::kTimestamp}, {"host", TypeId::kString}, {"v", TypeId::kInt64}});
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table},
                                            {"create_table", true},
                                            {"indexes", {"host, ts"}},
                                            {"partition_by", "ts"},
                                            {"partition_interval", "day"},
                                            {"partitions_ahead", 2},
                                            {"retention", "3d"}}));
  auto partitions = [&] {
    return Text("SELECT string_agg(replace(c.relname, '" + table +
                "', ''), ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = "
                "i.inhrelid WHERE i.inhparent = '" +
                table + "'::regclass");
  };
  ASSERT_OK_AND_ASSIGN(BatchPtr first, BatchFromJson(schema, R"([["2024-05-01T10:00:00Z", "a", 1],
                                                                ["2024-05-01T11:00:00Z", "b", 2]])"));
  ASSERT_THAT(sink->Write(first, AckSet()), IsOk());
  EXPECT_EQ(partitions(), "_p20240501,_p20240502,_p20240503");
  // A partition someone else made (another name) is never dropped.
  Exec("CREATE TABLE " + table + "_april PARTITION OF " + table +
       " FOR VALUES FROM ('2024-04-01') TO ('2024-05-01')");
  Exec("INSERT INTO " + table + " VALUES ('2024-04-02', 'old', 0)");
  ASSERT_OK_AND_ASSIGN(BatchPtr second, BatchFromJson(schema, R"([["2024-05-03T09:00:00Z", "a", 3],
                                                                 ["2024-05-06T12:00:00Z", "a", 4]])"));
  ASSERT_THAT(sink->Write(second, AckSet()), IsOk());
  // Newest row 05-06 12:00, retention 3 days: partitions ending by 05-03 12:00 go.
  EXPECT_EQ(partitions(), "_april,_p20240503,_p20240506,_p20240507,_p20240508");
  EXPECT_EQ(Text("SELECT string_agg(v::text, ',' ORDER BY v) FROM " + table), "0,3,4");
  EXPECT_EQ(stats_.Counters()["partitions_dropped"], 2);
  EXPECT_EQ(Int("SELECT count(*) FROM pg_indexes WHERE tablename = '" + table +
                "' AND indexdef LIKE '%(host, ts)'"),
            1);
  ASSERT_THAT(sink->Close(), IsOk());

  EXPECT_THAT(MakePostgresSink(NodeOptions::ForTest(
                  "out", {{"dsn", dsn_}, {"table", table}, {"retention", "3d"}})),
              StatusIs(StatusCode::kConfigError, HasSubstr("needs 'partition_by'")));
  EXPECT_THAT(
      MakePostgresSink(NodeOptions::ForTest(
          "out",
          {{"dsn", dsn_}, {"table", table}, {"create_table", true}, {"indexes", {"host,,ts"}}})),
      StatusIs(StatusCode::kConfigError, HasSubstr("an empty column name")));
}

// Retention counts the newest row no later than this host's clock: one row from a host whose
// clock is decades ahead drops none of today's data. Names that are not dates are not the
// sink's partitions.
TEST_F(PostgresNodesTest, RetentionIgnoresRowsFromTheFutureAndNamesThatAreNotDates) {
  const std::string table = NewName();
  auto schema = MakeSchema({{"ts", TypeId::kTimestamp}, {"v", TypeId::kInt64}});
  const int64_t now = NowMicros();
  const std::string today = FormatTimestamp(now);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table},
                                            {"create_table", true},
                                            {"partition_by", "ts"},
                                            {"partition_interval", "day"},
                                            {"retention", "30d"}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr first, BatchFromJson(schema, "[[\"" + today + "\", 1]]"));
  ASSERT_THAT(sink->Write(first, AckSet()), IsOk());
  // Old partitions made by hand: one named as the sink names them (dropped), one whose name is
  // no date (kept).
  Exec("CREATE TABLE " + table + "_p20230105 PARTITION OF " + table +
       " FOR VALUES FROM ('2023-01-05') TO ('2023-01-06')");
  Exec("CREATE TABLE " + table + "_p20230231 PARTITION OF " + table +
       " FOR VALUES FROM ('2023-01-10') TO ('2023-01-11')");
  ASSERT_OK_AND_ASSIGN(BatchPtr future, BatchFromJson(schema, R"([["2099-01-01T00:00:00Z", 2]])"));
  ASSERT_THAT(sink->Write(future, AckSet()), IsOk());
  EXPECT_EQ(Text("SELECT string_agg(v::text, ',' ORDER BY v) FROM " + table), "1,2");
  EXPECT_EQ(Int("SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass('" + table +
                "_p20230231')"),
            1);
  EXPECT_EQ(Int("SELECT count(*) FROM pg_inherits WHERE inhrelid = to_regclass('" + table +
                "_p20230105')"),
            0);
  EXPECT_EQ(stats_.Counters()["partitions_dropped"], 1);
  ASSERT_THAT(sink->Close(), IsOk());
}

TEST_F(PostgresNodesTest, MonthlyPartitionsInASchemaQualifiedTable) {
  const std::string schema_name = NewName("schema");
  tables_.pop_back();
  Exec("CREATE SCHEMA " + schema_name);
  const std::string table = schema_name + ".events";
  ASSERT_OK_AND_ASSIGN(
      auto sink, OpenSink({{"table", table}, {"create_table", true}, {"partition_by", "at"}}));
  ASSERT_OK_AND_ASSIGN(
      BatchPtr batch,
      BatchFromJson(
          MakeSchema({{"at", TypeId::kTimestamp}}),
          R"([["2023-12-31T23:59:59Z"], ["2024-01-01T00:00:00Z"], ["2024-01-31T00:00:00Z"]])"));
  ASSERT_THAT(sink->Write(batch, AckSet()), IsOk());
  EXPECT_EQ(Int("SELECT count(*) FROM " + schema_name + ".events_p202401"), 2);
  EXPECT_EQ(Int("SELECT count(*) FROM " + schema_name + ".events_p202312"), 1);
  ASSERT_THAT(sink->Close(), IsOk());
  Exec("DROP SCHEMA " + schema_name + " CASCADE");
}

TEST_F(PostgresNodesTest, MissingTableIsNotFoundNamingNodeAndTable) {
  EXPECT_THAT(OpenSource({{"table", "sluice_no_such_table"}}),
              StatusIs(StatusCode::kNotFound,
                       AllOf(HasSubstr("node 'src'"), HasSubstr("sluice_no_such_table"),
                             HasSubstr("[SQLSTATE 42P01]"))));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", "sluice_no_such_table"}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"id", TypeId::kInt64}}), "[[1]]"));
  EXPECT_THAT(sink->Write(batch, AckSet()),
              StatusIs(StatusCode::kNotFound,
                       AllOf(HasSubstr("node 'out'"), HasSubstr("table 'sluice_no_such_table'"),
                             HasSubstr("[SQLSTATE 42P01]"))));
}

TEST_F(PostgresNodesTest, InputColumnsMustMatchTheTable) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table + " (id int8, at interval)");
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table}}));
  ASSERT_OK_AND_ASSIGN(
      BatchPtr extra, BatchFromJson(MakeSchema({{"id", TypeId::kInt64}, {"nope", TypeId::kString}}),
                                    R"([[1, "x"]])"));
  EXPECT_THAT(sink->Write(extra, AckSet()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("column 'nope' of the input is not a column of table")));
  ASSERT_OK_AND_ASSIGN(BatchPtr wrong,
                       BatchFromJson(MakeSchema({{"id", TypeId::kBool}}), R"([[true]])"));
  EXPECT_THAT(sink->Write(wrong, AckSet()),
              StatusIs(StatusCode::kConfigError, HasSubstr("cannot write bool column 'id'")));
  ASSERT_OK_AND_ASSIGN(BatchPtr number,
                       BatchFromJson(MakeSchema({{"at", TypeId::kInt64}}), R"([[1]])"));
  EXPECT_THAT(sink->Write(number, AckSet()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("cannot write int64 column 'at' to column of type interval")));
  // A string is the column type's text form: read by its input function.
  ASSERT_OK_AND_ASSIGN(BatchPtr interval,
                       BatchFromJson(MakeSchema({{"at", TypeId::kString}}), R"([["1 day"]])"));
  ASSERT_THAT(sink->Write(interval, AckSet()), IsOk());
  EXPECT_EQ(Text("SELECT at::text FROM " + table), "1 day");
}

TEST_F(PostgresNodesTest, UnreachableServerFailsFastWithOneLineWithoutPassword) {
  const std::string dsn = "host=127.0.0.1 port=1 user=app password=hunter22 dbname=d";
  for (int node = 0; node < 2; ++node) {
    const auto start = std::chrono::steady_clock::now();
    const Status st = node == 0 ? OpenSource({{"dsn", dsn}, {"table", "t"}}).status()
                                : OpenSink({{"dsn", dsn}, {"table", "t"}}).status();
    EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable,
                             AllOf(HasSubstr(node == 0 ? "node 'src'" : "node 'out'"),
                                   HasSubstr("PostgreSQL at app@127.0.0.1:1/d: cannot connect"),
                                   Not(HasSubstr("hunter22")), Not(HasSubstr("\n")))));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  }
  EXPECT_THAT(OpenSink({{"dsn", "host=127.0.0.1 password=hunter22 junk"}, {"table", "t"}}),
              StatusIs(StatusCode::kConfigError,
                       AllOf(HasSubstr("invalid PostgreSQL DSN"), Not(HasSubstr("hunter22")))));
}

TEST_F(PostgresNodesTest, StatementTimeoutIsReportedAsTimeout) {
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"query", "SELECT 1 AS x FROM pg_sleep(5)"},
                                                {"statement_timeout", 200'000}}));
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THAT(source->Next(0),
              StatusIs(StatusCode::kTimeout,
                       AllOf(HasSubstr("node 'src'"), HasSubstr("[SQLSTATE 57014]"))));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
}

TEST_F(PostgresNodesTest, ConnectionKilledMidReadIsRetryableUnavailable) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table + " AS SELECT g AS id FROM generate_series(1, 200000) g");
  const std::string app = "sluice_kill_read_" + std::to_string(getpid());
  ASSERT_OK_AND_ASSIGN(auto source, OpenSource({{"dsn", dsn_ + " application_name=" + app},
                                                {"table", table},
                                                {"batch_rows", 1000}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr first, source->Next(0));
  ASSERT_NE(first, nullptr);
  Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" + app +
       "'");
  Status st;
  for (uint64_t seq = 1; st.ok() && seq < 1000; ++seq) {
    auto next = source->Next(seq);
    st = next.status();
    if (next.ok() && *next == nullptr) break;
  }
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable, HasSubstr("node 'src'")));
  EXPECT_TRUE(st.IsRetryable());
}

TEST_F(PostgresNodesTest, SinkRetriesABatchWhoseConnectionWasKilledMidCopy) {
  const std::string table = NewName();
  const std::string app = "sluice_kill_copy_" + std::to_string(getpid());
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"payload", TypeId::kString}});
  ColumnBuilder ids(TypeId::kInt64);
  ColumnBuilder payload(TypeId::kString);
  const std::string text(200, 'x');
  constexpr int64_t kRows = 400'000;
  for (int64_t i = 0; i < kRows; ++i) {
    ids.AppendInt64(i);
    payload.AppendString(text);
  }
  BatchPtr batch = Batch::MakeUnchecked(schema, {ids.Finish(), payload.Finish()}, kRows);
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"dsn", dsn_ + " application_name=" + app},
                                            {"table", table},
                                            {"create_table", true},
                                            {"retry_initial_backoff", 10'000}}));
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    auto conn = pg::PgConnection::Connect(dsn_);
    if (!conn.ok()) return;
    for (int i = 0; i < 3000 && !killed; ++i) {
      auto r = (*conn)->Exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
          app + "' AND state = 'active' AND query LIKE 'COPY%'");
      if (r.ok() && r->num_rows() > 0) killed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const Status st = sink->Write(batch, AckSet());
  killer.join();
  ASSERT_TRUE(killed) << "the COPY finished before it could be interrupted";
  EXPECT_THAT(st, IsOk());
  EXPECT_EQ(Counter("retries"), 1);
  // The killed attempt rolled back: every row exactly once.
  EXPECT_EQ(Int("SELECT count(*) FROM " + table), kRows);
  EXPECT_EQ(Int("SELECT count(DISTINCT id) FROM " + table), kRows);

  // With one attempt allowed, the same failure surfaces as retryable Unavailable.
  ASSERT_OK_AND_ASSIGN(auto once, OpenSink({{"dsn", dsn_ + " application_name=" + app},
                                            {"table", table},
                                            {"retry_max_attempts", 1}}));
  killed = false;
  std::thread killer2([&] {
    auto conn = pg::PgConnection::Connect(dsn_);
    if (!conn.ok()) return;
    for (int i = 0; i < 3000 && !killed; ++i) {
      auto r = (*conn)->Exec(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
          app + "' AND state = 'active' AND query LIKE 'COPY%'");
      if (r.ok() && r->num_rows() > 0) killed = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });
  const Status failed = once->Write(batch, AckSet());
  killer2.join();
  ASSERT_TRUE(killed);
  EXPECT_THAT(failed,
              StatusIs(StatusCode::kUnavailable, AllOf(HasSubstr("giving up after 1 attempts"),
                                                       HasSubstr("node 'out'"), HasSubstr(table))));
  EXPECT_EQ(Int("SELECT count(*) FROM " + table), kRows);
}

TEST_F(PostgresNodesTest, SinkReleasesAcksOnlyAfterCommitting) {
  const std::string table = NewName();
  auto queue = std::make_shared<AckQueue>();
  AckSet acks(std::make_shared<AckHandle>(queue, 7));
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table}, {"create_table", true}}));
  ASSERT_OK_AND_ASSIGN(BatchPtr batch,
                       BatchFromJson(MakeSchema({{"x", TypeId::kInt64}}), "[[1], [2]]"));
  ASSERT_THAT(sink->Write(batch, std::move(acks)), IsOk());
  std::vector<AckQueue::Event> events;
  queue->Drain(&events, /*max_wait_ms=*/0);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_TRUE(events[0].delivered);
  EXPECT_EQ(Int("SELECT count(*) FROM " + table), 2);
}

// max_parallel_writes: batches after the first are written by several threads at once, each
// in its own transaction; every row arrives once, each batch's acks are released after its
// commit, and a batch that fails is failed (its acks too) and reported by Flush, while the
// batches around it are committed.
TEST_F(PostgresNodesTest, ParallelWritesCommitEveryBatchAndReportAFailure) {
  const std::string table = NewName();
  Exec("CREATE TABLE " + table + " (id int8 PRIMARY KEY, label text CHECK (label <> 'bad'))");
  auto schema = MakeSchema({{"id", TypeId::kInt64}, {"label", TypeId::kString}});
  ASSERT_OK_AND_ASSIGN(auto sink, OpenSink({{"table", table},
                                            {"mode", "upsert"},
                                            {"key", {"id"}},
                                            {"on_conflict", "keep"},
                                            {"max_parallel_writes", 3}}));
  auto queue = std::make_shared<AckQueue>();
  constexpr int kBatches = 24, kRows = 500;
  const int bad = 17;
  Status failed;
  size_t calls = 0;  // Write calls, each with its own ack
  for (int b = 0; b < kBatches; ++b) {
    std::string rows = "[";
    for (int r = 0; r < kRows; ++r) {
      const int id = b * kRows + r;
      rows += fmt::format(R"({}[{}, "{}"])", r == 0 ? "" : ",", id,
                          b == bad && r == kRows - 1 ? "bad" : fmt::format("row {}", id));
    }
    rows += "]";
    ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, rows));
    ++calls;
    Status st = sink->Write(batch, AckSet(std::make_shared<AckHandle>(queue, b)));
    if (!st.ok()) {
      failed = st;  // a later Write reports the failure of an earlier batch
      break;
    }
  }
  if (failed.ok()) failed = sink->Flush();
  EXPECT_THAT(failed, StatusIs(StatusCode::kInvalidArgument, HasSubstr("check constraint")));
  EXPECT_THAT(sink->Close(), StatusIs(StatusCode::kInvalidArgument, HasSubstr("check")));
  std::vector<AckQueue::Event> events;
  queue->Drain(&events, /*max_wait_ms=*/0);
  EXPECT_EQ(events.size(), calls) << "every batch's ack is released or failed, once";
  std::set<uint64_t> delivered;
  for (const auto& e : events) {
    if (e.delivered) delivered.insert(e.seq);
  }
  EXPECT_FALSE(delivered.contains(bad));
  EXPECT_TRUE(delivered.contains(0));
  // Exactly the delivered batches' rows are in the table, each once, with its own label.
  int64_t want_sum = 0;
  for (const uint64_t b : delivered) {
    for (int r = 0; r < kRows; ++r) want_sum += static_cast<int64_t>(b) * kRows + r;
  }
  EXPECT_EQ(Int("SELECT count(*) FROM " + table), static_cast<int64_t>(delivered.size()) * kRows);
  EXPECT_EQ(Int("SELECT coalesce(sum(id), 0) FROM " + table), want_sum);
  EXPECT_EQ(Int("SELECT count(*) FROM " + table + " WHERE label <> 'row ' || id"), 0);

  // Without a failure: every batch, every row once.
  const std::string good = NewName();
  Exec("CREATE TABLE " + good + " (id int8 PRIMARY KEY, label text)");
  ASSERT_OK_AND_ASSIGN(auto sink2, OpenSink({{"table", good}, {"max_parallel_writes", 4}}));
  for (int b = 0; b < kBatches; ++b) {
    std::string rows = "[";
    for (int r = 0; r < kRows; ++r) {
      rows += fmt::format(R"({}[{}, "row {}"])", r == 0 ? "" : ",", b * kRows + r, b * kRows + r);
    }
    ASSERT_OK_AND_ASSIGN(BatchPtr batch, BatchFromJson(schema, rows + "]"));
    ASSERT_THAT(sink2->Write(batch, AckSet(std::make_shared<AckHandle>(queue, 100 + b))), IsOk());
  }
  ASSERT_THAT(sink2->Close(), IsOk());
  events.clear();
  queue->Drain(&events, /*max_wait_ms=*/0);
  int delivered2 = 0;
  for (const auto& e : events) delivered2 += e.delivered && e.seq >= 100 ? 1 : 0;
  EXPECT_EQ(delivered2, kBatches);
  EXPECT_EQ(events.size(), static_cast<size_t>(kBatches));
  EXPECT_EQ(Int("SELECT count(DISTINCT id) FROM " + good), kBatches * kRows);
  EXPECT_EQ(Int("SELECT count(*) FROM " + good + " WHERE label <> 'row ' || id"), 0);
}

}  // namespace
}  // namespace sluice
