#include "sluice/config/loader.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/core/json_text.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using ::testing::HasSubstr;
using testing::StatusIs;

NodeRegistry TestRegistry() {
  NodeRegistry r;
  OptionSchema gen = {
      {"rows", OptionType::kInt, "100", "Rows to generate.", false, {}},
      {"batch_size", OptionType::kInt, "1024", "Rows per batch.", false, {}},
      {"rate", OptionType::kFloat, "", "Rows per second.", false, {}},
      {"mode", OptionType::kEnum, "fast", "Mode.", false, {"fast", "slow"}},
      {"limit", OptionType::kByteSize, "1MiB", "A size.", false, {}},
      {"every", OptionType::kDuration, "1s", "A duration.", false, {}},
      {"path", OptionType::kString, "", "Where.", true, {}},
  };
  r.AddSource("generate", "test", gen, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    return Status::NotImplemented("test");
  });
  r.AddSink("null", "test", {}, [](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
    return Status::NotImplemented("test");
  });
  // A sink with an option named like an engine-level one (the postgres sink's partition_by).
  r.AddSink("table", "test",
            {{"partition_by", OptionType::kString, "", "The partition column.", false, {}}},
            [](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
              return Status::NotImplemented("test");
            });
  // Nested options, as postgres_archive declares them.
  std::vector<OptionSpec> table = {
      {"cutoff", OptionType::kString, "90d", "Age."},
      {"every", OptionType::kDuration, "", "A duration."},
  };
  OptionSchema nested = {
      OptionSpec::NamedRecords(
          "databases", "Name -> database.",
          {{"dsn", OptionType::kString, "", "Where.", true},
           {"pool_size", OptionType::kInt, "4", "Connections."},
           OptionSpec::NamedRecords("tables", "Tables.", table, true, /*names_as_list=*/true)},
          /*required=*/true),
      OptionSpec::Record("defaults", "Shared.", table),
  };
  r.AddSource("nested", "test", nested, [](const NodeOptions&) -> Result<std::unique_ptr<Source>> {
    return Status::NotImplemented("test");
  });
  return r;
}

LoadOptions Env(std::map<std::string, std::string> vars, std::vector<std::string> sets = {}) {
  LoadOptions o;
  o.env = [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
  o.overrides = std::move(sets);
  return o;
}

const char* kGood = R"(pipeline: demo
settings:
  engine: sequential
  memory_limit: 512MiB
  max_parallel_nodes: 2
  workers: 3
nodes:
  src:
    type: generate
    rows: ${ROWS:-5}
    path: "${HOME}/x"
    every: 500ms
  out:
    type: null
    inputs: src
)";

TEST(LoaderTest, LoadsSettingsNodesDefaultsAndEnv) {
  auto registry = TestRegistry();
  ASSERT_OK_AND_ASSIGN(PipelineSpec spec,
                       LoadPipelineText(kGood, "p.yaml", registry, Env({{"HOME", "/h"}})));
  EXPECT_EQ(spec.name, "demo");
  EXPECT_EQ(spec.settings.engine, EngineKind::kSequential);
  EXPECT_EQ(spec.settings.memory_limit, 512LL << 20);
  EXPECT_EQ(spec.settings.max_parallel_nodes, 2);
  EXPECT_EQ(spec.settings.workers, 3);
  ASSERT_EQ(spec.nodes.size(), 2u);
  const NodeOptions& o = spec.nodes[0].options;
  EXPECT_EQ(o.GetInt("rows"), 5);
  EXPECT_EQ(o.GetInt("batch_size"), 1024);
  EXPECT_EQ(o.GetString("path"), "/h/x");
  EXPECT_EQ(o.GetString("mode"), "fast");
  EXPECT_EQ(o.GetByteSize("limit"), 1 << 20);
  EXPECT_EQ(o.GetDurationMicros("every"), 500'000);
  EXPECT_EQ(o.LocationOf("rows"), "p.yaml:10:11");
  EXPECT_EQ(spec.nodes[1].inputs, std::vector<std::string>{"src"});
  EXPECT_EQ(spec.nodes[1].location, "p.yaml:13:3");
}

LoadOptions WithSection() {
  LoadOptions o = Env({});
  o.sections.push_back(
      OptionSpec::Record("agent", "The agent.",
                         {{"listen", OptionType::kString, "127.0.0.1:9108", "Where."},
                          {"workers", OptionType::kInt, "2", "Threads."},
                          {"read_timeout", OptionType::kDuration, "5s", "A duration."},
                          {"source", OptionType::kString, "", "A node."}}));
  return o;
}

TEST(LoaderTest, ACallersSectionIsCheckedWithDefaultsAndLocations) {
  auto registry = TestRegistry();
  const std::string nodes =
      "nodes:\n  src: {type: generate, path: x}\n  out: {type: null, "
      "inputs: [src]}\n";
  ASSERT_OK_AND_ASSIGN(PipelineSpec spec, LoadPipelineText("agent:\n  workers: 4\n" + nodes,
                                                           "a.yaml", registry, WithSection()));
  const NodeOptions& agent = spec.sections.at("agent");
  EXPECT_EQ(agent.GetInt("workers"), 4);
  EXPECT_EQ(agent.GetString("listen"), "127.0.0.1:9108");
  EXPECT_EQ(agent.GetDurationMicros("read_timeout"), 5'000'000);
  EXPECT_FALSE(agent.Has("source"));
  EXPECT_EQ(agent.LocationOf("workers"), "a.yaml:2:12");
  // Absent: every default; overridden with --set like any key.
  LoadOptions set = WithSection();
  set.overrides = {"agent.listen=0.0.0.0:1"};
  ASSERT_OK_AND_ASSIGN(PipelineSpec bare, LoadPipelineText(nodes, "a.yaml", registry, set));
  EXPECT_EQ(bare.sections.at("agent").GetString("listen"), "0.0.0.0:1");
  EXPECT_EQ(bare.sections.at("agent").GetInt("workers"), 2);

  EXPECT_THAT(LoadPipelineText("agent:\n  lisen: x\n" + nodes, "a.yaml", registry, WithSection()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("a.yaml:2:3: option 'agent': unknown key 'lisen' — did you mean "
                                 "'listen'? (keys are: listen, workers, read_timeout, source)")));
  EXPECT_THAT(
      LoadPipelineText("agent:\n  workers: many\n" + nodes, "a.yaml", registry, WithSection()),
      StatusIs(StatusCode::kConfigError,
               HasSubstr("a.yaml:2:12: option 'agent.workers' expects integer, got 'many'")));
  EXPECT_THAT(LoadPipelineText("agnt:\n  workers: 1\n" + nodes, "a.yaml", registry, WithSection()),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("a.yaml:1:1: unknown section 'agnt' — did you mean 'agent'?")));
  // Without the caller's section, the key is unknown.
  EXPECT_THAT(LoadPipelineText("agent:\n  workers: 1\n" + nodes, "a.yaml", registry, Env({})),
              StatusIs(StatusCode::kConfigError, HasSubstr("unknown section 'agent'")));
}

