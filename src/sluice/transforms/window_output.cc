// The window transform's output: window rows into batches. See window_output.h.

#include "sluice/transforms/window_output.h"

#include "sluice/transforms/group_key.h"

namespace sluice::window_internal {

using transforms_internal::DecodeKey;
using transforms_internal::DecodeKeys;

OutputRows::OutputRows(SchemaPtr schema, const AggLayout* layout, int num_keys)
    : schema_(std::move(schema)), layout_(layout), num_keys_(num_keys) {
  Reset();
}

Status OutputRows::Add(const WindowRow& row) {
  DecodeKey(row.key, &keys_);
  start_.AppendTimestamp(row.start);
  end_.AppendTimestamp(row.end);
  layout_->Append(*row.store, row.group, &aggs_);
  late_.AppendInt64(row.late);
  ++rows_;
  return Status::OK();
}

Status OutputRows::AddSlice(const Slice& slice, const KeyIndex& keys, int64_t start, int64_t end) {
  // Column by column: a window's rows share their start and end, and its groups' keys are
  // decoded in one pass.
  const int32_t n = slice.store.groups;
  key_views_.resize(static_cast<size_t>(n));
  for (int32_t g = 0; g < n; ++g) {
    key_views_[static_cast<size_t>(g)] = keys.key(slice.key_of_group[static_cast<size_t>(g)]);
  }
  DecodeKeys(&key_views_, &keys_);
  start_.AppendRepeated(start, n);
  end_.AppendRepeated(end, n);
  if (slice.late_of_group.empty()) {
    late_.AppendRepeated(0, n);
  } else {
    late_.AppendValues(slice.late_of_group.data(), n);
  }
  layout_->AppendGroups(slice.store, n, &aggs_);
  rows_ += n;
  return Status::OK();
}

Status OutputRows::Flush(const AckSet& acks) {
  if (rows_ == 0) return Status::OK();
  std::vector<Column> cols;
  cols.reserve(static_cast<size_t>(schema_->num_fields()));
  // The next window is likely as big: size the builders for it, not by doubling.
  last_rows_ = rows_;
  last_key_bytes_.clear();
  for (auto& b : keys_) last_key_bytes_.push_back(b.data_bytes());
  for (auto& b : keys_) cols.push_back(b.Finish());
  cols.push_back(start_.Finish());
  cols.push_back(end_.Finish());
  for (auto& b : aggs_) cols.push_back(b.Finish());
  cols.push_back(late_.Finish());
  const int64_t rows = rows_;
  Reset();
  AckSet all = acks;
  all.Merge(extra_);
  return out_->Emit(Batch::MakeUnchecked(schema_, std::move(cols), rows), std::move(all));
}

void OutputRows::Reset() {
  keys_.clear();
  for (int k = 0; k < num_keys_; ++k) {
    keys_.emplace_back(schema_->field(k).type, last_rows_);
    if (static_cast<size_t>(k) < last_key_bytes_.size()) {
      keys_.back().ReserveBytes(last_key_bytes_[static_cast<size_t>(k)]);
    }
  }
  start_.Reserve(last_rows_);
  end_.Reserve(last_rows_);
  late_.Reserve(last_rows_);
  aggs_ = layout_->MakeBuilders(last_rows_);
  rows_ = 0;
}

}  // namespace sluice::window_internal
