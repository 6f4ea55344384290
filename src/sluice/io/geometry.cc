#include "sluice/io/geometry.h"

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "sluice/io/geometry_internal.h"
#include "sluice/io/text_internal.h"

namespace sluice::io::geom {

namespace {

constexpr uint32_t kFlagZ = 0x80000000u;
constexpr uint32_t kFlagM = 0x40000000u;
constexpr uint32_t kFlagSrid = 0x20000000u;
constexpr int kMaxDepth = 32;  // collections inside collections

std::string_view TypeName(uint32_t type) {
  switch (type) {
    case kPoint:
      return "Point";
    case kLineString:
      return "LineString";
    case kPolygon:
      return "Polygon";
    case kMultiPoint:
      return "MultiPoint";
    case kMultiLineString:
      return "MultiLineString";
    case kMultiPolygon:
      return "MultiPolygon";
    case kGeometryCollection:
      return "GeometryCollection";
  }
  return "?";
}

std::string_view WktName(uint32_t type) {
  switch (type) {
    case kPoint:
      return "POINT";
    case kLineString:
      return "LINESTRING";
    case kPolygon:
      return "POLYGON";
    case kMultiPoint:
      return "MULTIPOINT";
    case kMultiLineString:
      return "MULTILINESTRING";
    case kMultiPolygon:
      return "MULTIPOLYGON";
    case kGeometryCollection:
      return "GEOMETRYCOLLECTION";
  }
  return "?";
}

// Reads (E)WKB, each geometry in its own byte order, checking every length against what is
// left before trusting it.
class Cursor {
 public:
  explicit Cursor(std::string_view b) : begin_(b.data()), p_(b.data()), end_(b.data() + b.size()) {}

  size_t offset() const { return static_cast<size_t>(p_ - begin_); }
  size_t left() const { return static_cast<size_t>(end_ - p_); }

  Status Need(size_t n, std::string_view what) const {
    if (n <= left()) return Status::OK();
    return Status::Invalid("truncated at byte {}: {} needs {} bytes, {} left", offset(), what, n,
                           left());
  }
  uint8_t U8() { return static_cast<uint8_t>(*p_++); }
  /// The `n` bytes `skip` bytes ahead, without moving (the caller checked they are there).
  std::string_view Peek(size_t skip, size_t n) const { return std::string_view(p_ + skip, n); }
  uint32_t U32(bool little) {
    uint32_t v;
    std::memcpy(&v, p_, 4);
    p_ += 4;
    return little == (std::endian::native == std::endian::little) ? v : __builtin_bswap32(v);
  }
  double F64(bool little) {
    uint64_t v;
    std::memcpy(&v, p_, 8);
    p_ += 8;
    if (little != (std::endian::native == std::endian::little)) v = __builtin_bswap64(v);
    return std::bit_cast<double>(v);
  }

 private:
  const char* begin_;
  const char* p_;
  const char* end_;
};

// Where a geometry sits, which decides how its text starts: at the top or in a collection it
// names its type; inside a Multi* only its coordinates are written.
enum class Place : uint8_t { kTop, kInCollection, kInMulti };

// Writes what a walk reads, as GeoJSON or WKT (or nothing, to only check).
struct TextOut {
  enum class Kind : uint8_t { kNone, kGeoJson, kWkt } kind;
  std::string* out;
  int dims = 2;  // of the geometry being written
  bool has_m = false;

  void Append(std::string_view s) {
    if (kind != Kind::kNone) out->append(s);
  }
  void Open() { Append(kind == Kind::kGeoJson ? "[" : "("); }
  void Close() { Append(kind == Kind::kGeoJson ? "]" : ")"); }
  void Sep() { Append(kind == Kind::kGeoJson ? "," : ", "); }
  Status Number(double v) {
    if (kind == Kind::kGeoJson && !std::isfinite(v)) {
      return Status::Invalid("a coordinate is {}, which GeoJSON cannot hold", v);
    }
    char buf[io::internal::kMaxNumberChars];
    out->append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
    return Status::OK();
  }
  Status Position(const double* c) {
    if (kind == Kind::kNone) return Status::OK();
    // GeoJSON has no M: write x, y and z only.
    const int n = kind == Kind::kGeoJson ? (has_m ? dims - 1 : dims) : dims;
    if (kind == Kind::kGeoJson) out->push_back('[');
    for (int i = 0; i < n; ++i) {
      if (i > 0) out->push_back(kind == Kind::kGeoJson ? ',' : ' ');
      SLUICE_RETURN_NOT_OK(Number(c[i]));
    }
    if (kind == Kind::kGeoJson) out->push_back(']');
    return Status::OK();
  }
};

class Walker {
 public:
  Walker(std::string_view wkb, TextOut* out) : c_(wkb), out_(out) {}

