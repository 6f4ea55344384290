#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace sluice {

/// An allocator whose value-less construct leaves the value uninitialized: a vector of bytes
/// resized ahead of the values written into it is not first filled with zeros.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

/// An immutable span of bytes that keeps its owner alive. Columns share buffers, so slicing a
/// batch or fanning it out to several consumers never copies data.
class Buffer {
 public:
  Buffer(const uint8_t* data, size_t size, std::shared_ptr<const void> owner)
      : data_(data), size_(size), owner_(std::move(owner)) {}

  /// Take ownership of `values` and expose its bytes.
  template <typename T, typename Alloc>
  static std::shared_ptr<const Buffer> FromVector(std::vector<T, Alloc>&& values) {
    auto owner = std::make_shared<std::vector<T, Alloc>>(std::move(values));
    return std::make_shared<const Buffer>(reinterpret_cast<const uint8_t*>(owner->data()),
                                          owner->size() * sizeof(T), owner);
  }

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_;
  size_t size_;
  std::shared_ptr<const void> owner_;
};

using BufferPtr = std::shared_ptr<const Buffer>;

namespace bits {
inline bool Get(const uint8_t* bitmap, int64_t i) { return (bitmap[i >> 3] >> (i & 7)) & 1; }
inline void Set(uint8_t* bitmap, int64_t i) {
  bitmap[i >> 3] |= static_cast<uint8_t>(1u << (i & 7));
}
inline void Clear(uint8_t* bitmap, int64_t i) {
  bitmap[i >> 3] &= static_cast<uint8_t>(~(1u << (i & 7)));
}
/// Return the number of set bits in [offset, offset + length).
int64_t CountSet(const uint8_t* bitmap, int64_t offset, int64_t length);
}  // namespace bits

}  // namespace sluice
