#include "sluice/transforms/window_marks.h"

#include <vector>

namespace sluice::window_internal {

Result<std::unique_ptr<FiredMarks>> FiredMarks::Open(const std::string& path,
                                                     const std::string& node, int instance) {
  std::unique_ptr<FiredMarks> marks(new FiredMarks());
  auto store = transforms_internal::BaselineStore::Open(path, node);
  if (!store.ok()) return store.status();
  marks->store_ = std::move(*store);
  marks->name_ = "fired_through/" + std::to_string(instance);
  auto restored = marks->store_->LoadMark("fired_through/");
  if (!restored.ok()) return restored.status();
  marks->restored_ = *restored;
  if (marks->restored_.has_value()) marks->saved_ = marks->durable_ = *marks->restored_;
  return marks;
}

AckSet FiredMarks::Begin(int64_t watermark) {
  const uint64_t seq = base_seq_ + watermarks_.size();
  watermarks_.push_back(watermark);
  done_.push_back(0);
  return AckSet(std::make_shared<AckHandle>(queue_, seq));
}

Status FiredMarks::Collect(int64_t now_us, int64_t every_us, bool force) {
  std::vector<AckQueue::Event> events;
  queue_->Drain(&events, 0);
  for (const auto& e : events) {
    if (e.seq < base_seq_ || e.seq - base_seq_ >= done_.size()) continue;
    done_[e.seq - base_seq_] = e.delivered ? 1 : 2;
  }
  while (!done_.empty() && done_.front() != 0) {
    if (done_.front() == 2) failed_ = true;
    if (!failed_) durable_ = std::max(durable_, watermarks_.front());
    done_.pop_front();
    watermarks_.pop_front();
    ++base_seq_;
  }
  if (durable_ <= saved_) return Status::OK();
  if (!force && last_save_us_ != INT64_MIN && now_us - last_save_us_ < every_us) {
    return Status::OK();
  }
  SLUICE_RETURN_NOT_OK(store_->SaveMark(name_, durable_));
  saved_ = durable_;
  last_save_us_ = now_us;
  return Status::OK();
}

}  // namespace sluice::window_internal