TEST(LoaderTest, ATypesOwnOptionWinsOverTheEngineLevelOneOfTheSameName) {
  auto registry = TestRegistry();
  ASSERT_OK_AND_ASSIGN(PipelineSpec spec,
                       LoadPipelineText("nodes:\n  src: {type: generate, path: x}\n"
                                        "  out: {type: table, inputs: [src], partition_by: at}\n",
                                        "p.yaml", registry, Env({})));
  ASSERT_EQ(spec.nodes.size(), 2u);
  EXPECT_EQ(spec.nodes[1].options.GetString("partition_by"), "at");
  EXPECT_EQ(spec.nodes[1].partition_by, "");  // not the engine's keyed parallelism
}

TEST(LoaderTest, SetOverridesWin) {
  auto registry = TestRegistry();
  ASSERT_OK_AND_ASSIGN(
      PipelineSpec spec,
      LoadPipelineText(kGood, "p.yaml", registry,
                       Env({{"HOME", "/h"}}, {"nodes.src.rows=5000", "settings.engine=parallel"})));
  EXPECT_EQ(spec.nodes[0].options.GetInt("rows"), 5000);
  EXPECT_EQ(spec.settings.engine, EngineKind::kParallel);
  EXPECT_THAT(
      LoadPipelineText(kGood, "p.yaml", registry, Env({{"HOME", "/h"}}, {"nodes.src.rows"})),
      StatusIs(StatusCode::kConfigError, HasSubstr("expected PATH=VALUE")));
}

TEST(LoaderTest, NestedOptionsAreCheckedNormalizedAndLocated) {
  auto registry = TestRegistry();
  const char* yaml = R"(nodes:
  src:
    type: nested
    databases:
      main:
        dsn: "host=x"
        tables: [a, b]
      other:
        dsn: "host=y"
        pool_size: 2
        tables:
          c: {cutoff: 30d, every: 500ms}
          d:
    defaults: {cutoff: 7d}
  out: {type: null, inputs: [src]}
)";
  ASSERT_OK_AND_ASSIGN(auto spec, LoadPipelineText(yaml, "p.yaml", registry, Env({})));
  const NodeOptions& o = spec.nodes[0].options;
  const auto& dbs = o.GetJson("databases");
  // A list of names is stored as names mapped to empty settings, in the order written.
  EXPECT_EQ(JsonText(dbs["main"]["tables"]), R"({"a":{},"b":{}})");
  EXPECT_EQ(dbs["other"]["pool_size"].get<int64_t>(), 2);
  EXPECT_EQ(dbs["other"]["tables"]["c"]["every"].get<int64_t>(), 500'000);  // µs
  EXPECT_EQ(JsonText(dbs["other"]["tables"]["d"]), "{}");
  EXPECT_EQ(o.GetJson("defaults")["cutoff"].get<std::string>(), "7d");
  EXPECT_EQ(o.LocationOf("databases.other.pool_size"), "p.yaml:10:20");
  EXPECT_EQ(o.LocationOf("databases.other.tables.c.cutoff"), "p.yaml:12:23");
  EXPECT_THAT(
      o.ErrorAt("databases.other.tables.c.cutoff", "bad"),
      StatusIs(StatusCode::kConfigError, HasSubstr("p.yaml:12:23: node 'src': option "
                                                   "'databases.other.tables.c.cutoff': bad")));
}

