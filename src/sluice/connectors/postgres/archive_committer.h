#pragma once

// The archiver's committer threads: each acked batch's DELETE and COMMIT run there, so they
// overlap the next batch's SELECT on the source thread. Private to connectors/postgres/.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/connectors/postgres/pg_pool.h"

namespace sluice::pg_archive {

/// One batch handed out and not yet settled: its transaction is open on `conn` (empty under
/// --dry-run when the rows came from a replica: nothing to roll back).
struct InFlight {
  size_t database = 0;   ///< Index of its database.
  size_t job = 0;        ///< Index of its table.
  size_t committer = 0;  ///< The committer thread that settles it.
  pg::PgLease conn;
  std::string ctids;      ///< Its rows' ctids, a tid[] literal: exactly what the DELETE removes.
  std::string batch_id;   ///< Its state-table record and object name.
  bool recorded = false;  ///< It has a state-table record to forget in its transaction.
  bool deleted = false;   ///< Its rows were deleted as they were read (DeleteQuery).
  int64_t rows = 0;
  int64_t bytes = 0;
  int64_t query_ns = 0;
};

/// Threads that settle acked batches, one per slot, each in the order its batches were
/// submitted. After the first failure (of any thread) the batches still queued roll back
/// (their rows stay for a rerun) and error() returns that failure. Thread-safe.
class Committer {
 public:
  /// Start `threads` threads that call `commit` for each batch submitted to them.
  Committer(size_t threads, std::function<Status(InFlight&)> commit);
  ~Committer() { Stop(); }
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;

  /// Queue `f` on thread f.committer.
  void Submit(InFlight f);
  /// Return the first failure so far, or OK.
  Status error() const;
  /// Settle everything queued, then join the threads. Idempotent.
  void Stop();

 private:
  struct Thread {
    std::thread thread;
    std::condition_variable cv;
    std::deque<InFlight> queue;  // guarded by mu_
  };
  void Loop(size_t k);

  std::function<Status(InFlight&)> commit_;
  std::vector<std::unique_ptr<Thread>> threads_;
  mutable std::mutex mu_;
  bool stopping_ = false;  // guarded by mu_
  Status error_;           // guarded by mu_: the first failure
};

}  // namespace sluice::pg_archive
