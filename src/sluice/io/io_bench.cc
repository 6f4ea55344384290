// Micro-benchmarks of the hot paths: JSONL encoding and CSV parsing, in bytes per second.

#include <random>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "sluice/core/time.h"
#include "sluice/io/compression.h"
#include "sluice/io/csv.h"
#include "sluice/io/jsonl.h"

namespace sluice::io {
namespace {

SchemaPtr BenchSchema() {
  return MakeSchema({{"id", TypeId::kInt64},
                     {"name", TypeId::kString},
                     {"score", TypeId::kFloat64},
                     {"active", TypeId::kBool},
                     {"created_at", TypeId::kTimestamp},
                     {"comment", TypeId::kString}});
}

// Returns a batch of `rows` rows shaped like an audit table: ids, short names, floats, flags,
// timestamps, and a longer text column of which one row in ten needs escaping or quoting.
BatchPtr MakeBatch(int64_t rows) {
  std::mt19937_64 rng(7);
  ColumnBuilder id(TypeId::kInt64), name(TypeId::kString), score(TypeId::kFloat64),
      active(TypeId::kBool), created(TypeId::kTimestamp), comment(TypeId::kString);
  const int64_t base = 1'700'000'000LL * kMicrosPerSecond;
  for (int64_t i = 0; i < rows; ++i) {
    id.AppendInt64(1'000'000 + i);
    name.AppendString("customer-" + std::to_string(rng() % 100000));
    score.AppendFloat64(static_cast<double>(rng() % 1000000) / 100.0);
    active.AppendBool(rng() % 2 == 0);
    created.AppendTimestamp(base + static_cast<int64_t>(rng() % (86400LL * kMicrosPerSecond)));
    if (i % 10 == 0) {
      comment.AppendString("said \"hello, world\"\nand left a note with a tab\tinside");
    } else {
      comment.AppendString("order shipped to warehouse " + std::to_string(rng() % 50) +
                           ", awaiting confirmation from the carrier");
    }
  }
  std::vector<Column> cols;
  for (auto* b : {&id, &name, &score, &active, &created, &comment}) cols.push_back(b->Finish());
  return Batch::MakeUnchecked(BenchSchema(), std::move(cols), rows);
}

void BM_JsonlEncode(benchmark::State& state) {
  const BatchPtr batch = MakeBatch(8192);
  JsonlEncoder encoder(batch->schema());
  std::string out;
  int64_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    encoder.Encode(*batch, &out);
    bytes += static_cast<int64_t>(out.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations() * batch->num_rows());
}
BENCHMARK(BM_JsonlEncode);

void BM_CsvEncode(benchmark::State& state) {
  const BatchPtr batch = MakeBatch(8192);
  CsvEncoder encoder(batch->schema(), {});
  std::string out;
  int64_t bytes = 0;
  for (auto _ : state) {
    out.clear();
    encoder.Encode(*batch, &out);
    bytes += static_cast<int64_t>(out.size());
    benchmark::DoNotOptimize(out.data());
  }
  state.SetBytesProcessed(bytes);
  state.SetItemsProcessed(state.iterations() * batch->num_rows());
}
BENCHMARK(BM_CsvEncode);

std::string CsvText(int64_t rows) {
  const BatchPtr batch = MakeBatch(rows);
  CsvEncoder encoder(batch->schema(), {});
  std::string text;
  encoder.Begin(&text);
  encoder.Encode(*batch, &text);
  return text;
}

// Parses ~8 MiB of CSV fed in 1 MiB chunks; state.range(0) != 0 declares the schema.
void BM_CsvParse(benchmark::State& state) {
  const std::string text = CsvText(65536);
  const bool declared = state.range(0) != 0;
  int64_t rows = 0;
  for (auto _ : state) {
    DecodeOptions options;
    if (declared) options.schema = BenchSchema();
    auto decoder = CsvDecoder::Make(options);
    std::vector<BatchPtr> batches;
    for (size_t pos = 0; pos < text.size(); pos += 1 << 20) {
      if (!(*decoder)->Feed(std::string_view(text).substr(pos, 1 << 20), &batches).ok()) {
        state.SkipWithError("decode failed");
      }
    }
    if (!(*decoder)->Finish(&batches).ok()) state.SkipWithError("decode failed");
    for (const auto& b : batches) rows += b->num_rows();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
  state.SetItemsProcessed(rows);
}
BENCHMARK(BM_CsvParse)->Arg(1)->Arg(0)->Unit(benchmark::kMillisecond);

void BM_JsonlParse(benchmark::State& state) {
  const BatchPtr batch = MakeBatch(65536);
  JsonlEncoder encoder(batch->schema());
  std::string text;
  encoder.Encode(*batch, &text);
  int64_t rows = 0;
  for (auto _ : state) {
    DecodeOptions options;
    options.schema = BenchSchema();
    auto decoder = JsonlDecoder::Make(options);
    std::vector<BatchPtr> batches;
    for (size_t pos = 0; pos < text.size(); pos += 1 << 20) {
      if (!(*decoder)->Feed(std::string_view(text).substr(pos, 1 << 20), &batches).ok()) {
        state.SkipWithError("decode failed");
      }
    }
    if (!(*decoder)->Finish(&batches).ok()) state.SkipWithError("decode failed");
    for (const auto& b : batches) rows += b->num_rows();
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
  state.SetItemsProcessed(rows);
}
BENCHMARK(BM_JsonlParse)->Unit(benchmark::kMillisecond);

void BM_GzipCompress(benchmark::State& state) {
  const std::string text = CsvText(16384);
  for (auto _ : state) {
    auto packed = Compress(Codec::kGzip, text, static_cast<int>(state.range(0)));
    benchmark::DoNotOptimize(packed);
  }
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(text.size()));
}
BENCHMARK(BM_GzipCompress)->Arg(1)->Arg(6)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice::io

BENCHMARK_MAIN();
