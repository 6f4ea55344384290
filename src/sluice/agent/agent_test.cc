#include "sluice/agent/agent.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/builtin_nodes.h"
#include "sluice/config/loader.h"
#include "sluice/engine/executor.h"
#include "sluice/serve/http_client.h"
#include "sluice/testing/matchers.h"

namespace sluice::agent {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

const std::string kTree = std::string(SLUICE_PROCFS_TESTDATA) + "/a";

Result<PipelineSpec> Load(const std::string& text, std::vector<std::string> sets = {}) {
  NodeRegistry registry;
  RegisterBuiltinNodes(&registry);
  LoadOptions o;
  o.sections = {AgentSection()};
  o.overrides = std::move(sets);
  return LoadPipelineText(text, "agent.yaml", registry, o);
}

TEST(AgentOptionsTest, DefaultsAndTheBuiltInConfig) {
  ASSERT_OK_AND_ASSIGN(PipelineSpec spec, Load(std::string(kDefaultConfig)));
  ASSERT_OK_AND_ASSIGN(AgentOptions o, ReadAgentOptions(spec.sections.at("agent"), ""));
  EXPECT_EQ(o.http.listen, "127.0.0.1:9108");
  EXPECT_EQ(o.http.workers, 2);
  EXPECT_EQ(o.http.max_queued, 128);
  EXPECT_EQ(o.http.max_request_bytes, 16 * 1024);
  EXPECT_EQ(o.http.read_timeout_us, 5'000'000);
  EXPECT_TRUE(o.http.gzip);
  EXPECT_EQ(o.metric_prefix, "host_");
  ASSERT_OK_AND_ASSIGN(auto source, ChooseSource(spec, ""));
  EXPECT_EQ(source, std::make_pair(std::string("host"), int64_t{1'000'000}));

  ASSERT_OK_AND_ASSIGN(AgentOptions port_only, ReadAgentOptions(spec.sections.at("agent"), "9200"));
  EXPECT_EQ(port_only.http.listen, "127.0.0.1:9200");
  ASSERT_OK_AND_ASSIGN(PipelineSpec set, Load(std::string(kDefaultConfig),
                                              {"agent.listen=0.0.0.0:9300", "agent.workers=4"}));
  ASSERT_OK_AND_ASSIGN(AgentOptions all, ReadAgentOptions(set.sections.at("agent"), ""));
  EXPECT_EQ(all.http.listen, "0.0.0.0:9300");
  EXPECT_EQ(all.http.workers, 4);
}

TEST(AgentOptionsTest, BadValuesNameTheirLine) {
  const std::string nodes = "nodes:\n  host: {type: procfs}\n";
  ASSERT_OK_AND_ASSIGN(PipelineSpec listen, Load("agent:\n  listen: nowhere\n" + nodes));
  EXPECT_THAT(ReadAgentOptions(listen.sections.at("agent"), ""),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("agent.yaml:2:11: agent: option 'listen': listen address "
                                 "'nowhere' has no port")));
  ASSERT_OK_AND_ASSIGN(PipelineSpec workers, Load("agent:\n  workers: 0\n" + nodes));
  EXPECT_THAT(ReadAgentOptions(workers.sections.at("agent"), ""),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("agent.yaml:2:12: agent: option 'workers': must be between 1 "
                                 "and 64")));
  ASSERT_OK_AND_ASSIGN(PipelineSpec prefix, Load("agent:\n  metric_prefix: 9x\n" + nodes));
  EXPECT_THAT(ReadAgentOptions(prefix.sections.at("agent"), ""),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'metric_prefix': '9x'")));
  ASSERT_OK_AND_ASSIGN(PipelineSpec timeout, Load("agent:\n  read_timeout: 0s\n" + nodes));
  EXPECT_THAT(ReadAgentOptions(timeout.sections.at("agent"), ""),
              StatusIs(StatusCode::kConfigError, HasSubstr("option 'read_timeout': must be")));
  ASSERT_OK_AND_ASSIGN(PipelineSpec fine, Load(nodes));
  EXPECT_THAT(ReadAgentOptions(fine.sections.at("agent"), "localhost"),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("--listen: listen address 'localhost' has no port")));
  // Unknown keys are the loader's: at their line, with the nearest name.
  EXPECT_THAT(Load("agent:\n  listn: 1\n" + nodes),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("agent.yaml:2:3: option 'agent': unknown key 'listn' — did you "
                                 "mean 'listen'?")));
}

