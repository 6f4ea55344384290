// Micro-benchmarks of the metrics hot path: what one Counter::Add or Histogram::Record costs,
// alone and with two threads hitting the same metric.

#include <cstdint>

#include <benchmark/benchmark.h>
#include <fmt/format.h>

#include "sluice/observe/metrics.h"

namespace sluice::observe {
namespace {

Counter* SharedCounter() {
  static Counter counter;
  return &counter;
}

Histogram* SharedHistogram() {
  static Histogram histogram("s", 1e-9);
  return &histogram;
}

void BM_CounterAdd(benchmark::State& state) {
  Counter* counter = SharedCounter();
  for (auto _ : state) counter->Add(1);
  benchmark::DoNotOptimize(counter->Value());
}
BENCHMARK(BM_CounterAdd)->Threads(1)->Threads(2);

void BM_HistogramRecord(benchmark::State& state) {
  Histogram* histogram = SharedHistogram();
  // Latency-like values spread over several buckets, different per thread.
  uint64_t x = 0x9E3779B97F4A7C15ULL * static_cast<uint64_t>(state.thread_index() + 1);
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    histogram->Record(static_cast<int64_t>(1000 + (x & 0xFFFFF)));  // 1 us .. 1 ms in ns
  }
}
BENCHMARK(BM_HistogramRecord)->Threads(1)->Threads(2);

// The same values without the histogram, to subtract the cost of generating them.
void BM_ValueGeneration(benchmark::State& state) {
  uint64_t x = 0x9E3779B97F4A7C15ULL;
  for (auto _ : state) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    benchmark::DoNotOptimize(static_cast<int64_t>(1000 + (x & 0xFFFFF)));
  }
}
BENCHMARK(BM_ValueGeneration);

void BM_HistogramSnapshot(benchmark::State& state) {
  Histogram histogram("s", 1e-9);
  for (int i = 0; i < 100000; ++i) histogram.Record(1000 + i * 37);
  for (auto _ : state) benchmark::DoNotOptimize(histogram.Snapshot().Quantile(0.99));
}
BENCHMARK(BM_HistogramSnapshot);

void BM_PrometheusText(benchmark::State& state) {
  // A registry the size of a 10-node pipeline: 12 counters/gauges and 3 histograms per node.
  MetricsRegistry registry;
  for (int n = 0; n < 10; ++n) {
    const Labels labels = {{"pipeline", "bench"}, {"node", fmt::format("n{}", n)}};
    for (int c = 0; c < 12; ++c) {
      registry.GetCounter(fmt::format("sluice_bench_c{}_total", c), "Bench.", labels).Add(n * c);
    }
    for (int h = 0; h < 3; ++h) {
      Histogram& hist = registry.GetHistogram(fmt::format("sluice_bench_h{}_seconds", h), "Bench.",
                                              labels, "s", 1e-6);
      for (int i = 1; i < 1000; ++i) hist.Record(i * 97);
    }
  }
  for (auto _ : state) benchmark::DoNotOptimize(registry.PrometheusText());
}
BENCHMARK(BM_PrometheusText);

}  // namespace
}  // namespace sluice::observe

BENCHMARK_MAIN();
