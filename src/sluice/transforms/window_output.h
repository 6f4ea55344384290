#pragma once

// Private to the window transform: the sink that turns window rows into output batches.

#include <cstdint>
#include <string_view>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/transforms/window_internal.h"

namespace sluice::window_internal {

/// Builds output batches from window rows: keys, window_start, window_end, aggregates,
/// late_rows. A whole slice goes in column by column (AddSlice); sizes each batch's builders
/// for the last one's rows. Not thread-safe: one per window node.
class OutputRows final : public RowSink {
 public:
  OutputRows(SchemaPtr schema, const AggLayout* layout, int num_keys);
  /// Send batches to `out` from now on.
  void set_emitter(Emitter* out) { out_ = out; }
  /// Acks sent with every batch from now on besides the windows' own (the durable mark's).
  void set_extra_acks(AckSet acks) { extra_ = std::move(acks); }

  Status Add(const WindowRow& row) override;
  Status AddSlice(const Slice& slice, const KeyIndex& keys, int64_t start, int64_t end) override;
  Status Flush(const AckSet& acks) override;

 private:
  void Reset();

  SchemaPtr schema_;
  const AggLayout* layout_;
  int num_keys_;
  Emitter* out_ = nullptr;
  std::vector<ColumnBuilder> keys_;
  std::vector<std::string_view> key_views_;  // AddSlice's scratch
  ColumnBuilder start_{TypeId::kTimestamp};
  ColumnBuilder end_{TypeId::kTimestamp};
  std::vector<ColumnBuilder> aggs_;
  ColumnBuilder late_{TypeId::kInt64};
  int64_t rows_ = 0;
  int64_t last_rows_ = 0;
  std::vector<int64_t> last_key_bytes_;
  AckSet extra_;
};

}  // namespace sluice::window_internal
