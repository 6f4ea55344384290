#include "sluice/connectors/generate/generate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>

#include "sluice/core/time.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using testing::IsOk;

constexpr int64_t kEnd = 1'780'000'000'000'000;  // 2026-05-28T...Z

OptionJson MeterOptions(int64_t rows, int64_t seed) {
  return {{"shape", "meter"},
          {"rows", rows},
          {"batch_rows", 700},
          {"seed", seed},
          {"rate", 0.0},
          {"start_id", 1},
          {"end", FormatTimestamp(kEnd)},
          {"span", 0},
          {"meters", 50},
          {"interval", 1'000'000},
          {"null_ratio", 0.0}};
}

struct Generated {
  SchemaPtr schema;
  std::vector<BatchPtr> batches;
};

Generated Read(const OptionJson& values) {
  NodeRegistry registry;
  RegisterGenerateNodes(&registry);
  const NodeTypeInfo* info = registry.Resolve("generate", false);
  EXPECT_NE(info, nullptr);
  auto made = info->make_source(NodeOptions::ForTest("g", values, "generate"));
  EXPECT_THAT(made, IsOk());
  std::unique_ptr<Source> source = std::move(*made);
  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx("g", "generate", &stats, &cancelled, false);
  EXPECT_THAT(source->Open(&ctx), IsOk());
  Generated run{source->schema(), {}};
  for (uint64_t seq = 0;; ++seq) {
    auto batch = source->Next(seq);
    EXPECT_THAT(batch, IsOk());
    if (!batch.ok() || *batch == nullptr) break;
    run.batches.push_back(*batch);
  }
  return run;
}

std::vector<std::string> Rows(const Generated& run) {
  std::vector<std::string> rows;
  for (const auto& b : run.batches) {
    for (int64_t i = 0; i < b->num_rows(); ++i) {
      rows.push_back(fmt::format("{}|{}|{}|{}|{}|{}", b->column(0).GetView(i),
                                 b->column(1).GetInt64(i), b->column(2).GetFloat64(i),
                                 b->column(3).GetFloat64(i), b->column(4).GetFloat64(i),
                                 b->column(5).GetFloat64(i)));
    }
  }
  return rows;
}

TEST(GenerateMeterTest, SchemaIsTheSixReadingColumns) {
  Generated run = Read(MeterOptions(10, 1));
  ASSERT_NE(run.schema, nullptr);
  std::vector<std::string> names;
  std::vector<TypeId> types;
  for (const auto& f : run.schema->fields()) {
    names.push_back(f.name);
    types.push_back(f.type);
  }
  EXPECT_THAT(
      names, ::testing::ElementsAre("meter_id", "ts", "kwh", "voltage", "current", "power_factor"));
  EXPECT_THAT(types, ::testing::ElementsAre(TypeId::kString, TypeId::kTimestamp, TypeId::kFloat64,
                                            TypeId::kFloat64, TypeId::kFloat64, TypeId::kFloat64));
}

TEST(GenerateMeterTest, SameSeedSameRowsOtherSeedOtherValues) {
  const auto a = Rows(Read(MeterOptions(5000, 7)));
  const auto b = Rows(Read(MeterOptions(5000, 7)));
  const auto c = Rows(Read(MeterOptions(5000, 8)));
  ASSERT_EQ(a.size(), 5000u);
  EXPECT_EQ(a, b);
  ASSERT_EQ(c.size(), 5000u);
  EXPECT_NE(a, c);
  // The ids and times depend on the row only; the readings on the seed.
  EXPECT_EQ(a[0].substr(0, a[0].find('|', 9)), c[0].substr(0, c[0].find('|', 9)));
}

TEST(GenerateMeterTest, MetersTakeTurnsAndValuesArePlausible) {
  Generated run = Read(MeterOptions(5000, 3));
  int64_t row = 0;
  for (const auto& b : run.batches) {
    for (int64_t i = 0; i < b->num_rows(); ++i, ++row) {
      EXPECT_EQ(b->column(0).GetView(i), fmt::format("m-{:06}", row % 50 + 1));
      EXPECT_EQ(b->column(1).GetInt64(i), kEnd + (row / 50) * 1'000'000);
      const double kwh = b->column(2).GetFloat64(i);
      const double volts = b->column(3).GetFloat64(i);
      const double amps = b->column(4).GetFloat64(i);
      const double pf = b->column(5).GetFloat64(i);
      EXPECT_GE(volts, 220.8);
      EXPECT_LE(volts, 239.2);
      EXPECT_GE(amps, 0.0);
      EXPECT_LE(amps, 40.0);
      EXPECT_GE(pf, 0.8);
      EXPECT_LE(pf, 1.0);
      EXPECT_NEAR(kwh, volts * amps * pf / 3600.0 / 1000.0, 1e-12);
    }
  }
  EXPECT_EQ(row, 5000);
}

TEST(GenerateMeterTest, BadMetersOrIntervalIsAConfigError) {
  NodeRegistry registry;
  RegisterGenerateNodes(&registry);
  const NodeTypeInfo* info = registry.Resolve("generate", false);
  OptionJson bad = MeterOptions(10, 1);
  bad["meters"] = 0;
  EXPECT_THAT(info->make_source(NodeOptions::ForTest("g", bad, "generate")),
              testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("meters")));
  bad = MeterOptions(10, 1);
  bad["interval"] = 0;
  EXPECT_THAT(info->make_source(NodeOptions::ForTest("g", bad, "generate")),
              testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("interval")));
}

}  // namespace
}  // namespace sluice
