#pragma once

#include <string>
#include <string_view>

#include "sluice/core/batch.h"
#include "sluice/core/column.h"

namespace sluice {

/// The name of the output that carries the records a node rejects under `on_error:
/// dead_letter`; another node takes it as input as `<node id>.dead_letter`.
inline constexpr std::string_view kDeadLetterPort = "dead_letter";

/// Records a node rejected during one call (Next, Process, ...), collected until the executor
/// sends them on the node's dead_letter output with that call's acknowledgements: the source
/// data they came from is settled only once the dead-letter sink made them durable.
/// Every dead-letter batch has the same schema (DeadLetterSchema). One per node instance;
/// called from that instance's thread only.
class DeadLetters {
 public:
  /// node: the rejecting node's id; position: where the record was (a stream entry id,
  /// "file:line", a batch row); error: why; record: the record as the node saw it (JSON
  /// object text where the node has fields, the raw text otherwise).
  void Add(std::string_view node, std::string_view position, std::string_view error,
           std::string_view record);
  int64_t size() const { return rows_; }
  /// Return the records collected so far as one batch (null when none) and start afresh.
  BatchPtr Take();

 private:
  ColumnBuilder node_{TypeId::kString};
  ColumnBuilder position_{TypeId::kString};
  ColumnBuilder error_{TypeId::kString};
  ColumnBuilder record_{TypeId::kString};
  int64_t rows_ = 0;
};

/// node, position, error, record — all strings, none null.
const SchemaPtr& DeadLetterSchema();

}  // namespace sluice
