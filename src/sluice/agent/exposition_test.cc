#include "sluice/agent/exposition.h"

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/connectors/procfs/procfs_test_util.h"
#include "sluice/connectors/procfs/sampler.h"
#include "sluice/testing/matchers.h"

namespace sluice::agent {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kTs = 1'796'400'000'000'000;  // 2026-12-04T16:00:00Z

struct Row {
  std::string metric;
  std::string labels;
  double value;
  std::optional<std::string> error = std::nullopt;
};

BatchPtr MakeSample(const std::vector<Row>& rows, std::string host = "h1") {
  const SchemaPtr& schema = procfs::Sampler::Schema();
  std::vector<ColumnBuilder> b;
  for (const Field& f : schema->fields()) b.emplace_back(f.type);
  for (const Row& r : rows) {
    b[0].AppendTimestamp(kTs);
    b[1].AppendString(host);
    b[2].AppendString(r.metric);
    b[3].AppendString(r.labels);
    b[4].AppendFloat64(r.value);
    if (r.error) {
      b[5].AppendString(*r.error);
    } else {
      b[5].AppendNull();
    }
  }
  std::vector<Column> cols;
  for (auto& x : b) cols.push_back(x.Finish());
  auto batch = Batch::Make(schema, std::move(cols));
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return *batch;
}

std::string Prom(const BatchPtr& b, std::string_view prefix = "host_") {
  auto cols = FindSampleColumns(*b);
  EXPECT_TRUE(cols.ok());
  return SamplePrometheus(*b, *cols, prefix);
}

nlohmann::json JsonOf(const BatchPtr& b, SampleInfo info = {3, 1'000'000}) {
  auto cols = FindSampleColumns(*b);
  EXPECT_TRUE(cols.ok());
  return nlohmann::json::parse(SampleJson(*b, *cols, info));
}

TEST(ExpositionTest, GroupsEachMetricWithHelpAndType) {
  const BatchPtr b = MakeSample({
      {"disk_reads_total", R"({"device":"vda"})", 10},
      {"disk_busy_ratio", R"({"device":"vda"})", 0.25},
      {"disk_reads_total", R"({"device":"vdb"})", 20},
      {"disk_busy_ratio", R"({"device":"vdb"})", 0},
      {"load1", "{}", 1.5},
  });
  EXPECT_EQ(Prom(b),
            "# HELP host_disk_reads_total Reads completed by the device.\n"
            "# TYPE host_disk_reads_total counter\n"
            "host_disk_reads_total{device=\"vda\"} 10\n"
            "host_disk_reads_total{device=\"vdb\"} 20\n"
            "# HELP host_disk_busy_ratio Share of the last interval with I/O in flight on the "
            "device.\n"
            "# TYPE host_disk_busy_ratio gauge\n"
            "host_disk_busy_ratio{device=\"vda\"} 0.25\n"
            "host_disk_busy_ratio{device=\"vdb\"} 0\n"
            "# HELP host_load1 Load average over 1 minute.\n"
            "# TYPE host_load1 gauge\n"
            "host_load1 1.5\n");
  EXPECT_THAT(Prom(MakeSample({{"new_metric", "{}", 1}}), ""),
              HasSubstr("# HELP new_metric Host metric new_metric (docs/AGENT.md).\n"));
}

TEST(ExpositionTest, LabelsTakeTheExpositionsEscapes) {
  std::string out;
  // JSON escapes that the exposition writes differently: \u0001 is the raw byte, \t a tab,
  // \/ a slash; a surrogate pair is one UTF-8 character, a lone one U+FFFD.
  ASSERT_TRUE(AppendPrometheusLabels(
      R"({"comm":"a\"b\\c\nd\u0001\t\/","emoji":"\ud83d\ude00","lone":"\udc00","bad-key":"x"})",
      &out));
  EXPECT_EQ(out,
            "comm=\"a\\\"b\\\\c\\nd\x01\t/\",emoji=\"\xF0\x9F\x98\x80\",lone=\"\xEF\xBF\xBD\","
            "bad_key=\"x\"");
  out = "keep";
  EXPECT_TRUE(AppendPrometheusLabels("{}", &out));
  EXPECT_EQ(out, "keep");
  for (const char* bad : {"", "[]", "{\"a\":1}", "{\"a\":\"b\"", "{\"a\" \"b\"}", "{\"a\":\"\\q\"}",
                          "{\"a\":\"b\"} x"}) {
    out = "keep";
    EXPECT_FALSE(AppendPrometheusLabels(bad, &out)) << bad;
    EXPECT_EQ(out, "keep") << bad;
  }
  // A row with labels that are not an object of strings is written without labels.
  EXPECT_THAT(Prom(MakeSample({{"load1", "not json", 2}})), HasSubstr("\nhost_load1 2\n"));
}