  Status Top(EwkbInfo* info, bool with_srid) {
    size_t srid_at = 0;
    if (out_->kind == TextOut::Kind::kWkt && with_srid) srid_at = out_->out->size();
    SLUICE_RETURN_NOT_OK(Geometry(Place::kTop, 0, 0, info));
    if (c_.left() != 0) {
      return Status::Invalid("{} bytes after the geometry's end at byte {}", c_.left(),
                             c_.offset());
    }
    if (out_->kind == TextOut::Kind::kWkt && with_srid && info->srid != 0) {
      out_->out->insert(srid_at, fmt::format("SRID={};", info->srid));
    }
    return Status::OK();
  }

 private:
  // Reads one geometry; `expect` is the element type a Multi* requires (0: any).
  Status Geometry(Place place, uint32_t expect, int depth, EwkbInfo* info) {
    if (depth > kMaxDepth)
      return Status::Invalid("collections nested more than {} deep", kMaxDepth);
    SLUICE_RETURN_NOT_OK(c_.Need(5, "a geometry header"));
    const size_t at = c_.offset();
    const uint8_t order = c_.U8();
    if (order > 1) return Status::Invalid("bad byte order {} at byte {}", order, at);
    const bool little = order == 1;
    uint32_t raw = c_.U32(little);
    bool z = (raw & kFlagZ) != 0, m = (raw & kFlagM) != 0;
    int32_t srid = 0;
    if ((raw & kFlagSrid) != 0) {
      SLUICE_RETURN_NOT_OK(c_.Need(4, "an SRID"));
      srid = static_cast<int32_t>(c_.U32(little));
    }
    raw &= 0x0fffffffu;
    const uint32_t iso = raw / 1000;
    const uint32_t type = raw % 1000;
    if (iso > 3 || type < kPoint || type > kGeometryCollection) {
      return Status::Invalid("unsupported geometry type {} at byte {}", raw, at);
    }
    z = z || iso == 1 || iso == 3;
    m = m || iso == 2 || iso == 3;
    if (depth > 0 && (z != parent_z_ || m != parent_m_)) {
      // PostGIS refuses it too ("can not mix dimensionality"), and no text form could say it.
      return Status::Invalid("a {}{} inside a {} geometry at byte {}: dimensions mixed",
                             TypeName(type),
                             z && m ? " ZM"
                             : z    ? " Z"
                             : m    ? " M"
                                    : "",
                             parent_z_ && parent_m_ ? "ZM"
                             : parent_z_            ? "Z"
                             : parent_m_            ? "M"
                                                    : "2D",
                             at);
    }
    if (expect != 0 && type != expect) {
      return Status::Invalid("a {} inside a Multi{} at byte {}", TypeName(type), TypeName(expect),
                             at);
    }
    if (depth == 0) *info = {static_cast<GeometryType>(type), srid, z, m};
    little_ = little;  // the geometry's own counts and coordinates; its elements say their own
    out_->dims = 2 + (z ? 1 : 0) + (m ? 1 : 0);
    out_->has_m = m;
    if (place != Place::kInMulti) Header(type, z, m);
    parent_z_ = z;  // what the elements must have (set after the check: they are at depth + 1)
    parent_m_ = m;
    SLUICE_RETURN_NOT_OK(Body(type, depth));
    if (out_->kind == TextOut::Kind::kGeoJson && place != Place::kInMulti) out_->Append("}");
    return Status::OK();
  }