TEST(LoaderTest, EmptySubstitutionIsAnEmptyString) {
  auto registry = TestRegistry();
  const char* yaml = "nodes:\n  src:\n    type: generate\n    path: ${UNSET:-}\n";
  ASSERT_OK_AND_ASSIGN(auto spec, LoadPipelineText(yaml, "p.yaml", registry, Env({})));
  ASSERT_TRUE(spec.nodes[0].options.values()["path"].is_string());
  EXPECT_EQ(spec.nodes[0].options.GetString("path"), "");
}

struct BadCase {
  const char* yaml;
  const char* message;
};

class LoaderErrorTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(LoaderErrorTest, ReportsLocationAndHint) {
  auto registry = TestRegistry();
  EXPECT_THAT(LoadPipelineText(GetParam().yaml, "bad.yaml", registry, Env({})),
              StatusIs(StatusCode::kConfigError, HasSubstr(GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(
    Corpus, LoaderErrorTest,
    ::testing::Values(
        BadCase{"nodes:\n  a: [1,\n", "bad.yaml:3:1: YAML syntax error"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: x\n    bacth_size: 5\n",
                "bad.yaml:5:5: node 'src': unknown option 'bacth_size' for type 'generate' — did "
                "you mean 'batch_size'?"},
        BadCase{"nodes:\n  src:\n    type: generat\n",
                "bad.yaml:3:11: node 'src': unknown node "
                "type 'generat' — did you mean 'generate'?"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: x\n    rows: many\n",
                "bad.yaml:5:11: node 'src': option 'rows' expects integer, got 'many'"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: x\n    mode: quick\n",
                "must be one of: fast, slow; got 'quick'"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: x\n    limit: lots\n",
                "bad.yaml:5:12: node 'src': option 'limit': 'lots' is not a byte size"},
        BadCase{"nodes:\n  src:\n    type: generate\n",
                "bad.yaml:2:3: node 'src': missing "
                "required option 'path'"},
        BadCase{"nodes:\n  src:\n    path: x\n", "missing 'type'"},
        BadCase{"settings:\n  engin: parallel\nnodes: {}\n",
                "bad.yaml:2:3: unknown setting 'engin' — did you mean 'engine'?"},
        BadCase{"setings: {}\nnodes: {}\n", "unknown section 'setings' — did you mean 'settings'?"},
        BadCase{"settings:\n  engine: turbo\nnodes: {}\n", "must be one of: parallel, sequential"},
        BadCase{"settings:\n  workers: -1\nnodes: {}\n",
                "bad.yaml:2:12: workers must be 0 (one per CPU this process may use) to 1024"},
        BadCase{"settings:\n  worker: 2\nnodes: {}\n",
                "bad.yaml:2:3: unknown setting 'worker' — did you mean 'workers'?"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: ${NOPE}\n",
                "bad.yaml:4:11: environment variable 'NOPE' is not set"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: ${NOPE\n",
                "bad.yaml:4:11: unterminated '${'"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: ${1X}\n", "is not a valid variable"},
        BadCase{"- a\n- b\n", "bad.yaml:1:1: expected a mapping"},
        BadCase{"pipeline: x\n", "has no 'nodes' section"},
        BadCase{"nodes:\n  src:\n    type: generate\n    path: x\n    parallelism: 0\n",
                "parallelism must be between 1 and 256"},
        BadCase{"nodes:\n  src: 5\n", "node 'src' must be a mapping"},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases:\n      m: {dsn: x, tables: [a]}\n"
                "    defaults: {cutof: 9d}\n",
                "bad.yaml:6:16: node 'src': option 'defaults': unknown key 'cutof' — did you mean "
                "'cutoff'?"},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases:\n      m:\n        dsn: x\n"
                "        pool_sise: 3\n        tables: [a]\n",
                "bad.yaml:7:9: node 'src': option 'databases.m': unknown key 'pool_sise' — did you "
                "mean 'pool_size'?"},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases:\n      m:\n        dsn: x\n"
                "        tables: {a: {evry: 1s}}\n",
                "bad.yaml:7:22: node 'src': option 'databases.m.tables.a': unknown key 'evry' — "
                "did you mean 'every'?"},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases:\n      m:\n        dsn: x\n"
                "        tables: {a: {every: soon}}\n",
                "option 'databases.m.tables.a.every': "},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases:\n      m: {tables: [a]}\n",
                "option 'databases.m' is missing 'dsn'"},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases:\n      m: {dsn: x, pool_size: "
                "many, tables: [a]}\n",
                "option 'databases.m.pool_size' expects integer, got 'many'"},
        BadCase{"nodes:\n  src:\n    type: nested\n    databases: [m]\n",
                "option 'databases' expects a mapping of name -> settings, got a list"},
        BadCase{"nodes:\n  src: {type: generate, path: x}\n  out: {type: null, inputs: [src, "
                "src]}\n",
                "node 'out': input 'src' is listed twice"}));

}  // namespace
}  // namespace sluice
