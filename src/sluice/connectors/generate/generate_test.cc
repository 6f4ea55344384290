#include "sluice/connectors/generate/generate.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "sluice/core/time.h"
#include "sluice/engine/message.h"
#include "sluice/testing/matchers.h"

namespace sluice {
namespace {

using testing::IsOk;

constexpr int64_t kEnd = 1'780'000'000'000'000;  // 2026-05-28T...Z

// The options every shape takes: `rows` rows in batches of 700 from id 1, ending at kEnd.
OptionJson ShapeOptions(const char* shape, int64_t rows, int64_t seed) {
  return {{"shape", shape},
          {"rows", rows},
          {"batch_rows", 700},
          {"seed", seed},
          {"rate", 0.0},
          {"start_id", 1},
          {"end", FormatTimestamp(kEnd)},
          {"span", 0},
          {"null_ratio", 0.0}};
}

OptionJson MeterOptions(int64_t rows, int64_t seed) {
  OptionJson o = ShapeOptions("meter", rows, seed);
  o["meters"] = 50;
  o["interval"] = 1'000'000;
  return o;
}

constexpr int64_t kMinute = 60'000'000;

// 300 meters reporting every minute, batches of 700 rows: a batch straddles two or three rounds.
OptionJson DisorderedMeterOptions(int64_t rows, int64_t seed, double anomalies, double late) {
  OptionJson o = MeterOptions(rows, seed);
  o["meters"] = 300;
  o["interval"] = kMinute;
  o["anomalies"] = anomalies;
  o["late"] = late;
  o["lateness"] = 30'000'000;
  return o;
}

std::unique_ptr<Source> MakeSource(const OptionJson& values) {
  NodeRegistry registry;
  RegisterGenerateNodes(&registry);
  auto made = registry.Resolve("generate", false)
                  ->make_source(NodeOptions::ForTest("g", values, "generate"));
  EXPECT_THAT(made, IsOk());
  return made.ok() ? std::move(*made) : nullptr;
}

struct Generated {
  SchemaPtr schema;
  std::vector<BatchPtr> batches;
  int64_t watermark_before = 0;     // Watermark() after Open, before the first Next
  std::vector<int64_t> watermarks;  // Watermark() after each Next that returned a batch
};

Generated Read(const OptionJson& values) {
  std::unique_ptr<Source> source = MakeSource(values);
  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx("g", "generate", &stats, &cancelled, false);
  EXPECT_THAT(source->Open(&ctx), IsOk());
  Generated run{source->schema(), {}, source->Watermark(), {}};
  for (uint64_t seq = 0;; ++seq) {
    auto batch = source->Next(seq);
    EXPECT_THAT(batch, IsOk());
    if (!batch.ok() || *batch == nullptr) break;
    run.batches.push_back(*batch);
    run.watermarks.push_back(source->Watermark());
  }
  return run;
}

// Every value of `b`, as text, for comparing batches.
std::string Render(const Batch& b) {
  std::string out;
  for (int c = 0; c < b.num_columns(); ++c) {
    const Column& col = b.column(c);
    for (int64_t i = 0; i < b.num_rows(); ++i) {
      if (col.IsNull(i)) {
        out += "null";
      } else if (IsVarWidth(col.type())) {
        out += std::string(col.GetView(i));
      } else if (col.type() == TypeId::kFloat64) {
        out += fmt::format("{}", col.GetFloat64(i));
      } else if (col.type() == TypeId::kBool) {
        out += col.GetBool(i) ? "true" : "false";
      } else {
        out += std::to_string(col.GetInt64(i));
      }
      out += '|';
    }
    out += '\n';
  }
  return out;
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

// A JSON number or a decimal inside text, as the audit shape writes it: digits only, no
// leading zero, within [0, below).
void ExpectDecimal(const std::string& text, uint64_t below, const std::string& row) {
  ASSERT_FALSE(text.empty()) << row;
  EXPECT_TRUE(std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
      << text << " in " << row;
  EXPECT_TRUE(text.size() == 1 || text[0] != '0') << text << " in " << row;
  EXPECT_LT(std::stoull(text), below) << row;
}

// Every payload is a JSON object of the documented fields, its numbers written in full (the
// shape formats them itself), 342-563 bytes; the same seed gives the same rows.
TEST(GenerateTest, BatchSeqDependsOnSeqAloneSoSeveralThreadsMayReadIt) {
  // Read as the parallel executor's workers do (Source::ConcurrentNext): batches out of order,
  // from two threads at once. Each batch must be the one an in-order read gives.
  for (const char* shape : {"audit", "narrow", "custom"}) {
    OptionJson options = ShapeOptions(shape, 5000, 9);  // 8 batches, the last one short
    if (std::string(shape) == "custom") {
      options["columns"] = {{"a", "int64"}, {"s", "string"}, {"t", "timestamp"}};
      options["null_ratio"] = 0.1;
    }
    const Generated in_order = Read(options);
    ASSERT_EQ(in_order.batches.size(), 8u) << shape;
    std::unique_ptr<Source> made = MakeSource(options);
    ASSERT_NE(made, nullptr);
    Source& source = *made;
    EXPECT_TRUE(source.ConcurrentNext()) << shape;
    NodeStats stats;
    std::atomic<bool> cancelled{false};
    NodeContext ctx("g", "generate", &stats, &cancelled, false);
    ASSERT_THAT(source.Open(&ctx), IsOk());
    std::vector<BatchPtr> got(9);
    auto read = [&](std::vector<uint64_t> seqs) {
      for (uint64_t seq : seqs) got[seq] = *source.Next(seq);
    };
    std::thread other(read, std::vector<uint64_t>{7, 1, 5, 3});
    read({8, 6, 0, 4, 2});
    other.join();
    EXPECT_EQ(got[8], nullptr) << shape;  // past the end, whoever asks first
    for (size_t seq = 0; seq < 8; ++seq) {
      ASSERT_NE(got[seq], nullptr) << shape << " batch " << seq;
      EXPECT_EQ(Render(*got[seq]), Render(*in_order.batches[seq])) << shape << " batch " << seq;
    }
  }
  // The meter shape's watermark follows the rows made so far, and `rate` paces one reader.
  EXPECT_FALSE(MakeSource(MeterOptions(100, 1))->ConcurrentNext());
  OptionJson paced = ShapeOptions("narrow", 100, 1);
  paced["rate"] = 1000.0;
  EXPECT_FALSE(MakeSource(paced)->ConcurrentNext());
}

TEST(GenerateAuditTest, PayloadsAreWellFormedAndFollowTheSeed) {
  const Generated run = Read(ShapeOptions("audit", 5000, 11));
  const Generated again = Read(ShapeOptions("audit", 5000, 11));
  ASSERT_EQ(run.batches.size(), again.batches.size());
  int64_t rows = 0;
  std::set<std::string> octets;
  std::set<char> hex_digits;
  for (size_t b = 0; b < run.batches.size(); ++b) {
    const BatchPtr& batch = run.batches[b];
    ASSERT_EQ(batch->num_columns(), 5);
    for (int64_t i = 0; i < batch->num_rows(); ++i, ++rows) {
      EXPECT_EQ(batch->column(0).GetInt64(i), rows + 1);
      const std::string actor(batch->column(2).GetView(i));
      ASSERT_EQ(actor.rfind("user-", 0), 0u) << actor;
      ExpectDecimal(actor.substr(5), 5000, actor);
      const std::string text(batch->column(4).GetView(i));
      EXPECT_EQ(text, again.batches[b]->column(4).GetView(i));
      EXPECT_GE(text.size(), 342u);
      EXPECT_LE(text.size(), 563u);
      const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
      ASSERT_TRUE(doc.is_object()) << text;
      const std::string request_id = doc["request_id"].get<std::string>();
      EXPECT_EQ(request_id.size(), 32u) << text;
      EXPECT_EQ(request_id.find_first_not_of("0123456789abcdef"), std::string::npos) << text;
      hex_digits.insert(request_id.begin(), request_id.end());
      const std::string ip = doc["ip"].get<std::string>();
      ASSERT_EQ(ip.rfind("10.", 0), 0u) << text;
      size_t from = 3;
      for (int k = 0; k < 3; ++k) {
        const size_t dot = ip.find('.', from);
        const std::string octet = ip.substr(from, dot == std::string::npos ? dot : dot - from);
        ExpectDecimal(octet, 256, text);
        octets.insert(octet);
        from = dot + 1;
      }
      const std::string path = doc["path"].get<std::string>();
      ExpectDecimal(path.substr(path.rfind('/') + 1), 100000, text);
      ExpectDecimal(doc["latency_ms"].dump(), 2000, text);
      const std::string tenant = doc["tenant"].get<std::string>();
      ASSERT_EQ(tenant.rfind("tenant-", 0), 0u) << text;
      ExpectDecimal(tenant.substr(7), 50, text);
      EXPECT_TRUE(doc["status"] == 200 || doc["status"] == 500) << text;
    }
  }
  EXPECT_EQ(rows, 5000);
  // Octets of one, two and three digits, 0 and 255 among them.
  EXPECT_TRUE(octets.count("0") && octets.count("7") && octets.count("42") && octets.count("255"));
  EXPECT_EQ(hex_digits.size(), 16u);  // every digit and letter turns up
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

TEST(GenerateMeterTest, AnomaliesAndLateRowsFollowTheSeed) {
  const auto a = Rows(Read(DisorderedMeterOptions(5000, 7, 0.05, 0.2)));
  const auto b = Rows(Read(DisorderedMeterOptions(5000, 7, 0.05, 0.2)));
  const auto c = Rows(Read(DisorderedMeterOptions(5000, 8, 0.05, 0.2)));
  ASSERT_EQ(a.size(), 5000u);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(GenerateMeterTest, WithoutAnomaliesOrLateRowsTheRowsAreUnchanged) {
  // The extra draws happen only when the options are on: the plain rows stay what they were.
  OptionJson plain = MeterOptions(3000, 5);
  OptionJson zero = MeterOptions(3000, 5);
  zero["anomalies"] = 0.0;
  zero["late"] = 0.0;
  zero["lateness"] = 30'000'000;
  EXPECT_EQ(Rows(Read(plain)), Rows(Read(zero)));
  // Pinned: row 0 of seed 5 as the generator made it before these options (a SplitMix64
  // replica in Python gives the same), so existing seeds keep their rows.
  EXPECT_EQ(Rows(Read(plain))[0],
            fmt::format("m-000001|{}|0.0012229737599765023|230.5437148732263|22.860078846603876|"
                        "0.8353887623412662",
                        kEnd));
}

TEST(GenerateMeterTest, AnomaliesAreTheOutlierShareAndFollowTheRule) {
  constexpr int64_t kRows = 100'000;
  Generated run = Read(DisorderedMeterOptions(kRows, 11, 0.02, 0.0));
  const double hours = 1.0 / 60.0;
  int64_t outliers = 0, row = 0;
  for (const auto& b : run.batches) {
    for (int64_t i = 0; i < b->num_rows(); ++i, ++row) {
      const double kwh = b->column(2).GetFloat64(i);
      const double volts = b->column(3).GetFloat64(i);
      const double amps = b->column(4).GetFloat64(i);
      const double pf = b->column(5).GetFloat64(i);
      EXPECT_EQ(b->column(1).GetInt64(i), kEnd + (row / 300) * kMinute);  // late is 0
      if (volts >= 280.0) {
        ++outliers;
        EXPECT_LT(volts, 320.0);
        EXPECT_LT(amps, 480.0);
        // kwh and current carry the same factor, so their ratio is a normal reading's V·pf·h.
        if (amps > 0) {
          EXPECT_GE(kwh / amps, 220.8 * 0.8 * hours / 1000.0 - 1e-15);
          EXPECT_LE(kwh / amps, 239.2 * pf * hours / 1000.0 + 1e-15);
        }
      } else {
        EXPECT_GE(volts, 220.8);
        EXPECT_LE(volts, 239.2);
        EXPECT_LE(amps, 40.0);
        EXPECT_NEAR(kwh, volts * amps * pf * hours / 1000.0, 1e-12);
      }
    }
  }
  ASSERT_EQ(row, kRows);
  // Binomial(100000, 0.02): mean 2000, sd 44; ±6 sd. Seeded, so the same count every run.
  EXPECT_GT(outliers, 1735);
  EXPECT_LT(outliers, 2265);
}

TEST(GenerateMeterTest, LateRowsAreTheLateShareWithinLatenessOfTheirRound) {
  constexpr int64_t kRows = 100'000;
  constexpr int64_t kLateness = 30'000'000;
  Generated run = Read(DisorderedMeterOptions(kRows, 13, 0.0, 0.1));
  int64_t late = 0, row = 0, max_delay = 0;
  for (const auto& b : run.batches) {
    for (int64_t i = 0; i < b->num_rows(); ++i, ++row) {
      EXPECT_EQ(b->column(0).GetView(i), fmt::format("m-{:06}", row % 300 + 1));
      const int64_t round_ts = kEnd + (row / 300) * kMinute;
      const int64_t delay = round_ts - b->column(1).GetInt64(i);
      EXPECT_GE(delay, 0);
      EXPECT_LE(delay, kLateness);
      EXPECT_LT(b->column(3).GetFloat64(i), 240.0);  // anomalies is 0
      if (delay > 0) ++late;
      max_delay = std::max(max_delay, delay);
    }
  }
  ASSERT_EQ(row, kRows);
  // Binomial(100000, 0.1): mean 10000, sd 95; ±6 sd.
  EXPECT_GT(late, 9430);
  EXPECT_LT(late, 10570);
  // The delays spread over (0, lateness]: 10 k uniform draws reach its last 1 %.
  EXPECT_GT(max_delay, kLateness * 99 / 100);
}

TEST(GenerateMeterTest, WatermarkIsTheLatestRoundLessLatenessAndAPromise) {
  constexpr int64_t kRows = 20'000;
  constexpr int64_t kLateness = 30'000'000;
  Generated run = Read(DisorderedMeterOptions(kRows, 17, 0.01, 0.5));
  EXPECT_EQ(run.watermark_before, kNoWatermark);
  ASSERT_EQ(run.watermarks.size(), run.batches.size());
  int64_t emitted = 0, promised = kNoWatermark, min_margin = INT64_MAX;
  for (size_t k = 0; k < run.batches.size(); ++k) {
    const BatchPtr& b = run.batches[k];
    for (int64_t i = 0; i < b->num_rows(); ++i) {
      // No row is older than the watermark read after the previous Next.
      const int64_t ts = b->column(1).GetInt64(i);
      EXPECT_GE(ts, promised) << "batch " << k << " row " << i;
      if (k > 0) min_margin = std::min(min_margin, ts - promised);
    }
    emitted += b->num_rows();
    const int64_t want = kEnd + (emitted - 1) / 300 * kMinute - kLateness;
    EXPECT_EQ(run.watermarks[k], want) << "after batch " << k;
    EXPECT_GE(run.watermarks[k], promised);
    promised = run.watermarks[k];
  }
  EXPECT_EQ(emitted, kRows);
  // It rises with the rounds, to the last round less lateness, and is not needlessly loose: some
  // late row comes within a second of the watermark announced before it.
  EXPECT_EQ(run.watermarks.front(), kEnd + 699 / 300 * kMinute - kLateness);
  EXPECT_EQ(run.watermarks.back(), kEnd + (kRows - 1) / 300 * kMinute - kLateness);
  EXPECT_LT(min_margin, 1'000'000);
}

OptionJson ZipfMeterOptions(int64_t rows, int64_t seed, double s) {
  OptionJson o = MeterOptions(rows, seed);
  o["batch_rows"] = 8192;
  o["meters"] = 1000;
  o["meter_zipf"] = s;
  return o;
}

// How many readings each meter has.
std::map<std::string, int64_t> CountByMeter(const Generated& run) {
  std::map<std::string, int64_t> counts;
  for (const auto& b : run.batches) {
    for (int64_t i = 0; i < b->num_rows(); ++i) ++counts[std::string(b->column(0).GetView(i))];
  }
  return counts;
}

TEST(GenerateMeterTest, ZipfMetersFollowZipfsLaw) {
  constexpr int64_t kRows = 200'000;
  constexpr int kMeters = 1000;
  constexpr double kS = 1.1;
  const Generated run = Read(ZipfMeterOptions(kRows, 42, kS));
  const auto counts = CountByMeter(run);
  double harmonic = 0;  // the generalised harmonic number H(1000, 1.1)
  for (int k = 1; k <= kMeters; ++k) harmonic += std::pow(k, -kS);
  int64_t total = 0;
  for (const auto& [meter, n] : counts) total += n;
  ASSERT_EQ(total, kRows);
  // Binomial(200000, p) for rank k: within 6 sd of its mean (seeded: the same counts every run).
  for (int k : {1, 2, 3, 5, 10, 100, 1000}) {
    const double p = std::pow(k, -kS) / harmonic;
    const double mean = kRows * p, sd = std::sqrt(kRows * p * (1 - p));
    const auto it = counts.find(fmt::format("m-{:06}", k));
    const int64_t got = it == counts.end() ? 0 : it->second;
    EXPECT_NEAR(static_cast<double>(got), mean, 6 * sd) << "rank " << k << ", p " << p;
  }
  // m-000001 has about 1/H = 17.8 % of the readings.
  EXPECT_NEAR(static_cast<double>(counts.at("m-000001")) / kRows, 1 / harmonic, 0.005);
  // The most frequent meters are ranks 1..5, in that order.
  std::vector<std::pair<int64_t, std::string>> by_count;
  for (const auto& [meter, n] : counts) by_count.emplace_back(-n, meter);
  std::sort(by_count.begin(), by_count.end());
  ASSERT_GE(by_count.size(), 5u);
  for (int k = 0; k < 5; ++k) EXPECT_EQ(by_count[k].second, fmt::format("m-{:06}", k + 1));
  // Every name is one of the 1000 meters; with 200 k draws nearly all of them appear.
  EXPECT_EQ(counts.begin()->first, "m-000001");
  EXPECT_LE(counts.rbegin()->first, "m-001000");
  EXPECT_GT(counts.size(), 990u);
}

TEST(GenerateMeterTest, ZipfMetersFollowTheSeedAndLeaveTimesAndValuesAlone) {
  const auto a = Rows(Read(ZipfMeterOptions(20'000, 7, 1.1)));
  const auto b = Rows(Read(ZipfMeterOptions(20'000, 7, 1.1)));
  const auto c = Rows(Read(ZipfMeterOptions(20'000, 8, 1.1)));
  OptionJson plain_options = ZipfMeterOptions(20'000, 7, 1.1);
  plain_options["meter_zipf"] = 0.0;
  const auto plain = Rows(Read(plain_options));
  ASSERT_EQ(a.size(), 20'000u);
  EXPECT_EQ(a, b);
  ASSERT_EQ(c.size(), a.size());
  ASSERT_EQ(plain.size(), a.size());
  int64_t same_meter_as_other_seed = 0;
  for (size_t r = 0; r < a.size(); ++r) {
    const size_t cut = a[r].find('|');
    // Only the meter differs from the plain rows: the times (rounds of 1000) and the values not.
    ASSERT_EQ(a[r].substr(cut), plain[r].substr(cut)) << "row " << r;
    EXPECT_EQ(plain[r].substr(0, cut), fmt::format("m-{:06}", r % 1000 + 1));
    if (a[r].substr(0, cut) == c[r].substr(0, cut)) ++same_meter_as_other_seed;
  }
  // Another seed draws other meters: they agree about as often as two independent draws
  // (sum of p_k^2, about 5 % for s = 1.1 over 1000 meters), not always.
  EXPECT_LT(same_meter_as_other_seed, 2'000);
}

TEST(GenerateMeterTest, BadMeterZipfIsAConfigError) {
  NodeRegistry registry;
  RegisterGenerateNodes(&registry);
  const NodeTypeInfo* info = registry.Resolve("generate", false);
  for (double bad : {-0.5, std::nan(""), HUGE_VAL}) {
    OptionJson o = ZipfMeterOptions(10, 1, bad);
    EXPECT_THAT(info->make_source(NodeOptions::ForTest("g", o, "generate")),
                testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("meter_zipf")))
        << bad;
  }
}

TEST(GenerateMeterTest, OtherShapesHaveNoWatermark) {
  OptionJson narrow = MeterOptions(1000, 1);
  narrow["shape"] = "narrow";
  Generated run = Read(narrow);
  ASSERT_FALSE(run.watermarks.empty());
  for (int64_t w : run.watermarks) EXPECT_EQ(w, kNoWatermark);
}

TEST(GenerateMeterTest, BadAnomaliesLateOrLatenessIsAConfigError) {
  NodeRegistry registry;
  RegisterGenerateNodes(&registry);
  const NodeTypeInfo* info = registry.Resolve("generate", false);
  OptionJson bad = DisorderedMeterOptions(10, 1, 1.5, 0.0);
  EXPECT_THAT(info->make_source(NodeOptions::ForTest("g", bad, "generate")),
              testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("anomalies")));
  bad = DisorderedMeterOptions(10, 1, 0.0, -0.1);
  EXPECT_THAT(info->make_source(NodeOptions::ForTest("g", bad, "generate")),
              testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("late")));
  bad = DisorderedMeterOptions(10, 1, 0.0, 0.1);
  bad["lateness"] = 0;
  EXPECT_THAT(info->make_source(NodeOptions::ForTest("g", bad, "generate")),
              testing::StatusIs(StatusCode::kConfigError, ::testing::HasSubstr("lateness")));
}

}  // namespace
}  // namespace sluice
