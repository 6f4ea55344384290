#pragma once

// Private to src/sluice/transforms/geo: each thread's GEOS and PROJ state. GEOS is used through
// its reentrant C API only, with one context per thread; PROJ with one PJ_CONTEXT per thread.

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include "sluice/core/column.h"
#include "sluice/core/result.h"
#include "sluice/transforms/geo/geo_api.h"

namespace sluice::geo {

/// Destroy a geometry with the calling thread's GEOS context.
struct GeomDeleter {
  void operator()(GEOSGeometry* g) const;
};
/// A geometry owned by the code that holds the pointer.
using GeomPtr = std::unique_ptr<GEOSGeometry, GeomDeleter>;

/// One thread's GEOS context (with a WKB reader and an EWKB writer and a handler that keeps
/// GEOS's last error message), its PROJ context, and the transformations and prepared
/// geometries made on it. Made by a thread's first call to Get(), released when the thread
/// exits. Never shared between threads: a transform instance may move between threads from
/// one call to the next, so it asks for Get() in each call rather than keeping the pointer.
class GeoThread {
 public:
  /// Return the calling thread's state, made on first use.
  static GeoThread& Get();

  GeoThread();
  ~GeoThread();
  GeoThread(const GeoThread&) = delete;
  GeoThread& operator=(const GeoThread&) = delete;

  GEOSContextHandle_t handle() const { return handle_; }
  PJ_CONTEXT* proj() const { return proj_; }

  /// Parse WKB or EWKB bytes (either byte order; the SRID, Z and M flags of PostGIS). Return
  /// null when they are not a geometry; TakeError() then says why.
  GeomPtr Read(std::string_view wkb);
  /// Take ownership of what a GEOS call returned; null when it failed (see TakeError()).
  GeomPtr Own(GEOSGeometry* g) const { return GeomPtr(g); }
  /// Append `g` to `out` as little-endian EWKB with its SRID (when not 0) and `dims` (2 or 3)
  /// coordinate dimensions. Return false when GEOS could not write it (see TakeError()).
  bool Write(const GEOSGeometry* g, int dims, ColumnBuilder* out);
  /// Return GEOS's last error message on this thread (or `fallback` when there is none), and
  /// forget it.
  std::string TakeError(std::string_view fallback = "GEOS reported no reason");

  /// Return the prepared form of the geometry written as `wkt`, parsed and prepared once per
  /// thread and kept until the thread exits.
  Result<const GEOSPreparedGeometry*> Prepared(const std::string& wkt);
  /// Return the transformation of coordinates from CRS `from` to CRS `to` (x = longitude or
  /// easting, y = latitude or northing, whatever the CRS's axis order), made once per thread.
  Result<PJ*> Transformation(const std::string& from, const std::string& to);
  /// Return PROJ's message for the last error of this thread's context.
  std::string ProjError() const;

 private:
  struct PreparedEntry {
    GeomPtr geometry;
    const GEOSPreparedGeometry* prepared = nullptr;
  };
  struct Transform {
    PJ* pj = nullptr;
    std::string error;  // why it could not be made (pj is null): not retried on every row
  };

  GEOSContextHandle_t handle_ = nullptr;
  GEOSWKBReader* reader_ = nullptr;
  GEOSWKBWriter* writer_ = nullptr;
  std::string last_error_;
  PJ_CONTEXT* proj_ = nullptr;
  std::map<std::string, PreparedEntry> prepared_;
  std::map<std::pair<std::string, std::string>, Transform> transforms_;
};

/// Return the EPSG code PROJ gives the CRS `crs` ("EPSG:3857", a WKT or PROJ string naming
/// an EPSG CRS), 0 when it has none, or an error when PROJ cannot make a CRS of it.
Result<int> EpsgCodeOf(const std::string& crs);

}  // namespace sluice::geo
