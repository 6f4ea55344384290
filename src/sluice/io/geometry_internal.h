#pragma once

// Writing EWKB, shared by the WKT and GeoJSON readers. Private to src/sluice/io.

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>

#include "sluice/core/result.h"
#include "sluice/io/geometry.h"

namespace sluice::io::geom::internal {

/// Appends little-endian EWKB to a string. Counts are written as placeholders and patched once
/// known, so a reader can write as it parses.
class EwkbWriter {
 public:
  explicit EwkbWriter(std::string* out) : out_(out) {}

  /// A geometry's header: byte order, type with the Z/M flags, and the SRID when `srid` != 0
  /// (only the outermost geometry carries one).
  void Header(uint32_t type, bool z, bool m, int32_t srid) {
    out_->push_back('\x01');
    uint32_t t = type | (z ? 0x80000000u : 0) | (m ? 0x40000000u : 0);
    if (srid != 0) t |= 0x20000000u;
    U32(t);
    if (srid != 0) U32(static_cast<uint32_t>(srid));
  }
  /// Reserve a count; return where to patch it.
  size_t CountPlaceholder() {
    const size_t at = out_->size();
    U32(0);
    return at;
  }
  void PatchCount(size_t at, uint32_t n) { std::memcpy(out_->data() + at, &n, 4); }
  /// Add Z/M `flags` to the type of the header written at `at`.
  void OrType(size_t at, uint32_t flags) {
    uint32_t t;
    std::memcpy(&t, out_->data() + at + 1, 4);
    t |= flags;
    std::memcpy(out_->data() + at + 1, &t, 4);
  }
  void U32(uint32_t v) {
    v = std::endian::native == std::endian::little ? v : __builtin_bswap32(v);
    out_->append(reinterpret_cast<const char*>(&v), 4);
  }
  void F64(double d) {
    uint64_t v = std::bit_cast<uint64_t>(d);
    v = std::endian::native == std::endian::little ? v : __builtin_bswap64(v);
    out_->append(reinterpret_cast<const char*>(&v), 8);
  }
  size_t size() const { return out_->size(); }
  /// The bytes written at `at` (to check that rings are closed).
  const char* At(size_t at) const { return out_->data() + at; }

 private:
  std::string* out_;
};

/// Check that the `n` positions of `dims` coordinates written from byte `first` form a closed
/// ring of 4 or more positions, as PostGIS requires of polygon rings.
inline Status CheckRing(const EwkbWriter& w, size_t first, uint32_t n, int dims) {
  if (n < 4) return Status::Invalid("a polygon ring has {} positions; it needs 4 or more", n);
  const size_t last = first + (size_t{n} - 1) * static_cast<size_t>(dims) * 8;
  for (int d = 0; d < 2; ++d) {
    // Byte for byte, as PostGIS compares them (-0.0 does not close a ring that starts at 0).
    if (std::memcmp(w.At(first + d * 8), w.At(last + d * 8), 8) != 0) {
      return Status::Invalid("a polygon ring is not closed (its last position is not its first)");
    }
  }
  return Status::OK();
}

}  // namespace sluice::io::geom::internal
