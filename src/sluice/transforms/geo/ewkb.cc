#include "sluice/transforms/geo/ewkb.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <numbers>

namespace sluice::geo {

namespace {

template <typename T>
T ReadAt(std::string_view bytes, size_t at, bool swap) {
  T v;
  std::memcpy(&v, bytes.data() + at, sizeof(T));
  if (swap) {
    if constexpr (sizeof(T) == 4) {
      uint32_t u;
      std::memcpy(&u, &v, 4);
      u = __builtin_bswap32(u);
      std::memcpy(&v, &u, 4);
    } else {
      uint64_t u;
      std::memcpy(&u, &v, 8);
      u = __builtin_bswap64(u);
      std::memcpy(&v, &u, 8);
    }
  }
  return v;
}

template <typename T>
void Put(std::string* out, T v) {
  static_assert(std::endian::native == std::endian::little, "EWKB is written little-endian");
  const auto* p = reinterpret_cast<const char*>(&v);
  out->append(p, sizeof(T));
}

}  // namespace

bool ReadPoint2D(std::string_view wkb, Point2D* p) {
  if (wkb.size() != 21 && wkb.size() != 25) return false;
  const auto order = static_cast<uint8_t>(wkb[0]);
  if (order > 1) return false;
  const bool swap = (order == 1) != (std::endian::native == std::endian::little);
  const auto type = ReadAt<uint32_t>(wkb, 1, swap);
  size_t at = 5;
  if (type == (1u | kEwkbSrid) && wkb.size() == 25) {
    p->srid = ReadAt<int32_t>(wkb, 5, swap);
    at = 9;
  } else if (type == 1u && wkb.size() == 21) {
    p->srid = 0;
  } else {
    return false;
  }
  p->x = ReadAt<double>(wkb, at, swap);
  p->y = ReadAt<double>(wkb, at + 8, swap);
  return true;
}

CircleTemplate::CircleTemplate(int quadrant_segments) {
  // As OffsetSegmentGenerator::addDirectedFillet computes them for a full turn clockwise.
  const double quantum = std::numbers::pi / 2.0 / quadrant_segments;
  const double total = std::fabs(0.0 - 2.0 * std::numbers::pi);
  const int segments = static_cast<int>(total / quantum + 0.5);
  const double increment = total / segments;
  for (int i = 0; i < segments; ++i) {
    const double angle = 0.0 + (-1 * i) * increment;
    cos_.push_back(std::cos(angle));
    sin_.push_back(std::sin(angle));
  }
}

void CircleTemplate::AppendEwkb(double x, double y, double r, int32_t srid,
                                std::string* out) const {
  out->push_back('\x01');
  Put<uint32_t>(out, srid != 0 ? (3u | kEwkbSrid) : 3u);
  if (srid != 0) Put<int32_t>(out, srid);
  Put<uint32_t>(out, 1);  // one ring
  Put<uint32_t>(out, static_cast<uint32_t>(cos_.size() + 1));
  // The first vertex is the start point (x + r, y) GEOS adds before the fillet; the fillet's
  // own first vertex (angle 0) is the same point, which GEOS drops as a repeat. The vertices
  // are written in place: this is the hot path of buffering points.
  const size_t n = cos_.size();
  const size_t at = out->size();
  out->resize(at + 16 * (n + 1));
  char* p = out->data() + at;
  auto put = [&p](double v) {
    std::memcpy(p, &v, 8);
    p += 8;
  };
  put(x + r);
  put(y);
  for (size_t i = 1; i < n; ++i) {
    put(x + r * cos_[i]);
    put(y + r * sin_[i]);
  }
  put(x + r);  // closed
  put(y);
}

}  // namespace sluice::geo
