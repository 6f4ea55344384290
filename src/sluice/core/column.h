#pragma once

#include <cassert>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/buffer.h"
#include "sluice/core/types.h"

namespace sluice {

/// An immutable column of one type: values, an optional validity bitmap (absent means no
/// nulls) and, for variable-width types, int32 offsets into a byte buffer. Slices share the
/// buffers of the column they come from. Bool values are stored one byte per row (0 or 1) so
/// that predicates vectorize.
class Column {
 public:
  Column() = default;
  Column(TypeId type, int64_t length, int64_t null_count, BufferPtr validity, BufferPtr values,
         BufferPtr data = nullptr, int64_t offset = 0);

  TypeId type() const { return type_; }
  int64_t length() const { return length_; }
  int64_t null_count() const { return null_count_; }
  bool IsValid(int64_t i) const {
    return validity_ == nullptr || bits::Get(validity_->data(), offset_ + i);
  }
  bool IsNull(int64_t i) const { return !IsValid(i); }

  /// Return the values of a fixed-width column, starting at this slice's first row.
  template <typename T>
  const T* values() const {
    return reinterpret_cast<const T*>(values_->data()) + offset_;
  }
  const int64_t* int64s() const { return values<int64_t>(); }
  const double* float64s() const { return values<double>(); }
  const uint8_t* bools() const { return values<uint8_t>(); }

  int64_t GetInt64(int64_t i) const { return int64s()[i]; }
  double GetFloat64(int64_t i) const { return float64s()[i]; }
  bool GetBool(int64_t i) const { return bools()[i] != 0; }
  /// Return the bytes of row `i` of a variable-width column.
  std::string_view GetView(int64_t i) const {
    const int32_t* off = values<int32_t>();
    return {reinterpret_cast<const char*>(data_->data()) + off[i],
            static_cast<size_t>(off[i + 1] - off[i])};
  }
  /// Return the offsets of a variable-width column: length()+1 entries from this slice.
  const int32_t* offsets() const { return values<int32_t>(); }
  const char* var_data() const { return reinterpret_cast<const char*>(data_->data()); }

  /// Return rows [offset, offset + length) without copying.
  Column Slice(int64_t offset, int64_t length) const;
  /// Return the bytes this column's rows occupy (values, offsets, data, validity).
  int64_t ByteSize() const;

  const BufferPtr& validity_buffer() const { return validity_; }
  const BufferPtr& values_buffer() const { return values_; }
  const BufferPtr& data_buffer() const { return data_; }
  int64_t offset() const { return offset_; }

 private:
  TypeId type_ = TypeId::kInt64;
  int64_t length_ = 0;
  int64_t null_count_ = 0;
  int64_t offset_ = 0;
  BufferPtr validity_;
  BufferPtr values_;
  BufferPtr data_;
};

/// Accumulate values of one type and produce a Column. Not thread-safe.
class ColumnBuilder {
 public:
  explicit ColumnBuilder(TypeId type, int64_t capacity = 0);

  TypeId type() const { return type_; }
  int64_t length() const { return length_; }

