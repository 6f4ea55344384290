#pragma once

// Reading one table over several ranges at once ("lanes"), each on its own pooled
// connection and thread, so that the server deletes and streams two pages at a time while the
// source thread hands out the pages already read. Only for a table this run holds alone (its
// advisory lock): the ranges are disjoint, so no lane ever waits for another's rows. Private
// to connectors/postgres/.

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "sluice/connectors/postgres/archive_rows.h"
#include "sluice/connectors/postgres/pg_pool.h"
#include "sluice/resilience/adaptive_batch_sizer.h"

namespace sluice::pg_archive {

/// One range of the table read page after page: timestamps [lower, upper) ("" for no bound)
/// in (timestamp, ctid) order, or with `by_blocks` the heap blocks [next_block, end_block).
struct Lane {
  std::string lower;
  std::string upper;
  std::string last_ts;  ///< The keyset bound: the last row read so far in this lane.
  std::string last_ctid;
  bool by_blocks = false;
  uint32_t next_block = 0;  ///< The first block not read yet.
  uint32_t end_block = 0;
  double rows_per_block = 1;  ///< Old rows per block seen so far: sizes the next page.
  RowSizes sizes;             ///< The last page's bytes per row: sizes the next one's buffers.
  std::unique_ptr<AdaptiveBatchSizer> sizer;
  const std::atomic<bool>* stop = nullptr;  ///< Set when the reader stops: end waits early.
};

/// A page read, its rows deleted in the transaction still open on `conn`.
struct LanePage {
  pg::PgLease conn;
  RowsRead rows;
};

/// Threads that read the lanes, one each, at most one page ahead per lane. Next() is called
/// from one thread (the source's); the callback runs on the lanes' threads.
class LaneReader {
 public:
  /// Read one page of `lane` (its bound advanced by the callback); nullopt when it has none.
  using ReadPage = std::function<Result<std::optional<LanePage>>(Lane&)>;

  LaneReader(std::vector<Lane> lanes, ReadPage read);
  ~LaneReader() { Stop(); }
  LaneReader(const LaneReader&) = delete;
  LaneReader& operator=(const LaneReader&) = delete;

  /// Wait up to `wait_ms` for the next page. Return it; else nullopt with `*done` set once
  /// every lane is read to its end (and false after a timeout); pages already read come before
  /// an error, which is returned once they are taken (the lanes stop at the first error).
  Result<std::optional<LanePage>> Next(int wait_ms, bool* done);
  /// Stop the threads after the page each is reading and join them. Pages not taken are
  /// dropped: their connections close, so their transactions roll back. Idempotent.
  void Stop();

 private:
  void Loop(size_t k);

  std::vector<Lane> lanes_;  // lane k is used by thread k only
  ReadPage read_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<LanePage> queue_;         // guarded by mu_
  std::vector<int> queued_;            // guarded by mu_: pages of each lane in queue_
  std::deque<size_t> owner_;           // guarded by mu_: the lane of each page in queue_
  size_t running_ = 0;                 // guarded by mu_
  bool stop_ = false;                  // guarded by mu_
  std::atomic<bool> stopping_{false};  // stop_, readable without mu_ (a lane's waits)
  Status error_;                       // guarded by mu_
};

}  // namespace sluice::pg_archive
