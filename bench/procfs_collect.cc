// procfs_collect: how long one full sample of the host takes (the procfs source's collectors,
// then the batch they make), over many samples after a warm-up.
//
//   procfs_collect [--root /proc] [--samples 1000] [--threads 1] [--interval-ms 0] [--print]
//
// Prints the median, p99 and max of the collection alone and of collection plus the batch,
// the CPU time a sample costs, each collector's median, and the rows of a sample. --print writes
// the last sample's rows as JSON (one array per row) instead.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "sluice/connectors/procfs/sampler.h"
#include "sluice/core/time.h"

namespace {

using Clock = std::chrono::steady_clock;

int64_t Micros(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

/// Return the CPU time this process has used (user + system), in microseconds.
int64_t CpuMicros() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  const auto us = [](const timeval& t) { return int64_t{t.tv_sec} * 1'000'000 + t.tv_usec; };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

double Quantile(std::vector<int64_t> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return static_cast<double>(v[std::min(i, v.size() - 1)]);
}

void Usage() {
  std::fprintf(stderr,
               "usage: procfs_collect [--root DIR] [--samples N] [--threads N] "
               "[--interval-ms MS] [--print]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  sluice::procfs::SamplerOptions options;
  int samples = 1000;
  int warmup = 10;
  int interval_ms = 0;
  bool print = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const auto value = [&] {
      if (i + 1 >= argc) Usage();
      return std::string(argv[++i]);
    };
    if (a == "--root") {
      options.config.root = value();
    } else if (a == "--samples") {
      samples = std::atoi(value().c_str());
    } else if (a == "--threads") {
      options.threads = std::atoi(value().c_str());
    } else if (a == "--interval-ms") {
      interval_ms = std::atoi(value().c_str());
    } else if (a == "--print") {
      print = true;
    } else {
      Usage();
    }
  }
  if (samples < 1) Usage();
  auto made = sluice::procfs::Sampler::Make(options);
  if (!made.ok()) {
    std::fprintf(stderr, "procfs_collect: %s\n", made.status().ToString().c_str());
    return 1;
  }
  auto& sampler = **made;
  const std::string host = sluice::procfs::HostName(options.config.root, nullptr);
  std::vector<int64_t> collect_ns, total_ns;
  std::vector<std::vector<int64_t>> per_collector(sampler.results().size());
  int64_t rows = 0;
  sluice::BatchPtr batch;
  int64_t cpu_start = 0;
  for (int s = 0; s < warmup + samples; ++s) {
    if (s == warmup) cpu_start = CpuMicros();
    if (interval_ms > 0 && s > 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
    }
    const auto start = Clock::now();
    sampler.Collect(Micros(start));
    const auto collected = Clock::now();
    batch = sampler.ToBatch(sluice::NowMicros(), host);
    const auto done = Clock::now();
    if (s < warmup) continue;
    collect_ns.push_back((collected - start).count());
    total_ns.push_back((done - start).count());
    for (size_t c = 0; c < per_collector.size(); ++c) {
      per_collector[c].push_back(sampler.results()[c]->duration_ns);
    }
    rows = batch->num_rows();
  }
  const double cpu_per_sample = static_cast<double>(CpuMicros() - cpu_start) / samples;
  if (print) {
    std::printf("%s\n", batch->ToString().c_str());
    return 0;
  }
  std::printf("procfs_collect: root %s, %d samples after %d, %d thread(s), %lld rows a sample\n",
              options.config.root.c_str(), samples, warmup, std::max(1, options.threads),
              static_cast<long long>(rows));
  std::printf("  collect           median %8.1f us  p99 %8.1f us  max %8.1f us\n",
              Quantile(collect_ns, 0.5) / 1e3, Quantile(collect_ns, 0.99) / 1e3,
              Quantile(collect_ns, 1.0) / 1e3);
  std::printf("  collect + batch   median %8.1f us  p99 %8.1f us  max %8.1f us\n",
              Quantile(total_ns, 0.5) / 1e3, Quantile(total_ns, 0.99) / 1e3,
              Quantile(total_ns, 1.0) / 1e3);
  std::printf("  CPU time          %8.1f us a sample (user + system, every thread)\n",
              cpu_per_sample);
  for (size_t c = 0; c < per_collector.size(); ++c) {
    const auto& r = *sampler.results()[c];
    std::printf("  %-16s  median %8.1f us  p99 %8.1f us  rows %4zu%s\n",
                std::string(r.name).c_str(), Quantile(per_collector[c], 0.5) / 1e3,
                Quantile(per_collector[c], 0.99) / 1e3, r.rows.size(),
                r.outcome == sluice::procfs::Outcome::kFailed   ? "  FAILED"
                : r.outcome == sluice::procfs::Outcome::kAbsent ? "  absent"
                                                                : "");
  }
  return 0;
}