  Status Body(uint32_t type, int depth) {
    const int dims = out_->dims;
    switch (type) {
      case kPoint:
        return Point(dims);
      case kLineString:
        return Positions(dims, "a LineString");
      case kPolygon: {
        SLUICE_RETURN_NOT_OK(c_.Need(4, "a ring count"));
        const uint32_t rings = c_.U32(little_);
        SLUICE_RETURN_NOT_OK(c_.Need(size_t{rings} * 4, "the Polygon's rings"));
        if (rings == 0) return Empty();
        out_->Open();
        for (uint32_t r = 0; r < rings; ++r) {
          if (r > 0) out_->Sep();
          SLUICE_RETURN_NOT_OK(Positions(dims, "a ring"));
        }
        out_->Close();
        return Status::OK();
      }
      default:
        break;
    }
    // Multi* and collections: a count, then whole geometries with their own headers.
    SLUICE_RETURN_NOT_OK(c_.Need(4, "an element count"));
    const uint32_t n = c_.U32(little_);
    SLUICE_RETURN_NOT_OK(c_.Need(size_t{n} * 5, "the elements"));
    if (n == 0) return Empty();
    const uint32_t element = type == kGeometryCollection ? 0 : type - 3;
    const Place inner = type == kGeometryCollection ? Place::kInCollection : Place::kInMulti;
    out_->Open();
    for (uint32_t i = 0; i < n; ++i) {
      if (i > 0) out_->Sep();
      EwkbInfo unused;
      SLUICE_RETURN_NOT_OK(Geometry(inner, element, depth + 1, &unused));
    }
    out_->Close();
    return Status::OK();
  }

  void Header(uint32_t type, bool z, bool m) {
    if (out_->kind == TextOut::Kind::kGeoJson) {
      out_->Append(R"({"type":")");
      out_->Append(TypeName(type));
      out_->Append(type == kGeometryCollection ? R"(","geometries":)" : R"(","coordinates":)");
    } else if (out_->kind == TextOut::Kind::kWkt) {
      out_->Append(WktName(type));
      out_->Append(z && m ? " ZM " : z ? " Z " : m ? " M " : " ");
    }
  }

  // An empty geometry: GeoJSON's empty list, WKT's EMPTY.
  Status Empty() {
    out_->Append(out_->kind == TextOut::Kind::kGeoJson ? "[]" : "EMPTY");
    return Status::OK();
  }

  Status Point(int dims) {
    SLUICE_RETURN_NOT_OK(c_.Need(static_cast<size_t>(dims) * 8, "a Point"));
    double xyzm[4];
    for (int i = 0; i < dims; ++i) xyzm[i] = c_.F64(little_);
    if (std::isnan(xyzm[0]) && std::isnan(xyzm[1])) return Empty();  // PostGIS's POINT EMPTY
    if (out_->kind == TextOut::Kind::kGeoJson) return out_->Position(xyzm);  // [x,y]
    out_->Open();
    SLUICE_RETURN_NOT_OK(out_->Position(xyzm));
    out_->Close();
    return Status::OK();
  }

  // A LineString's body or one ring: a count, then the positions.
  // What PostGIS requires, checked here so that a bad value is refused where it is read, with
  // its position, instead of failing a whole COPY: a line of 2 or more positions (or none), a
  // ring of 4 or more whose last position is its first, byte for byte as PostGIS compares them.
  Status Positions(int dims, std::string_view what) {
    SLUICE_RETURN_NOT_OK(c_.Need(4, "a position count"));
    const size_t at = c_.offset();
    const uint32_t n = c_.U32(little_);
    SLUICE_RETURN_NOT_OK(c_.Need(size_t{n} * static_cast<size_t>(dims) * 8,
                                 fmt::format("{} of {} positions", what, n)));
    const bool ring = what == "a ring";
    if (ring && n < 4) {
      return Status::Invalid("a polygon ring of {} positions at byte {}; it needs 4 or more", n,
                             at);
    }
    if (!ring && n == 1) return Status::Invalid("a LineString of 1 position at byte {}", at);
    if (ring) {
      const std::string_view first = c_.Peek(0, 16);
      const std::string_view last = c_.Peek((size_t{n} - 1) * static_cast<size_t>(dims) * 8, 16);
      if (first != last) {
        return Status::Invalid(
            "a polygon ring that is not closed at byte {} (its last position "
            "is not its first)",
            at);
      }
    }
    if (n == 0) return Empty();
    out_->Open();
    double xyzm[4];
    for (uint32_t i = 0; i < n; ++i) {
      if (i > 0) out_->Sep();
      for (int d = 0; d < dims; ++d) xyzm[d] = c_.F64(little_);
      SLUICE_RETURN_NOT_OK(out_->Position(xyzm));
    }
    out_->Close();
    return Status::OK();
  }