  void AppendNull();
  void AppendBool(bool v) { AppendFixed(static_cast<uint8_t>(v)); }
  void AppendInt64(int64_t v) { AppendFixed(v); }
  void AppendTimestamp(int64_t micros) { AppendFixed(micros); }
  void AppendFloat64(double v) { AppendFixed(v); }
  /// Append bytes to a variable-width column (string, bytes, geometry, json).
  void AppendString(std::string_view v) {
    data_.insert(data_.end(), v.begin(), v.end());
    offsets_.push_back(static_cast<int32_t>(data_.size()));
    ++length_;
  }
  /// Append a string to a variable-width column that the caller writes in place: return room
  /// for `max_bytes` (uninitialized; valid until the next call on this builder), then call
  /// EndString with the bytes written, at most `max_bytes`, before anything else. Saves
  /// formatting into a scratch buffer and copying.
  char* BeginString(size_t max_bytes) {
    assert(string_room_ == kNoString);
    string_start_ = data_.size();
    string_room_ = max_bytes;
    data_.resize(string_start_ + max_bytes);
    return data_.data() + string_start_;
  }
  void EndString(size_t bytes) {
    assert(string_room_ != kNoString && bytes <= string_room_);
    string_room_ = kNoString;
    data_.resize(string_start_ + bytes);
    offsets_.push_back(static_cast<int32_t>(data_.size()));
    ++length_;
  }
  /// Append `n` copies of `v` to an 8-byte column (int64, timestamp, float64's bits).
  void AppendRepeated(int64_t v, int64_t n) {
    int64_t* out = AppendUninitialized<int64_t>(n);
    for (int64_t i = 0; i < n; ++i) out[i] = v;
  }
  /// Append the `n` values at `v` to an 8-byte column (int64, timestamp, float64's bits).
  void AppendValues(const int64_t* v, int64_t n) {
    if (n > 0) std::memcpy(AppendUninitialized<int64_t>(n), v, static_cast<size_t>(n) * 8);
  }
  /// Append `n` values of a fixed-width column (T of the column's width) that the caller
  /// writes: return where the first goes, valid until the next append. Rows the caller means
  /// as null it marks with SetNull.
  template <typename T>
  T* AppendUninitialized(int64_t n) {
    const auto bytes = static_cast<size_t>(n) * sizeof(T);
    if (fixed_len_ + bytes > fixed_.size()) [[unlikely]]
      GrowFixed(bytes);
    T* out = reinterpret_cast<T*>(fixed_.data() + fixed_len_);
    fixed_len_ += bytes;
    length_ += n;
    return out;
  }
  /// Make row `i` (appended already, to a fixed-width column) null; its value becomes zeros.
  void SetNull(int64_t i);
  /// Append `n` strings to a variable-width column: string i is get(i), a std::string_view.
  /// One size check and one growth for all of them, not one per string.
  template <typename Get>
  void AppendStrings(int64_t n, const Get& get) {
    if (n <= 0) return;
    size_t bytes = 0;
    for (int64_t i = 0; i < n; ++i) bytes += get(i).size();
    const size_t at = data_.size();
    const size_t first = offsets_.size();
    data_.resize(at + bytes);
    offsets_.resize(first + static_cast<size_t>(n));
    char* d = data_.data() + at;
    int32_t* off = offsets_.data() + first;
    auto end = static_cast<int32_t>(at);
    for (int64_t i = 0; i < n; ++i) {
      const std::string_view v = get(i);
      std::memcpy(d, v.data(), v.size());
      d += v.size();
      end += static_cast<int32_t>(v.size());
      off[i] = end;
    }
    length_ += n;
  }
  /// Append row `row` of `source`, which must have this builder's type.
  void AppendFrom(const Column& source, int64_t row);
  /// Append every row of `source`, which must have this builder's type.
  void AppendColumn(const Column& source);
  void Reserve(int64_t rows);
  /// Reserve room for `bytes` of values in a variable-width column (no-op for others).
  void ReserveBytes(int64_t bytes) {
    if (bytes > 0) data_.reserve(static_cast<size_t>(bytes));
  }
  /// Bytes of values appended so far to a variable-width column.
  int64_t data_bytes() const { return static_cast<int64_t>(data_.size()); }

  /// Return the column and reset the builder to empty.
  Column Finish();

 private:
  template <typename T>
  void AppendFixed(T v) {
    if (fixed_len_ + sizeof(T) > fixed_.size()) [[unlikely]]
      GrowFixed(sizeof(T));
    std::memcpy(fixed_.data() + fixed_len_, &v, sizeof(T));
    fixed_len_ += sizeof(T);
    ++length_;
  }
  /// Make room for `bytes` more after fixed_len_ (fixed_ is sized ahead, by doubling).
  void GrowFixed(size_t bytes);
  void EnsureValidity();

  TypeId type_;
  int64_t length_ = 0;
  int64_t null_count_ = 0;
  // The values of a fixed-width column: the first fixed_len_ bytes (appends write into the
  // room ahead rather than growing the vector by each value).
  std::vector<uint8_t, UninitializedAllocator<uint8_t>> fixed_;
  size_t fixed_len_ = 0;
  std::vector<int32_t> offsets_;
  std::vector<char, UninitializedAllocator<char>> data_;
  static constexpr size_t kNoString = SIZE_MAX;
  size_t string_start_ = 0;         // BeginString's row starts here
  size_t string_room_ = kNoString;  // its room, until EndString
  std::vector<uint8_t> validity_;   // empty until the first null
};

}  // namespace sluice
