#include "sluice/engine/dead_letter.h"

namespace sluice {

const SchemaPtr& DeadLetterSchema() {
  static const SchemaPtr schema = MakeSchema({{"node", TypeId::kString, false},
                                              {"position", TypeId::kString, false},
                                              {"error", TypeId::kString, false},
                                              {"record", TypeId::kString, false}});
  return schema;
}

void DeadLetters::Add(std::string_view node, std::string_view position, std::string_view error,
                      std::string_view record) {
  node_.AppendString(node);
  position_.AppendString(position);
  error_.AppendString(error);
  record_.AppendString(record);
  ++rows_;
}

BatchPtr DeadLetters::Take() {
  if (rows_ == 0) return nullptr;
  const int64_t rows = rows_;
  rows_ = 0;
  return Batch::MakeUnchecked(
      DeadLetterSchema(), {node_.Finish(), position_.Finish(), error_.Finish(), record_.Finish()},
      rows);
}

}  // namespace sluice
