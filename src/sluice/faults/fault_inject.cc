#include "sluice/faults/fault_inject.h"

#include <chrono>
#include <cstdlib>
#include <thread>

namespace sluice {

namespace {

class FaultInjectTransform final : public Transform {
 public:
  static Result<std::unique_ptr<Transform>> Make(const NodeOptions& o) {
    auto t = std::make_unique<FaultInjectTransform>();
    t->fail_at_ = o.GetInt("fail_at_batch");
    t->action_ = o.GetString("action");
    t->delay_us_ = o.GetDurationMicros("delay");
    return std::unique_ptr<Transform>(std::move(t));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    if (delay_us_ > 0) std::this_thread::sleep_for(std::chrono::microseconds(delay_us_));
    if (batches_++ == fail_at_) {
      if (action_ == "abort") std::abort();  // as abrupt as kill -9 for what is on disk
      if (action_ == "exit") std::_Exit(137);
      return Status::IOError("injected fault at batch {}", fail_at_);
    }
    return out->Emit(batch);
  }

 private:
  NodeContext* ctx_ = nullptr;
  int64_t fail_at_ = -1;
  int64_t batches_ = 0;
  std::string action_;
  int64_t delay_us_ = 0;
};

}  // namespace

void RegisterFaultNodes(NodeRegistry* registry) {
  registry->AddTransform(
      "fault_inject",
      "Pass batches through, failing (or killing the process) on one: for no-data-loss tests.",
      {
          {"fail_at_batch",
           OptionType::kInt,
           "-1",
           "0-based batch number that triggers the fault; -1 never.",
           false,
           {}},
          {"action",
           OptionType::kEnum,
           "error",
           "error: the batch fails; abort/exit: the process dies at once (like kill -9).",
           false,
           {"error", "abort", "exit"}},
          {"delay", OptionType::kDuration, "0s", "Sleep this long before each batch.", false, {}},
      },
      &FaultInjectTransform::Make, /*stateless=*/false);
}

}  // namespace sluice
