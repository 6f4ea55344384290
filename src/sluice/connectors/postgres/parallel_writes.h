#pragma once

// Up to N batches written at once, each on its own thread (and so its own connection and
// transaction): the postgres sink's max_parallel_writes.

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/engine/ack.h"

namespace sluice::pg_sink {

/// Runs `write` for each submitted batch on one of `threads` threads. A batch's acks are
/// released once its write returns OK and failed otherwise. The first failure is kept: the
/// next Submit and Drain return it, and batches not yet started are failed, not written.
/// Batches commit in any order.
class ParallelWrites {
 public:
  /// Write one batch on thread `worker` (0 to threads - 1), for per-thread scratch.
  using WriteFn = std::function<Status(const Batch& batch, int worker)>;

  ParallelWrites(int threads, WriteFn write);
  ~ParallelWrites();
  ParallelWrites(const ParallelWrites&) = delete;
  ParallelWrites& operator=(const ParallelWrites&) = delete;

  /// Queue `batch`, waiting while every thread is busy and one batch already waits (so at
  /// most threads + 1 batches are held). Return the first failure so far.
  Status Submit(BatchPtr batch, AckSet acks);
  /// Wait for every submitted batch; return the first failure.
  Status Drain();

 private:
  struct Job {
    BatchPtr batch;
    AckSet acks;
  };
  void Run(int worker);

  const WriteFn write_;
  const size_t threads_count_;
  std::mutex mu_;
  std::condition_variable changed_;
  std::deque<Job> queue_;  // guarded by mu_
  size_t busy_ = 0;        // guarded by mu_: batches being written
  Status error_;           // guarded by mu_: the first failure
  bool stop_ = false;      // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace sluice::pg_sink