TEST(ExpositionTest, ValuesThatAreNotFinite) {
  const BatchPtr b = MakeSample({{"a", "{}", NAN},
                                 {"b", "{}", INFINITY},
                                 {"c", "{}", -INFINITY},
                                 {"d", "{}", 1e21},
                                 {"e", "{}", 0.1}});
  const std::string prom = Prom(b, "");
  EXPECT_THAT(prom, HasSubstr("\na NaN\n"));
  EXPECT_THAT(prom, HasSubstr("\nb +Inf\n"));
  EXPECT_THAT(prom, HasSubstr("\nc -Inf\n"));
  EXPECT_THAT(prom, HasSubstr("\nd 1e+21\n"));
  EXPECT_THAT(prom, HasSubstr("\ne 0.1\n"));
  const nlohmann::json j = JsonOf(b);
  EXPECT_TRUE(j["metrics"]["a"][0]["value"].is_null());
  EXPECT_TRUE(j["metrics"]["b"][0]["value"].is_null());
  EXPECT_EQ(j["metrics"]["d"][0]["value"].get<double>(), 1e21);
  EXPECT_EQ(j["metrics"]["e"][0]["value"].get<double>(), 0.1);
}

TEST(ExpositionTest, JsonHasTheSampleAndItsRowsByMetric) {
  const BatchPtr b = MakeSample(
      {
          {"cpu_seconds_total", R"({"mode":"user"})", 37432},
          {"collector_success", R"({"collector":"disk"})", 0, "/proc/diskstats: line 9: cut"},
          {"cpu_seconds_total", R"({"mode":"idle"})", 28248.69},
      },
      "host \"x\"");
  const nlohmann::json j = JsonOf(b, {7, 250'000});
  EXPECT_EQ(j["host"], "host \"x\"");
  EXPECT_EQ(j["ts_us"], kTs);
  EXPECT_EQ(j["ts"], "2026-12-04T16:00:00Z");
  EXPECT_EQ(j["sample"], 7);
  EXPECT_EQ(j["interval_s"], 0.25);
  // Metrics in the order of their first row, each row's keys as written.
  const nlohmann::ordered_json ordered =
      nlohmann::ordered_json::parse(SampleJson(*b, *FindSampleColumns(*b), {7, 250'000}));
  EXPECT_EQ(ordered["metrics"].dump(),
            R"({"cpu_seconds_total":[{"labels":{"mode":"user"},"value":37432},)"
            R"({"labels":{"mode":"idle"},"value":28248.69}],)"
            R"("collector_success":[{"labels":{"collector":"disk"},"value":0,)"
            R"("error":"/proc/diskstats: line 9: cut"}]})");
}

TEST(ExpositionTest, RowsThatAreNotASampleAreRefused) {
  auto schema = MakeSchema({{"metric", TypeId::kString, true}, {"value", TypeId::kInt64, true}});
  ColumnBuilder m(TypeId::kString), v(TypeId::kInt64);
  m.AppendString("x");
  v.AppendInt64(1);
  std::vector<Column> cols;
  cols.push_back(m.Finish());
  cols.push_back(v.Finish());
  ASSERT_OK_AND_ASSIGN(BatchPtr b, Batch::Make(schema, std::move(cols)));
  EXPECT_THAT(FindSampleColumns(*b),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("no timestamp column 'ts': the agent serves the rows of a procfs "
                                 "source")));
}

// The recorded host's two samples (tests/data/procfs/a and b), as the procfs source makes them.
class RecordedSampleTest : public ::testing::Test {
 protected:
  RecordedSampleTest() : env_(procfs::testing::TreePath("a")) {
    env_.SetFs("/", {.size_bytes = 100'000'000'000,
                     .free_bytes = 40'000'000'000,
                     .available_bytes = 35'000'000'000,
                     .files = 6'000'000,
                     .files_free = 5'000'000,
                     .readonly = false});
    env_.SetFs("/mnt/my disk", {.size_bytes = 1000,
                                .free_bytes = 250,
                                .available_bytes = 250,
                                .files = 10,
                                .files_free = 4,
                                .readonly = true});
    env_.SetFs("/data", {}, EACCES);
    procfs::SamplerOptions o;
    o.config.root = std::string(procfs::testing::RecordedEnv::kRoot);
    o.config.env = &env_;
    o.config.clock_ticks = 100;
    o.config.page_size = 4096;
    auto made = procfs::Sampler::Make(std::move(o));
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    sampler_ = std::move(*made);
  }
  BatchPtr Sample(const std::string& tree, int64_t now_us) {
    env_.Use(procfs::testing::TreePath(tree));
    sampler_->Collect(now_us);
    return sampler_->ToBatch(kTs + now_us, "recorded-host");
  }
  procfs::testing::RecordedEnv env_;
  std::unique_ptr<procfs::Sampler> sampler_;
};

TEST_F(RecordedSampleTest, PrometheusTextOfTheRecordedHost) {
  const std::string first = Prom(Sample("a", 0));
  // Values from the recorded files: MemTotal - MemAvailable (kB), cpu user ticks / USER_HZ.
  EXPECT_THAT(first, HasSubstr("\nhost_memory_used_bytes 1103806464\n"));
  EXPECT_THAT(first, HasSubstr("\nhost_cpu_seconds_total{mode=\"user\"} 37432\n"));
  EXPECT_THAT(first, HasSubstr("\nhost_cpus 2\n"));
  EXPECT_THAT(first, HasSubstr("\nhost_filesystem_readonly{device=\"/dev/vdb\",fstype=\"ext4\","
                               "mountpoint=\"/mnt/my disk\"} 1\n"));
  EXPECT_THAT(first, HasSubstr("\nhost_collector_success{collector=\"filesystem\"} 1\n"));
  EXPECT_THAT(first, ::testing::Not(HasSubstr("cpu_busy_ratio")));  // no rates yet

  const std::string second = Prom(Sample("b", 1'000'000));
  EXPECT_THAT(second, HasSubstr("\nhost_memory_used_bytes 1044926464\n"));
  EXPECT_THAT(second,
              HasSubstr("\nhost_network_receive_bytes_total{device=\"lo\"} 107042726348\n"));
  EXPECT_THAT(second, HasSubstr("# TYPE host_cpu_busy_ratio gauge\nhost_cpu_busy_ratio "));
  // Every metric has one HELP and one TYPE, before its series, which come together.
  std::istringstream lines(second);
  std::set<std::string> typed, closed;
  std::string line, current;
  int series = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("# HELP ", 0) == 0) continue;
    if (line.rfind("# TYPE ", 0) == 0) {
      const std::string name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(typed.insert(name).second) << "second TYPE for " << name;
      if (!current.empty()) closed.insert(current);
      current = name;
      const bool counter = name.size() > 6 && name.substr(name.size() - 6) == "_total";
      EXPECT_EQ(line, "# TYPE " + name + (counter ? " counter" : " gauge"));
      continue;
    }
    const std::string name = line.substr(0, line.find_first_of("{ "));
    EXPECT_EQ(name, current) << line;
    EXPECT_EQ(closed.count(name), 0u) << line;
    ++series;
  }
  EXPECT_GT(series, 200);
}

TEST_F(RecordedSampleTest, JsonOfTheRecordedHost) {
  Sample("a", 0);
  const nlohmann::json j = JsonOf(Sample("b", 1'000'000), {2, 1'000'000});
  EXPECT_EQ(j["host"], "recorded-host");
  EXPECT_EQ(j["metrics"]["memory_used_bytes"][0]["value"], 1044926464.0);
  EXPECT_EQ(j["metrics"]["cpus"][0]["value"], 2.0);
  const double busy = j["metrics"]["cpu_busy_ratio"][0]["value"].get<double>();
  EXPECT_GT(busy, 0.0);
  EXPECT_LE(busy, 1.0);
  for (const auto& r : j["metrics"]["collector_success"]) {
    EXPECT_EQ(r["value"], 1.0) << r.dump();
    EXPECT_FALSE(r.contains("error"));
  }
}

}  // namespace
}  // namespace sluice::agent
