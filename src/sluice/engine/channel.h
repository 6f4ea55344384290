#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>

#include "sluice/engine/message.h"

namespace sluice {

/// A bounded queue into one node, bounded both in batches and in bytes. A full channel blocks
/// its producers: that is the engine's backpressure, which reaches back to the sources.
/// Several producers (fan-in, parallel instances) and several consumers (parallel instances)
/// may use it at once. A message larger than the byte bound is admitted into an empty channel,
/// so an oversized batch slows the pipeline down but cannot wedge it.
class Channel {
 public:
  Channel(size_t max_batches, int64_t max_bytes, int producers);

  /// Return the byte bound of a node's input queue: `declared` (its queue_bytes) when set,
  /// else 64 MiB — less under a memory limit, so that the pipeline's `channels` queues together
  /// hold at most half of it (but at least 1 MiB each). The budget is charged for what sources
  /// read; a transform's output can be far larger (a buffered point is 40 times its input), and
  /// queues full of it are what the limit must also bound.
  static int64_t BoundBytes(int64_t declared, int64_t memory_limit, int channels);

  /// Block until there is room, then enqueue; return false if the channel was cancelled.
  /// Adds the time spent waiting to `*blocked_ns`. A watermark marker never waits and takes no
  /// room; one that follows a marker of the same input at the back of the queue replaces it
  /// (the later watermark says all the earlier one did), so markers cannot pile up.
  bool Push(Message message, int64_t* blocked_ns);
  /// What PushOrClaim did.
  enum class Offer : uint8_t { kQueued, kClaimed, kCancelled };
  /// Queue `*message` if there is room now; if not, number it as the next message (after all
  /// that are queued, as if it had been queued and popped at once: `message->seq`) and leave it
  /// to the caller, which then handles it itself instead of waiting — a source running a full
  /// segment's batch on its own thread. Never waits.
  Offer PushOrClaim(Message* message);
  /// Number `*message` as the next message without queueing it, for the caller to handle at
  /// once — a source running every batch of a segment that has no threads of its own; false
  /// if cancelled.
  bool Claim(Message* message);
  /// Block until a message arrives; return nullopt at the end of the stream (every producer is
  /// done and the queue is empty) or when cancelled. Messages are numbered (Message::seq) in
  /// the order they were queued, which is the order they are popped; a marker that replaces
  /// another keeps its number.
  std::optional<Message> Pop();
  /// Like Pop, but give up after `timeout_ms` with nullopt and `*timed_out` set. After Wake,
  /// the first PopFor that finds the queue empty returns at once as if it had timed out.
  std::optional<Message> PopFor(int timeout_ms, bool* timed_out);
  /// Make the consumer's PopFor return as timed out the next time it finds nothing queued
  /// (now, if it is waiting), so that it does its idle work without polling for it.
  void Wake();
  /// Record that one producer has finished. With `input` >= 0 (the consumer's input it fed),
  /// a watermark marker of INT64_MAX follows its last message: that input has ended, so it
  /// no longer holds back the consumer's watermark.
  void ProducerDone(int input = -1);
  /// Wake every waiter and drop queued messages; later Push and Pop fail at once.
  void Cancel();

  size_t depth() const;
  int64_t bytes() const;

 private:
  // Return true when the back of the queue is a marker of `input` that a new one may replace:
  // the last message numbered (none was claimed after it). Call under mu_.
  bool CanReplaceBack(int input) const {
    return !queue_.empty() && queue_.back().is_watermark() && queue_.back().input == input &&
           queue_.back().seq + 1 == next_seq_;
  }

  // A batch of `size` bytes fits now (an empty queue takes any one). Call under mu_.
  bool HasRoom(int64_t size) const {
    return batches_ == 0 ||
           (batches_ < max_batches_ && (max_bytes_ <= 0 || bytes_ + size <= max_bytes_));
  }
  // Number batch `m` of `size` bytes as the next message and queue it. Call under mu_.
  void Enqueue(Message m, int64_t size) {
    bytes_ += size;
    ++batches_;
    m.seq = next_seq_++;
    queue_.push_back(std::move(m));
  }

  const size_t max_batches_;
  const int64_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable not_full_;
  std::condition_variable not_empty_;
  std::deque<Message> queue_;  // guarded by mu_
  size_t batches_ = 0;         // guarded by mu_: messages in queue_ that are not markers
  int64_t bytes_ = 0;          // guarded by mu_
  int producers_;              // guarded by mu_
  bool cancelled_ = false;     // guarded by mu_
  bool woken_ = false;         // guarded by mu_: Wake was called; the next idle PopFor returns
  uint64_t next_seq_ = 0;      // guarded by mu_
};

}  // namespace sluice