TEST(AgentOptionsTest, ChoosesTheSourceToServe) {
  ASSERT_OK_AND_ASSIGN(PipelineSpec two, Load("nodes:\n  a: {type: procfs, interval: 5s}\n"
                                              "  b: {type: procfs}\n"));
  EXPECT_THAT(ChooseSource(two, ""),
              StatusIs(StatusCode::kConfigError,
                       HasSubstr("two procfs sources ('a', 'b'): say which one to serve with "
                                 "agent: {source: <id>}")));
  ASSERT_OK_AND_ASSIGN(auto b, ChooseSource(two, "a"));
  EXPECT_EQ(b, std::make_pair(std::string("a"), int64_t{5'000'000}));
  EXPECT_THAT(ChooseSource(two, "c"),
              StatusIs(StatusCode::kConfigError, HasSubstr("source 'c' is not a node")));
  ASSERT_OK_AND_ASSIGN(PipelineSpec none, Load("nodes:\n  g: {type: generate}\n"));
  EXPECT_THAT(ChooseSource(none, ""),
              StatusIs(StatusCode::kConfigError, HasSubstr("has no procfs source")));
}

BatchPtr OneRowSample(double value) {
  const std::vector<Field> fields = {{"ts", TypeId::kTimestamp, true},
                                     {"host", TypeId::kString, true},
                                     {"metric", TypeId::kString, true},
                                     {"labels", TypeId::kJson, true},
                                     {"value", TypeId::kFloat64, true}};
  std::vector<ColumnBuilder> b;
  for (const Field& f : fields) b.emplace_back(f.type);
  b[0].AppendTimestamp(1'000'000);
  b[1].AppendString("h");
  b[2].AppendString("load1");
  b[3].AppendString("{}");
  b[4].AppendFloat64(value);
  std::vector<Column> cols;
  for (auto& x : b) cols.push_back(x.Finish());
  return *Batch::Make(MakeSchema(fields), std::move(cols));
}

TEST(LatestSampleTest, RendersOncePerSampleAndKnowsItsAge) {
  FakeClock clock(0);
  LatestSample latest("host_", 1'000'000, &clock);
  EXPECT_EQ(latest.Json(), nullptr);
  EXPECT_EQ(latest.health().samples, 0);
  EXPECT_FALSE(latest.health().ok);
  ASSERT_OK(latest.Update(OneRowSample(0.5)));
  const serve::BodyPtr json = latest.Json();
  ASSERT_NE(json, nullptr);
  EXPECT_EQ(latest.Json(), json);  // the same bytes until the next sample
  EXPECT_THAT(json->text(), HasSubstr(R"("sample":1,"interval_s":1,)"));
  EXPECT_THAT(latest.Prometheus()->text(), HasSubstr("\nhost_load1 0.5\n"));
  ASSERT_OK(latest.Update(OneRowSample(0.75)));
  EXPECT_NE(latest.Json(), json);
  EXPECT_THAT(latest.Prometheus()->text(), HasSubstr("\nhost_load1 0.75\n"));
  EXPECT_TRUE(latest.health().ok);
  clock.Advance(4'000'000);
  EXPECT_TRUE(latest.health().ok);
  clock.Advance(1);
  EXPECT_FALSE(latest.health().ok);  // 3 intervals + 1 s without a sample
  EXPECT_EQ(latest.health().samples, 2);
  EXPECT_EQ(latest.health().age_us, 4'000'001);
  ASSERT_OK(latest.Update(nullptr));  // nothing: the health stays as it was
  EXPECT_EQ(latest.health().samples, 2);
}

