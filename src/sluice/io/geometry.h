#pragma once

// Geometry codecs: the engine carries geometries as EWKB (PostGIS's extended well-known binary,
// which keeps the SRID); these turn it into and out of the text forms files use — WKT (with an
// optional "SRID=n;" prefix, EWKT) and GeoJSON geometry objects.
//
// Supported: Point, LineString, Polygon, MultiPoint, MultiLineString, MultiPolygon and
// GeometryCollection, in 2D, Z, M and ZM, either byte order, with EWKB flags or ISO type codes
// (1001, 2001, 3001, ...). Curves and surfaces (CircularString, TIN, ...) are errors.

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice::io::geom {

/// The SRID of a GeoJSON geometry when the file does not say otherwise (RFC 7946: WGS 84).
inline constexpr int32_t kWgs84 = 4326;

/// The geometry types of (E)WKB.
enum GeometryType : uint32_t {
  kPoint = 1,
  kLineString = 2,
  kPolygon = 3,
  kMultiPoint = 4,
  kMultiLineString = 5,
  kMultiPolygon = 6,
  kGeometryCollection = 7,
};

/// What a whole, valid EWKB value holds at its top.
struct EwkbInfo {
  GeometryType type = kPoint;
  int32_t srid = 0;  ///< 0 when the value carries none
  bool has_z = false;
  bool has_m = false;
};

/// Check that `wkb` is exactly one well-formed (E)WKB geometry and describe it. Errors name
/// what is wrong and at which byte ("truncated at byte 21: a LineString of 4 points needs 64
/// bytes more").
Result<EwkbInfo> InspectEwkb(std::string_view wkb);

/// Append `wkb` as a GeoJSON geometry object ({"type":"Point","coordinates":[1,2]}). Z is
/// kept as the third coordinate; M values are dropped (GeoJSON has none). Errors for a
/// malformed value or a non-finite coordinate (outside an empty point), which JSON cannot hold.
/// With `info`, also describe the value (its SRID), as InspectEwkb would, from the same walk.
Status AppendGeoJson(std::string_view wkb, std::string* out, EwkbInfo* info = nullptr);

/// Append `wkb` as WKT ("POINT (1 2)", "POLYGON Z ((...))"); with `with_srid` and an SRID in
/// the value, as EWKT ("SRID=4326;POINT (1 2)"). Coordinates are the shortest text that reads
/// back exactly.
Status AppendWkt(std::string_view wkb, bool with_srid, std::string* out);

/// Parse WKT or EWKT into little-endian EWKB appended to `out`, with the text's SRID, else
/// `srid` (0: none). Dimensions come from the tag (Z, M, ZM) or, without one, from the first
/// position (3 numbers: Z, 4: ZM); every position must have as many. Polygon rings must be
/// closed and have 4 or more positions, line strings 2 or more (as PostGIS requires).
Status WktToEwkb(std::string_view wkt, int32_t srid, std::string* out);

/// Return whether `blob` is a GeoPackage geometry blob (it starts with "GP").
bool IsGeoPackageBlob(std::string_view blob);

/// Append the EWKB of a GeoPackage geometry blob (the "GP" header — version 0, flags, srs_id,
/// optional envelope — then standard WKB): its srs_id becomes the SRID (0 and -1, GeoPackage's
/// undefined systems, give none). Errors for a malformed header, the extended geometry types
/// of the GeoPackage extension, or malformed WKB.
Status GeoPackageToEwkb(std::string_view blob, std::string* out);

/// Append a 2D point as little-endian EWKB, with an SRID when `srid` is not 0.
void AppendEwkbPoint(double x, double y, int32_t srid, std::string* out);

/// Return whether `text` is hex (EWKB as PostgreSQL and our writers print it) rather than WKT:
/// it starts with a hex digit or "\x". WKT always starts with a letter outside a-f.
bool LooksLikeHex(std::string_view text);

/// Return whether `text` is a geometry as text files hold one — WKT/EWKT, or hex EWKB of a
/// whole well-formed geometry — for schema inference: a column of them is a geometry column.
bool LooksLikeGeometryText(std::string_view text);

/// Append the EWKB of a geometry value as text files hold it: hex EWKB, or WKT/EWKT.
Status TextToEwkb(std::string_view text, int32_t srid, std::string* out);

}  // namespace sluice::io::geom
