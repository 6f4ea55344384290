#include "sluice/transforms/geo/geo_context.h"
#include "sluice/io/geometry.h"

#include <cstdlib>

#include <fmt/format.h>

namespace sluice::geo {

namespace {

void KeepError(const char* message, void* userdata) {
  *static_cast<std::string*>(userdata) = message;
}

// GEOS's notices (e.g. "Self-intersection at or near point ...") accompany results or errors
// that are reported anyway; they are not printed.
void IgnoreNotice(const char* message, void* userdata) {}

}  // namespace

DynamicLibrary& GeosLibrary() {
  static DynamicLibrary library(SLUICE_GEOS_C_SONAME, "libgeos-c1v5");
  return library;
}

DynamicLibrary& ProjLibrary() {
  static DynamicLibrary library(SLUICE_PROJ_SONAME, "libproj25");
  return library;
}

Status LoadGeoLibraries() {
  SLUICE_RETURN_NOT_OK(GeosLibrary().Load());
  return ProjLibrary().Load();
}

void GeomDeleter::operator()(GEOSGeometry* g) const {
  GEOSGeom_destroy_r(GeoThread::Get().handle(), g);
}

GeoThread& GeoThread::Get() {
  thread_local GeoThread state;
  return state;
}

GeoThread::GeoThread() {
  handle_ = GEOS_init_r();
  GEOSContext_setErrorMessageHandler_r(handle_, &KeepError, &last_error_);
  GEOSContext_setNoticeMessageHandler_r(handle_, &IgnoreNotice, nullptr);
  reader_ = GEOSWKBReader_create_r(handle_);
  writer_ = GEOSWKBWriter_create_r(handle_);
  GEOSWKBWriter_setByteOrder_r(handle_, writer_, GEOS_WKB_NDR);
  GEOSWKBWriter_setFlavor_r(handle_, writer_, GEOS_WKB_EXTENDED);
  GEOSWKBWriter_setIncludeSRID_r(handle_, writer_, 1);
  proj_ = proj_context_create();
  // Errors come back as values (ProjError); PROJ would print them on stderr too.
  proj_log_level(proj_, PJ_LOG_NONE);
}

GeoThread::~GeoThread() {
  // GeomDeleter would ask for this thread's state, which is being destroyed: release by hand.
  for (auto& [wkt, entry] : prepared_) {
    GEOSPreparedGeom_destroy_r(handle_, entry.prepared);
    GEOSGeom_destroy_r(handle_, entry.geometry.release());
  }
  for (auto& [key, t] : transforms_) {
    if (t.pj != nullptr) proj_destroy(t.pj);
  }
  GEOSWKBReader_destroy_r(handle_, reader_);
  GEOSWKBWriter_destroy_r(handle_, writer_);
  GEOS_finish_r(handle_);
  proj_context_destroy(proj_);
}

GeomPtr GeoThread::Read(std::string_view wkb) {
  return GeomPtr(GEOSWKBReader_read_r(
      handle_, reader_, reinterpret_cast<const unsigned char*>(wkb.data()), wkb.size()));
}

bool GeoThread::Write(const GEOSGeometry* g, int dims, ColumnBuilder* out) {
  GEOSWKBWriter_setOutputDimension_r(handle_, writer_, dims);
  size_t size = 0;
  unsigned char* bytes = GEOSWKBWriter_write_r(handle_, writer_, g, &size);
  if (bytes == nullptr) return false;
  out->AppendString(std::string_view(reinterpret_cast<const char*>(bytes), size));
  GEOSFree_r(handle_, bytes);
  return true;
}

std::string GeoThread::TakeError(std::string_view fallback) {
  std::string e = last_error_.empty() ? std::string(fallback) : std::move(last_error_);
  last_error_.clear();
  return e;
}

Result<const GEOSPreparedGeometry*> GeoThread::Prepared(const std::string& wkt) {
  auto it = prepared_.find(wkt);
  if (it != prepared_.end()) return it->second.prepared;
  // Through our reader, so that EWKT (SRID=3857;POLYGON ...) — what sluice writes — is taken
  // too, with its SRID.
  std::string ewkb;
  SLUICE_RETURN_NOT_OK(io::geom::WktToEwkb(wkt, 0, &ewkb));
  GeomPtr g = Read(ewkb);
  if (g == nullptr) return Status::Invalid("not a WKT geometry: {}", TakeError());
  const GEOSPreparedGeometry* prepared = GEOSPrepare_r(handle_, g.get());
  if (prepared == nullptr) return Status::Invalid("cannot prepare the geometry: {}", TakeError());
  prepared_[wkt] = {std::move(g), prepared};
  return prepared;
}

Result<PJ*> GeoThread::Transformation(const std::string& from, const std::string& to) {
  auto [it, added] = transforms_.try_emplace({from, to});
  Transform& t = it->second;
  if (added) {
    PJ* raw = proj_create_crs_to_crs(proj_, from.c_str(), to.c_str(), nullptr);
    if (raw == nullptr) {
      t.error = fmt::format("PROJ cannot transform from {} to {}: {}", from, to, ProjError());
    } else {
      // x = longitude, y = latitude, whatever order the CRS's definition lists its axes in.
      t.pj = proj_normalize_for_visualization(proj_, raw);
      proj_destroy(raw);
      if (t.pj == nullptr) {
        t.error = fmt::format("PROJ cannot transform from {} to {}: {}", from, to, ProjError());
      }
    }
  }
  if (t.pj == nullptr) return Status::Invalid("{}", t.error);
  return t.pj;
}

std::string GeoThread::ProjError() const {
  const int err = proj_context_errno(proj_);
  const char* text = err != 0 ? proj_context_errno_string(proj_, err) : nullptr;
  return text != nullptr ? text : "unknown CRS";
}

Result<int> EpsgCodeOf(const std::string& crs) {
  GeoThread& geo = GeoThread::Get();
  PJ* pj = proj_create(geo.proj(), crs.c_str());
  if (pj == nullptr) {
    // PROJ's message for a code its database lacks is "Unknown error (code 4096)".
    const std::string why = geo.ProjError();
    return Status::Invalid(
        "PROJ does not know the CRS '{}'{} (give an EPSG code such as "
        "EPSG:4326, a WKT or a PROJ string)",
        crs, why.starts_with("Unknown error") ? "" : ": " + why);
  }
  int code = 0;
  if (!proj_is_crs(pj)) {
    proj_destroy(pj);
    return Status::Invalid("'{}' is not a coordinate reference system", crs);
  }
  const char* auth = proj_get_id_auth_name(pj, 0);
  const char* id = proj_get_id_code(pj, 0);
  if (auth != nullptr && id != nullptr && std::string_view(auth) == "EPSG") code = std::atoi(id);
  proj_destroy(pj);
  return code;
}

}  // namespace sluice::geo
