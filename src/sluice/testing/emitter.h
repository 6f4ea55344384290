#pragma once

// An Emitter for transform tests: collects what a transform emits, by output, with the acks
// each batch carries (link sluice_engine).

#include <utility>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/engine/pipeline.h"

namespace sluice::testing {

class CollectingEmitter final : public Emitter {
 public:
  Status Emit(BatchPtr batch) override { return Emit(std::move(batch), input_acks); }
  Status Emit(BatchPtr batch, AckSet acks) override {
    if (batch != nullptr && batch->num_rows() > 0) {
      rows.push_back(std::move(batch));
      row_acks.push_back(std::move(acks));
    }
    return Status::OK();
  }
  AckSet HoldAcks() override { return input_acks; }
  Status EmitOn(int output, BatchPtr batch) override {
    if (output != kLateOutput) return Status::Invalid("unexpected output {}", output);
    late.push_back(std::move(batch));
    return Status::OK();
  }

  AckSet input_acks;  ///< What the input being processed carries (HoldAcks, Emit).
  std::vector<BatchPtr> rows;
  std::vector<AckSet> row_acks;
  std::vector<BatchPtr> late;
};

}  // namespace sluice::testing
