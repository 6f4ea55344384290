#include "sluice/connectors/postgres/archive_lanes.h"

#include <chrono>

namespace sluice::pg_archive {

LaneReader::LaneReader(std::vector<Lane> lanes, ReadPage read)
    : lanes_(std::move(lanes)), read_(std::move(read)), queued_(lanes_.size(), 0) {
  running_ = lanes_.size();
  for (auto& lane : lanes_) lane.stop = &stopping_;
  for (size_t k = 0; k < lanes_.size(); ++k) threads_.emplace_back([this, k] { Loop(k); });
}

void LaneReader::Loop(size_t k) {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || queued_[k] == 0; });
      if (stop_) break;
    }
    auto page = read_(lanes_[k]);
    std::lock_guard<std::mutex> lock(mu_);
    if (!page.ok()) {
      if (error_.ok() && !stop_) error_ = page.status();  // not the Cancelled of a stop
      stop_ = true;
      stopping_ = true;
      break;
    }
    if (!page->has_value()) break;  // the lane is read to its end
    queue_.push_back(std::move(**page));
    owner_.push_back(k);
    ++queued_[k];
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  --running_;
  cv_.notify_all();
}

Result<std::optional<LanePage>> LaneReader::Next(int wait_ms, bool* done) {
  *done = false;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(wait_ms),
               [&] { return !queue_.empty() || running_ == 0; });
  if (!queue_.empty()) {
    LanePage page = std::move(queue_.front());
    queue_.pop_front();
    --queued_[owner_.front()];
    owner_.pop_front();
    cv_.notify_all();
    return std::optional<LanePage>(std::move(page));
  }
  if (!error_.ok()) return error_;
  *done = running_ == 0;
  return std::optional<LanePage>();
}

void LaneReader::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
  std::lock_guard<std::mutex> lock(mu_);
  queue_.clear();  // their leases close the connections: the transactions roll back
  owner_.clear();
}

}  // namespace sluice::pg_archive
