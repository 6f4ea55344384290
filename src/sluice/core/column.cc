#include "sluice/core/column.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>

namespace sluice {

namespace bits {
int64_t CountSet(const uint8_t* bitmap, int64_t offset, int64_t length) {
  int64_t count = 0;
  int64_t i = offset;
  const int64_t end = offset + length;
  for (; i < end && (i & 7) != 0; ++i) count += Get(bitmap, i);
  for (; i + 64 <= end; i += 64) {
    uint64_t word;
    std::memcpy(&word, bitmap + (i >> 3), 8);
    count += std::popcount(word);
  }
  for (; i < end; ++i) count += Get(bitmap, i);
  return count;
}
}  // namespace bits

Column::Column(TypeId type, int64_t length, int64_t null_count, BufferPtr validity,
               BufferPtr values, BufferPtr data, int64_t offset)
    : type_(type),
      length_(length),
      null_count_(null_count),
      offset_(offset),
      validity_(std::move(validity)),
      values_(std::move(values)),
      data_(std::move(data)) {
  if (null_count_ == 0) validity_ = nullptr;
}

Column Column::Slice(int64_t offset, int64_t length) const {
  assert(offset >= 0 && length >= 0 && offset + length <= length_);
  Column out = *this;
  out.offset_ = offset_ + offset;
  out.length_ = length;
  out.null_count_ = validity_ ? length - bits::CountSet(validity_->data(), out.offset_, length) : 0;
  if (out.null_count_ == 0) out.validity_ = nullptr;
  return out;
}

int64_t Column::ByteSize() const {
  int64_t size = validity_ ? (length_ + 7) / 8 : 0;
  if (IsVarWidth(type_)) {
    if (length_ == 0) return size;
    const int32_t* off = offsets();
    size += static_cast<int64_t>(sizeof(int32_t)) * (length_ + 1) + (off[length_] - off[0]);
  } else {
    size += FixedWidth(type_) * length_;
  }
  return size;
}

ColumnBuilder::ColumnBuilder(TypeId type, int64_t capacity) : type_(type) {
  if (IsVarWidth(type_)) offsets_.push_back(0);
  Reserve(capacity);
}

void ColumnBuilder::Reserve(int64_t rows) {
  if (rows <= 0) return;
  if (IsVarWidth(type_)) {
    offsets_.reserve(static_cast<size_t>(rows) + 1);
  } else {
    const auto bytes = static_cast<size_t>(rows * FixedWidth(type_));
    if (fixed_len_ + bytes > fixed_.size()) GrowFixed(bytes);
  }
}

void ColumnBuilder::GrowFixed(size_t bytes) {
  fixed_.resize(std::max({fixed_.size() * 2, fixed_len_ + bytes, size_t{64}}));
}

void ColumnBuilder::EnsureValidity() {
  if (!validity_.empty() || null_count_ > 0) return;
  // All rows so far are valid.
  validity_.assign(static_cast<size_t>((length_ + 8) / 8 + 8), 0xff);
}

void ColumnBuilder::AppendNull() {
  EnsureValidity();
  const int64_t i = length_;
  if (static_cast<size_t>(i >> 3) >= validity_.size()) {
    validity_.resize(static_cast<size_t>(i >> 3) * 2 + 8, 0xff);
  }
  bits::Clear(validity_.data(), i);
  ++null_count_;
  if (IsVarWidth(type_)) {
    offsets_.push_back(static_cast<int32_t>(data_.size()));
    ++length_;
  } else {
    const auto w = static_cast<size_t>(FixedWidth(type_));
    if (fixed_len_ + w > fixed_.size()) GrowFixed(w);
    std::memset(fixed_.data() + fixed_len_, 0, w);
    fixed_len_ += w;
    ++length_;
  }
}

void ColumnBuilder::SetNull(int64_t i) {
  EnsureValidity();
  if (static_cast<size_t>(i >> 3) >= validity_.size()) {
    validity_.resize(static_cast<size_t>(i >> 3) * 2 + 8, 0xff);
  }
  if (!bits::Get(validity_.data(), i)) return;
  bits::Clear(validity_.data(), i);
  ++null_count_;
  const auto w = static_cast<size_t>(FixedWidth(type_));
  std::memset(fixed_.data() + static_cast<size_t>(i) * w, 0, w);
}

void ColumnBuilder::AppendFrom(const Column& source, int64_t row) {
  if (source.IsNull(row)) {
    AppendNull();
    return;
  }
  if (IsVarWidth(type_)) {
    AppendString(source.GetView(row));
  } else if (type_ == TypeId::kBool) {
    AppendBool(source.GetBool(row));
  } else {
    AppendInt64(source.GetInt64(row));  // int64, float64 and timestamp share 8-byte storage
  }
}

void ColumnBuilder::AppendColumn(const Column& source) {
  if (source.null_count() > 0) {
    for (int64_t i = 0; i < source.length(); ++i) AppendFrom(source, i);
    return;
  }
  const int64_t n = source.length();
  if (IsVarWidth(type_)) {
    const int32_t* off = source.offsets();
    const int32_t base = static_cast<int32_t>(data_.size()) - off[0];
    data_.insert(data_.end(), source.var_data() + off[0], source.var_data() + off[n]);
    for (int64_t i = 1; i <= n; ++i) offsets_.push_back(off[i] + base);
  } else {
    const uint8_t* p = source.values_buffer()->data() + source.offset() * FixedWidth(type_);
    const auto bytes = static_cast<size_t>(n * FixedWidth(type_));
    if (fixed_len_ + bytes > fixed_.size()) GrowFixed(bytes);
    if (bytes > 0) std::memcpy(fixed_.data() + fixed_len_, p, bytes);
    fixed_len_ += bytes;
  }
  if (!validity_.empty()) {
    validity_.resize(static_cast<size_t>((length_ + n + 8) / 8 + 8), 0xff);
  }
  length_ += n;
}

Column ColumnBuilder::Finish() {
  assert(string_room_ == kNoString);  // no BeginString left open
  BufferPtr validity;
  if (null_count_ > 0) {
    validity_.resize(static_cast<size_t>((length_ + 7) / 8), 0xff);
    validity = Buffer::FromVector(std::move(validity_));
  }
  Column out;
  if (IsVarWidth(type_)) {
    // The bytes grew by doubling: a batch keeps its buffers as long as it lives, so give back
    // a large unused tail (one copy) rather than hold up to twice the data in memory.
    constexpr size_t kMaxSlackBytes = 1 << 20;
    if (data_.capacity() - data_.size() > std::max(kMaxSlackBytes, data_.size() / 4)) {
      data_.shrink_to_fit();
    }
    out = Column(type_, length_, null_count_, validity, Buffer::FromVector(std::move(offsets_)),
                 Buffer::FromVector(std::move(data_)));
    offsets_ = {0};
  } else {
    fixed_.resize(fixed_len_);  // within its capacity: nothing moves
    out = Column(type_, length_, null_count_, validity, Buffer::FromVector(std::move(fixed_)));
  }
  fixed_.clear();
  fixed_len_ = 0;
  data_.clear();
  validity_.clear();
  length_ = 0;
  null_count_ = 0;
  return out;
}

}  // namespace sluice
