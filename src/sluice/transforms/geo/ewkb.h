#pragma once

// Private to src/sluice/transforms/geo: the few EWKB shapes the geo transforms read and write
// without GEOS, because they are their hot path (buffering and filtering points, making
// points). Everything else goes through GEOS's reader and writer (geo_context.h).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::geo {

/// The EWKB type flags of PostGIS.
inline constexpr uint32_t kEwkbZ = 0x80000000u;
inline constexpr uint32_t kEwkbM = 0x40000000u;
inline constexpr uint32_t kEwkbSrid = 0x20000000u;

/// A two-dimensional point read from WKB or EWKB.
struct Point2D {
  double x = 0;
  double y = 0;
  int32_t srid = 0;  ///< 0 when the bytes carry none.
};

/// Return true and fill `p` when `wkb` is exactly one 2-D point (WKB or EWKB, either byte
/// order, with or without an SRID), false for anything else (which GEOS then reads).
bool ReadPoint2D(std::string_view wkb, Point2D* p);

/// The offsets of the vertices of the circle GEOS's buffer makes around a point with round
/// caps and `quadrant_segments` segments per quarter circle, for a radius of 1: vertex i is
/// (x + r * cos_[i], y + r * sin_[i]). The same angles, in the same order, as GEOS 3.11
/// (OffsetSegmentGenerator::createCircle: clockwise from east), so that the polygons are
/// byte for byte those of GEOSBuffer_r. Immutable after construction.
class CircleTemplate {
 public:
  explicit CircleTemplate(int quadrant_segments);

  /// Append the EWKB polygon of the circle of radius `r` (> 0) around (x, y) to `out`.
  void AppendEwkb(double x, double y, double r, int32_t srid, std::string* out) const;
  /// Return the bytes of one polygon: the size AppendEwkb appends (with an SRID).
  size_t ewkb_size() const { return 17 + 16 * (cos_.size() + 1); }

 private:
  std::vector<double> cos_;
  std::vector<double> sin_;
};

}  // namespace sluice::geo
