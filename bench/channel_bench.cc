// Channel hand-off: batches per second moved between two threads through an engine Channel,
// and, as the peer in the same run, through a pipe(2) carrying the same pointers.
#include <unistd.h>

#include <thread>

#include <benchmark/benchmark.h>

#include "sluice/engine/channel.h"

namespace sluice {
namespace {

BatchPtr SmallBatch() {
  ColumnBuilder b(TypeId::kInt64);
  for (int i = 0; i < 16; ++i) b.AppendInt64(i);
  return Batch::MakeUnchecked(MakeSchema({{"x", TypeId::kInt64}}), {b.Finish()}, 16);
}

void BM_ChannelHandoff(benchmark::State& state) {
  const int64_t n = state.range(0);
  BatchPtr batch = SmallBatch();
  for (auto _ : state) {
    Channel ch(64, 0, 1);
    std::thread producer([&] {
      int64_t blocked = 0;
      for (int64_t i = 0; i < n; ++i) {
        Message m;
        m.batch = batch;
        ch.Push(std::move(m), &blocked);
      }
      ch.ProducerDone();
    });
    int64_t got = 0;
    while (ch.Pop()) ++got;
    producer.join();
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_ChannelHandoff)->Arg(200000)->UseRealTime()->Unit(benchmark::kMillisecond);

void BM_PipeHandoff(benchmark::State& state) {
  const int64_t n = state.range(0);
  BatchPtr batch = SmallBatch();
  for (auto _ : state) {
    int fds[2];
    if (pipe(fds) != 0) state.SkipWithError("pipe failed");
    std::thread producer([&] {
      for (int64_t i = 0; i < n; ++i) {
        auto* copy = new BatchPtr(batch);
        if (write(fds[1], &copy, sizeof(copy)) != sizeof(copy)) std::abort();
      }
      close(fds[1]);
    });
    int64_t got = 0;
    BatchPtr* p;
    while (read(fds[0], &p, sizeof(p)) == sizeof(p)) {
      delete p;
      ++got;
    }
    producer.join();
    close(fds[0]);
    benchmark::DoNotOptimize(got);
  }
  state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_PipeHandoff)->Arg(200000)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace sluice

BENCHMARK_MAIN();