  Cursor c_;
  TextOut* out_;
  bool little_ = true;
  bool parent_z_ = false;  // the dimensions of the geometry whose elements are being read
  bool parent_m_ = false;
};

}  // namespace

Result<EwkbInfo> InspectEwkb(std::string_view wkb) {
  TextOut out{TextOut::Kind::kNone, nullptr};
  EwkbInfo info;
  SLUICE_RETURN_NOT_OK(Walker(wkb, &out).Top(&info, false));
  return info;
}

Status AppendGeoJson(std::string_view wkb, std::string* out, EwkbInfo* info) {
  TextOut text{TextOut::Kind::kGeoJson, out};
  EwkbInfo unused;
  return Walker(wkb, &text).Top(info != nullptr ? info : &unused, false);
}

Status AppendWkt(std::string_view wkb, bool with_srid, std::string* out) {
  TextOut text{TextOut::Kind::kWkt, out};
  EwkbInfo info;
  return Walker(wkb, &text).Top(&info, with_srid);
}

bool IsGeoPackageBlob(std::string_view blob) { return blob.starts_with("GP"); }

Status GeoPackageToEwkb(std::string_view blob, std::string* out) {
  if (blob.size() < 8 || !IsGeoPackageBlob(blob)) {
    return Status::Invalid("not a GeoPackage geometry (too short, or no \"GP\" magic)");
  }
  const auto version = static_cast<uint8_t>(blob[2]);
  const auto flags = static_cast<uint8_t>(blob[3]);
  if (version != 0) return Status::Invalid("GeoPackage geometry version {} (expected 0)", version);
  if ((flags & 0x20) != 0) {
    return Status::Invalid("an extended GeoPackage geometry type (not standard WKB)");
  }
  static constexpr size_t kEnvelopeBytes[] = {0, 32, 48, 48, 64};
  const int envelope = (flags >> 1) & 7;
  if (envelope > 4) return Status::Invalid("GeoPackage envelope code {} (expected 0-4)", envelope);
  const size_t wkb_at = 8 + kEnvelopeBytes[envelope];
  if (blob.size() < wkb_at + 5) {
    return Status::Invalid("a GeoPackage geometry of {} bytes: its header needs {} and WKB",
                           blob.size(), wkb_at);
  }
  Cursor header(blob.substr(4, 4));
  int32_t srid = static_cast<int32_t>(header.U32((flags & 1) != 0));
  if (srid < 0) srid = 0;  // -1: undefined geographic; 0: undefined Cartesian
  // The WKB, with its top header rewritten as EWKB's (in the WKB's own byte order, which the
  // rest of its top geometry is in): the type with Z/M flags and the SRID flag, then the SRID.
  const std::string_view wkb = blob.substr(wkb_at);
  SLUICE_ASSIGN_OR_RETURN(EwkbInfo info, InspectEwkb(wkb));
  Cursor top(wkb.substr(1, 4));
  const bool little = wkb[0] == 1;
  const uint32_t raw = top.U32(little);
  if ((raw & kFlagSrid) != 0) return Status::Invalid("EWKB inside a GeoPackage geometry");
  uint32_t type = static_cast<uint32_t>(info.type) | (info.has_z ? kFlagZ : 0) |
                  (info.has_m ? kFlagM : 0) | (srid != 0 ? kFlagSrid : 0);
  const auto put32 = [&](uint32_t v) {
    if (little != (std::endian::native == std::endian::little)) v = __builtin_bswap32(v);
    out->append(reinterpret_cast<const char*>(&v), 4);
  };
  out->push_back(wkb[0]);
  put32(type);
  if (srid != 0) put32(static_cast<uint32_t>(srid));
  out->append(wkb.substr(5));
  return Status::OK();
}

}  // namespace sluice::io::geom
