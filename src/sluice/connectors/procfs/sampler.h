#pragma once

// One sample of the host: every configured collector run once — on a few threads when asked —
// and their rows put together as one batch. The procfs source calls it on its interval; tests
// and bench/procfs_collect call it directly.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/connectors/procfs/collectors.h"
#include "sluice/core/batch.h"
#include "sluice/core/result.h"

namespace sluice::procfs {

/// How a Sampler is set up.
struct SamplerOptions {
  /// The collectors to run, by name (CollectorNames()); empty: all of them.
  std::vector<std::string> collectors;
  /// Threads collecting a sample, the caller's included: 1 runs every collector on the
  /// caller's thread; more start threads-1 helpers that live as long as the Sampler.
  int threads = 1;
  /// Everything the collectors read; env null means the real host. clock_ticks and page_size
  /// 0 mean the host's own (sysconf).
  CollectorConfig config;
};

/// What one collector did in the last sample.
struct CollectorResult {
  std::string_view name;
  Outcome outcome = Outcome::kOk;
  Failure failure;  ///< Why, when outcome is kFailed.
  SampleRows rows;  ///< Its rows (dropped from the batch unless kOk).
  int64_t duration_ns = 0;
  int64_t failures = 0;  ///< Samples it failed in so far.
};

/// Runs the collectors. Collect and ToBatch are called from one thread at a time; the helper
/// threads only run collectors while Collect waits for them. Once every buffer has grown to the
/// host's size, Collect allocates nothing (bench/procfs_collect and procfs_alloc_test show it).
class Sampler {
 public:
  /// Make the collectors; kInvalidArgument names an unknown collector.
  static Result<std::unique_ptr<Sampler>> Make(SamplerOptions options);
  ~Sampler();
  Sampler(const Sampler&) = delete;
  Sampler& operator=(const Sampler&) = delete;

  /// Take one sample at monotonic time `now_us` (rates are per second of this clock). A
  /// collector that fails is recorded in its result; the sample goes on without its rows.
  void Collect(int64_t now_us);

  /// Return the collectors' results of the last Collect, in CollectorNames() order.
  const std::vector<std::unique_ptr<CollectorResult>>& results() const { return results_; }
  /// Return the rows the last sample makes as a batch (see Schema()), stamped `ts_us` and
  /// `host`: each collector's rows, then per collector present on the host a
  /// collector_success row (1, or 0 with the error) and a collector_duration_seconds row.
  BatchPtr ToBatch(int64_t ts_us, std::string_view host) const;

  /// Return the schema of every batch: ts timestamp, host string, metric string, labels json,
  /// value float64, error string (null but on failed collectors' collector_success rows).
  static const SchemaPtr& Schema();

 private:
  explicit Sampler(int threads) : threads_(threads) {}
  void RunCollectors();
  void RunOne(size_t i);
  void HelperLoop();

  int threads_;
  int64_t now_us_ = 0;
  std::vector<std::unique_ptr<Collector>> collectors_;
  std::vector<std::unique_ptr<CollectorResult>> results_;  // one per collector, same order
  std::vector<uint32_t> dispatch_;  // collectors by last duration, slowest first

  std::vector<std::thread> helpers_;
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  uint64_t generation_ = 0;      // guarded by mu_: bumped to start a sample
  bool stop_ = false;            // guarded by mu_
  size_t done_ = 0;              // guarded by mu_: collectors finished this sample
  std::atomic<size_t> next_{0};  // next index into dispatch_ to take
};

/// Return the host's name as the agent labels its rows: `<root>/sys/kernel/hostname` (so a
/// recorded tree names its own host), else gethostname().
std::string HostName(const std::string& root, HostEnv* env);

}  // namespace sluice::procfs
