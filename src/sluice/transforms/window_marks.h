#pragma once

// How far a window node's output is durable, kept across runs (the window's `state` file):
// every window ending at or before the mark has fired and its rows were acknowledged by every
// sink. A run that starts from the same file treats later rows of those windows as late (the
// `late:` policy) instead of making the windows again from those rows alone.

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "sluice/core/result.h"
#include "sluice/engine/ack.h"
#include "sluice/transforms/baseline_store.h"

namespace sluice::window_internal {

class FiredMarks {
 public:
  /// Open (or create) the state file `path` for instance `instance` of node `node`.
  static Result<std::unique_ptr<FiredMarks>> Open(const std::string& path, const std::string& node,
                                                  int instance);
  /// The mark an earlier run saved (the smallest over the node's instances), if any.
  std::optional<int64_t> restored() const { return restored_; }
  /// Return an acknowledgement to send with the rows of a firing at `watermark`: once every
  /// sink has them, the mark may move to `watermark`.
  AckSet Begin(int64_t watermark);
  /// Take in the firings whose rows are now durable, and save the mark if it moved (at most
  /// once per `every_us` of `now_us`, unless `force`). A firing whose rows failed stops the mark
  /// for the rest of the run.
  Status Collect(int64_t now_us, int64_t every_us, bool force);
  int64_t saved() const { return saved_; }

 private:
  FiredMarks() = default;

  std::unique_ptr<transforms_internal::BaselineStore> store_;
  std::string name_;
  std::optional<int64_t> restored_;
  std::shared_ptr<AckQueue> queue_ = std::make_shared<AckQueue>();
  uint64_t base_seq_ = 0;           // the seq of pending_.front()
  std::deque<int64_t> watermarks_;  // per firing not yet durable, oldest first
  std::deque<uint8_t> done_;        // 0: waiting, 1: durable, 2: failed
  int64_t durable_ = INT64_MIN;     // every firing up to here is durable
  int64_t saved_ = INT64_MIN;
  int64_t last_save_us_ = INT64_MIN;
  bool failed_ = false;
};

}  // namespace sluice::window_internal
