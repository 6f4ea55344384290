#include "sluice/engine/channel.h"

#include <algorithm>
#include <chrono>

namespace sluice {

int64_t Channel::BoundBytes(int64_t declared, int64_t memory_limit, int channels) {
  constexpr int64_t kDefault = int64_t{64} << 20;
  constexpr int64_t kFloor = int64_t{1} << 20;
  if (declared > 0) return declared;
  if (memory_limit <= 0 || channels <= 0) return kDefault;
  return std::min(kDefault, std::max(kFloor, memory_limit / (2 * int64_t{channels})));
}

Channel::Channel(size_t max_batches, int64_t max_bytes, int producers)
    : max_batches_(max_batches < 1 ? 1 : max_batches),
      max_bytes_(max_bytes),
      producers_(producers) {}

bool Channel::Push(Message message, int64_t* blocked_ns) {
  if (message.is_watermark()) {
    {
      std::lock_guard lock(mu_);
      if (cancelled_) return false;
      if (CanReplaceBack(message.input)) {
        queue_.back().watermark = std::max(queue_.back().watermark, message.watermark);
        return true;
      }
      message.seq = next_seq_++;
      queue_.push_back(std::move(message));
    }
    not_empty_.notify_one();
    return true;
  }
  const int64_t size = message.batch->ByteSize();
  std::unique_lock lock(mu_);
  auto has_room = [&] { return cancelled_ || HasRoom(size); };
  if (!has_room()) {
    const auto start = std::chrono::steady_clock::now();
    not_full_.wait(lock, has_room);
    if (blocked_ns != nullptr) {
      *blocked_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::steady_clock::now() - start)
                         .count();
    }
  }
  if (cancelled_) return false;
  Enqueue(std::move(message), size);
  lock.unlock();
  not_empty_.notify_one();
  return true;
}

Channel::Offer Channel::PushOrClaim(Message* message) {
  const int64_t size = message->batch->ByteSize();
  std::unique_lock lock(mu_);
  if (cancelled_) return Offer::kCancelled;
  if (!HasRoom(size)) {
    message->seq = next_seq_++;
    return Offer::kClaimed;
  }
  Enqueue(std::move(*message), size);
  lock.unlock();
  not_empty_.notify_one();
  return Offer::kQueued;
}

bool Channel::Claim(Message* message) {
  std::lock_guard lock(mu_);
  if (cancelled_) return false;
  message->seq = next_seq_++;
  return true;
}

std::optional<Message> Channel::Pop() {
  std::unique_lock lock(mu_);
  not_empty_.wait(lock, [&] { return cancelled_ || !queue_.empty() || producers_ <= 0; });
  if (cancelled_ || queue_.empty()) return std::nullopt;
  Message m = std::move(queue_.front());
  queue_.pop_front();
  if (!m.is_watermark()) {
    bytes_ -= m.batch->ByteSize();
    --batches_;
  }
  lock.unlock();
  not_full_.notify_all();
  return m;
}

std::optional<Message> Channel::PopFor(int timeout_ms, bool* timed_out) {
  std::unique_lock lock(mu_);
  *timed_out = !not_empty_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
    return cancelled_ || !queue_.empty() || producers_ <= 0 || woken_;
  });
  if (!*timed_out && !cancelled_ && queue_.empty() && producers_ > 0) {
    woken_ = false;  // Wake: idle, as after a timeout
    *timed_out = true;
  }
  if (*timed_out || cancelled_ || queue_.empty()) return std::nullopt;
  Message m = std::move(queue_.front());
  queue_.pop_front();
  if (!m.is_watermark()) {
    bytes_ -= m.batch->ByteSize();
    --batches_;
  }
  lock.unlock();
  not_full_.notify_all();
  return m;
}

void Channel::ProducerDone(int input) {
  {
    std::lock_guard lock(mu_);
    if (input >= 0 && !cancelled_) {
      if (CanReplaceBack(input)) {
        queue_.back().watermark = INT64_MAX;
      } else {
        Message end = Message::Watermark(INT64_MAX);
        end.input = input;
        end.seq = next_seq_++;
        queue_.push_back(std::move(end));
      }
    }
    --producers_;
  }
  not_empty_.notify_all();
}

void Channel::Wake() {
  {
    std::lock_guard lock(mu_);
    woken_ = true;
  }
  not_empty_.notify_all();
}

void Channel::Cancel() {
  std::deque<Message> dropped;
  {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    dropped.swap(queue_);
    bytes_ = 0;
    batches_ = 0;
  }
  for (auto& m : dropped) m.acks.Fail();
  not_full_.notify_all();
  not_empty_.notify_all();
}

size_t Channel::depth() const {
  std::lock_guard lock(mu_);
  return batches_;
}

int64_t Channel::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace sluice