TEST(AgentRoutesTest, ServesTheLatestSample) {
  FakeClock clock(0);
  auto latest = std::make_shared<LatestSample>("host_", 1'000'000, &clock);
  serve::HttpServerOptions o;
  ASSERT_OK_AND_ASSIGN(auto server, serve::HttpServer::Start(o, AgentRoutes(latest)));
  auto get = [&](const char* path) { return serve::HttpGet("127.0.0.1", server->port(), path); };

  ASSERT_OK_AND_ASSIGN(serve::HttpReply metrics, get("/metrics"));
  EXPECT_EQ(metrics.status, 503);
  ASSERT_OK_AND_ASSIGN(serve::HttpReply api, get("/api/v1/metrics"));
  EXPECT_EQ(api.status, 503);
  EXPECT_EQ(api.body, "{\"error\":\"no sample yet\"}\n");
  ASSERT_OK_AND_ASSIGN(serve::HttpReply health, get("/healthz"));
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(nlohmann::json::parse(health.body)["status"], "starting");

  ASSERT_OK(latest->Update(OneRowSample(2.5)));
  ASSERT_OK_AND_ASSIGN(metrics, get("/metrics"));
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.content_type, "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_THAT(metrics.body, HasSubstr("\nhost_load1 2.5\n"));
  ASSERT_OK_AND_ASSIGN(api, get("/api/v1/metrics"));
  EXPECT_EQ(api.status, 200);
  EXPECT_EQ(nlohmann::json::parse(api.body)["metrics"]["load1"][0]["value"], 2.5);
  ASSERT_OK_AND_ASSIGN(health, get("/healthz"));
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(health.body, "{\"status\":\"ok\",\"samples\":1,\"age_s\":0,\"interval_s\":1}\n");
  clock.Advance(10'000'000);
  ASSERT_OK_AND_ASSIGN(health, get("/healthz"));
  EXPECT_EQ(health.status, 503);
  EXPECT_EQ(nlohmann::json::parse(health.body)["status"], "stale");

  ASSERT_OK_AND_ASSIGN(serve::HttpReply page, get("/"));
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.content_type, "text/html; charset=utf-8");
  for (const char* chart : {"chart-cpu", "chart-memory", "chart-disk", "chart-network"}) {
    EXPECT_THAT(page.body, HasSubstr(std::string("id=\"") + chart + "\"")) << chart;
  }
  // No external assets: the only URLs are the agent's own, relative ones.
  EXPECT_THAT(page.body, ::testing::Not(HasSubstr("http://")));
  EXPECT_THAT(page.body, ::testing::Not(HasSubstr("https://")));
  EXPECT_THAT(page.body, ::testing::Not(HasSubstr(" src=")));
  EXPECT_THAT(page.body, HasSubstr("fetch(\"api/v1/metrics\""));
}

TEST(AgentPipelineTest, TheTapKeepsTheSourcesLatestSample) {
  auto latest = std::make_shared<LatestSample>("host_", 10'000);
  NodeRegistry registry;
  RegisterBuiltinNodes(&registry);
  RegisterTap(&registry, latest);
  LoadOptions lo;
  lo.sections = {AgentSection()};
  lo.overrides = {"nodes.host.root=" + kTree, "nodes.host.interval=10ms", "nodes.host.samples=3"};
  ASSERT_OK_AND_ASSIGN(PipelineSpec spec,
                       LoadPipelineText(std::string(kDefaultConfig), "agent.yaml", registry, lo));
  ASSERT_OK(AddTap(&spec, "host"));
  EXPECT_THAT(AddTap(&spec, "host"), StatusIs(StatusCode::kConfigError, HasSubstr("is taken")));
  ASSERT_OK_AND_ASSIGN(auto pipeline, Pipeline::Build(std::move(spec), registry));
  PipelineRun run(pipeline.get(), RunOptions{});
  ASSERT_OK(run.Execute());
  EXPECT_EQ(latest->health().samples, 3);
  const nlohmann::json j = nlohmann::json::parse(latest->Json()->text());
  EXPECT_EQ(j["host"], "recorded-host");
  EXPECT_EQ(j["sample"], 3);
  EXPECT_EQ(j["metrics"]["memory_used_bytes"][0]["value"], 1103806464.0);
}

}  // namespace
}  // namespace sluice::agent
