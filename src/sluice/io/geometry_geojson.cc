// Reading GeoJSON geometry objects into EWKB.

#include <algorithm>
#include <limits>
#include "sluice/io/geometry.h"

#include "sluice/io/geometry_internal.h"
#include "sluice/io/json_rows.h"
#include "sluice/io/text_internal.h"

namespace sluice::io::internal {

namespace {

using geom::internal::EwkbWriter;
using simdjson::dom::element;
using simdjson::dom::element_type;

constexpr int kMaxDepth = 32;

class GeoJsonReader {
 public:
  explicit GeoJsonReader(std::string* out) : w_(out) {}

  Status Geometry(element g, int32_t srid, int depth) {
    if (depth > kMaxDepth) return Status::Invalid("geometry collections nested too deep");
    simdjson::dom::object object;
    if (g.get_object().get(object) != simdjson::SUCCESS) {
      return Status::Invalid("a geometry must be an object, got {}", JsonTypeName(g.type()));
    }
    std::string_view type;
    if (object["type"].get_string().get(type) != simdjson::SUCCESS) {
      return Status::Invalid("a geometry needs a \"type\" string");
    }
    static constexpr std::pair<std::string_view, uint32_t> kTypes[] = {
        {"Point", geom::kPoint},
        {"LineString", geom::kLineString},
        {"Polygon", geom::kPolygon},
        {"MultiPoint", geom::kMultiPoint},
        {"MultiLineString", geom::kMultiLineString},
        {"MultiPolygon", geom::kMultiPolygon},
        {"GeometryCollection", geom::kGeometryCollection}};
    uint32_t code = 0;
    for (const auto& [name, c] : kTypes) {
      if (type == name) code = c;
    }
    if (code == 0) return Status::Invalid("unknown geometry type \"{}\"", Excerpt(type));
    const size_t header = w_.size();
    w_.Header(code, false, false, srid);
    if (code == geom::kGeometryCollection) {
      simdjson::dom::array members;
      if (object["geometries"].get_array().get(members) != simdjson::SUCCESS) {
        return Status::Invalid("a GeometryCollection needs a \"geometries\" array");
      }
      const size_t count = w_.CountPlaceholder();
      uint32_t n = 0;
      for (element m : members) {
        SLUICE_RETURN_NOT_OK(Geometry(m, 0, depth + 1).WithContext("geometries[{}]", n));
        ++n;
      }
      w_.PatchCount(count, n);
      if (dims_ == 3) w_.OrType(header, 0x80000000u);
      return Status::OK();
    }
    simdjson::dom::array coordinates;
    if (object["coordinates"].get_array().get(coordinates) != simdjson::SUCCESS) {
      return Status::Invalid("a {} needs a \"coordinates\" array", type);
    }
    SLUICE_RETURN_NOT_OK(Body(code, coordinates).WithContext("{} coordinates", type));
    if (dims_ == 3) w_.OrType(header, 0x80000000u);
    return Status::OK();
  }

 private:
  Status Body(uint32_t code, simdjson::dom::array a) {
    switch (code) {
      case geom::kPoint:
        if (a.size() == 0) return EmptyPoint();
        return Position(a);
      case geom::kLineString:
        return Positions(a, 2);
      case geom::kPolygon:
        return Rings(a);
      default:
        break;
    }
    const uint32_t element_code = code - 3;
    const size_t count = w_.CountPlaceholder();
    uint32_t n = 0;
    for (element e : a) {
      simdjson::dom::array inner;
      if (e.get_array().get(inner) != simdjson::SUCCESS) {
        return Status::Invalid("[{}]: expected an array, got {}", n, JsonTypeName(e.type()));
      }
      const size_t header = w_.size();
      w_.Header(element_code, false, false, 0);
      Status st = Body(element_code, inner);
      if (!st.ok()) return st.WithContext("[{}]", n);
      if (dims_ == 3) w_.OrType(header, 0x80000000u);
      ++n;
    }
    w_.PatchCount(count, n);
    return Status::OK();
  }

  Status EmptyPoint() {
    if (dims_ == 0) dims_ = 2;
    for (int i = 0; i < dims_; ++i) w_.F64(std::numeric_limits<double>::quiet_NaN());
    return Status::OK();
  }

  Status Rings(simdjson::dom::array rings) {
    const size_t count = w_.CountPlaceholder();
    uint32_t n = 0;
    for (element r : rings) {
      simdjson::dom::array ring;
      if (r.get_array().get(ring) != simdjson::SUCCESS) {
        return Status::Invalid("ring {}: expected an array, got {}", n, JsonTypeName(r.type()));
      }
      const size_t first = w_.size() + 4;
      SLUICE_RETURN_NOT_OK(Positions(ring, 4).WithContext("ring {}", n));
      SLUICE_RETURN_NOT_OK(
          geom::internal::CheckRing(w_, first, static_cast<uint32_t>(ring.size()), dims_)
              .WithContext("ring {}", n));
      ++n;
    }
    w_.PatchCount(count, n);
    return Status::OK();
  }

  Status Positions(simdjson::dom::array a, uint32_t min) {
    const size_t count = w_.CountPlaceholder();
    uint32_t n = 0;
    for (element e : a) {
      simdjson::dom::array position;
      if (e.get_array().get(position) != simdjson::SUCCESS) {
        return Status::Invalid("[{}]: expected a position, got {}", n, JsonTypeName(e.type()));
      }
      SLUICE_RETURN_NOT_OK(Position(position).WithContext("[{}]", n));
      ++n;
    }
    if (n != 0 && n < min) {  // none is an empty line (a ring is checked by CheckRing)
      return Status::Invalid("{} positions where {} or more are needed", n, min);
    }
    w_.PatchCount(count, n);
    return Status::OK();
  }

  // Two or three numbers (more are allowed and ignored, as RFC 7946 says). The first position
  // fixes the dimensions of the geometry.
  Status Position(simdjson::dom::array a) {
    double v[3];
    int k = 0;
    for (element e : a) {
      if (k == 3) break;
      if (e.get_double().get(v[k]) != simdjson::SUCCESS) {
        int64_t i;
        uint64_t u;
        if (e.get_int64().get(i) == simdjson::SUCCESS) {
          v[k] = static_cast<double>(i);
        } else if (e.get_uint64().get(u) == simdjson::SUCCESS) {
          v[k] = static_cast<double>(u);
        } else {
          return Status::Invalid("a coordinate must be a number, got {}", JsonTypeName(e.type()));
        }
      }
      ++k;
    }
    if (k < 2) return Status::Invalid("a position needs 2 or more numbers, has {}", k);
    if (dims_ == 0) dims_ = k;
    // Numbers past the third are ignored (RFC 7946), but a geometry is 2-D or 3-D throughout:
    // a z that only some positions have would be dropped or invented.
    if (std::min(k, 3) != dims_) {
      return Status::Invalid("a position of {} numbers where the first had {}", k, dims_);
    }
    for (int i = 0; i < dims_; ++i) w_.F64(v[i]);
    return Status::OK();
  }

  EwkbWriter w_;
  int dims_ = 0;
};

}  // namespace

Status GeoJsonToEwkb(element geometry, int32_t srid, std::string* out) {
  const size_t size = out->size();
  Status st = GeoJsonReader(out).Geometry(geometry, srid, 0);
  // What the reader made is checked as any EWKB is (an empty element before a 3-D one leaves
  // the dimensions mixed, which PostGIS refuses).
  if (st.ok()) st = geom::InspectEwkb(std::string_view(*out).substr(size)).status();
  if (!st.ok()) out->resize(size);
  return st;
}

}  // namespace sluice::io::internal
