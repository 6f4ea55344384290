#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

namespace sluice {

/// Where the acknowledgements of one source's batches are delivered. Shared by the handles it
/// issued, so a node that still holds acks after its run ended cannot outlive it. Finalized batches
/// are queued here by whichever thread drops the last reference; the source's own thread drains the
/// queue and calls Source::Commit or Source::Abandon, so a source never sees concurrent calls.
class AckQueue {
 public:
  struct Event {
    uint64_t seq;
    bool delivered;
  };

  AckQueue() = default;

  /// Called when the last reference to a batch is gone.
  void Finalize(uint64_t seq, bool delivered);

  /// Move every queued event into `out`, first waiting up to `max_wait_ms` for one to arrive
  /// (0: do not wait). Wake() ends the wait early.
  void Drain(std::vector<Event>* out, int max_wait_ms);
  /// Mark the run cancelled: batches finalized from now on count as not delivered. Wakes a
  /// thread waiting in Drain.
  void Cancel();
  bool run_cancelled() const { return cancelled_.load(std::memory_order_acquire); }

 private:
  std::atomic<bool> cancelled_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Event> events_;  // guarded by mu_
  bool woken_ = false;        // guarded by mu_
};

/// The acknowledgement state of one source batch. Shared by every message derived from that
/// batch (fan-out copies, transform outputs). When the last reference drops, the batch is
/// delivered unless someone called Fail() or the run was cancelled first: dropping a reference
/// means "this path is done with it" (a filter that removes every row is done, too).
class AckHandle {
 public:
  AckHandle(std::shared_ptr<AckQueue> queue, uint64_t seq) : queue_(std::move(queue)), seq_(seq) {}
  ~AckHandle();
  AckHandle(const AckHandle&) = delete;
  AckHandle& operator=(const AckHandle&) = delete;

  void Fail() { failed_.store(true, std::memory_order_release); }
  uint64_t seq() const { return seq_; }

 private:
  std::shared_ptr<AckQueue> queue_;
  uint64_t seq_;
  std::atomic<bool> failed_{false};
};

/// The acknowledgement handles a message carries: usually one, several after a merge.
/// Copying shares the handles; destroying releases this holder's reference.
class AckSet {
 public:
  AckSet() = default;
  explicit AckSet(std::shared_ptr<AckHandle> handle) { handles_.push_back(std::move(handle)); }

  /// Mark every batch in the set as not delivered: its source will Abandon it.
  void Fail() const {
    for (const auto& h : handles_) h->Fail();
  }
  /// Release this holder's references now (same as destroying the set).
  void Release() { handles_.clear(); }
  /// Add the handles of `other` (for transforms that combine batches).
  void Merge(const AckSet& other) {
    handles_.insert(handles_.end(), other.handles_.begin(), other.handles_.end());
  }
  bool empty() const { return handles_.empty(); }
  size_t size() const { return handles_.size(); }

 private:
  std::vector<std::shared_ptr<AckHandle>> handles_;
};

}  // namespace sluice
