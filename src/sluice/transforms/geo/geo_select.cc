// The geo filters (bbox_filter, intersects), reproject and make_point.

#include <cmath>

#include "sluice/io/geometry.h"
#include "sluice/transforms/geo/ewkb.h"
#include "sluice/transforms/geo/geo_internal.h"

namespace sluice::geo {

namespace {

struct Box {
  double xmin = 0, ymin = 0, xmax = 0, ymax = 0;
};

/// Keep the rows whose geometry's bounding box meets `box` (edges included). Points are read
/// without GEOS; a null or empty geometry is dropped.
class BboxFilterTransform final : public GeoTransform {
 public:
  BboxFilterTransform(NodeOptions options, CommonConfig common, Box box)
      : GeoTransform(std::move(options), std::move(common)), box_(box) {}

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    Point2D p;
    if (ReadPoint2D(wkb, &p)) return Meets(p.x, p.y, p.x, p.y);
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    if (GEOSisEmpty_r(geo.handle(), g.get()) == 1) return RowOutcome::kDrop;
    double xmin, ymin, xmax, ymax;
    if (GEOSGeom_getExtent_r(geo.handle(), g.get(), &xmin, &ymin, &xmax, &ymax) != 1) {
      return GeosError(geo, "cannot compute the bounding box");
    }
    return Meets(xmin, ymin, xmax, ymax);
  }
  RowOutcome NullRow(int64_t r) override { return RowOutcome::kDrop; }
  std::string DropsRows() const override {
    return "keeps only the rows whose geometry's bounding box meets the box";
  }

 private:
  RowOutcome Meets(double xmin, double ymin, double xmax, double ymax) const {
    // Written so that NaN coordinates (an empty point) compare false: dropped.
    const bool meets =
        xmin <= box_.xmax && xmax >= box_.xmin && ymin <= box_.ymax && ymax >= box_.ymin;
    return meets ? RowOutcome::kKeep : RowOutcome::kDrop;
  }

  Box box_;
};

/// Keep the rows whose geometry intersects a fixed geometry, prepared once per thread.
class IntersectsTransform final : public GeoTransform {
 public:
  IntersectsTransform(NodeOptions options, CommonConfig common, std::string wkt)
      : GeoTransform(std::move(options), std::move(common)), wkt_(std::move(wkt)) {}

  Status BeginBatch(const Batch& batch) override {
    auto prepared = GeoThread::Get().Prepared(wkt_);
    if (!prepared.ok()) return options().ErrorAt("wkt", prepared.status().message());
    prepared_ = *prepared;
    std::string ewkb;
    if (io::geom::WktToEwkb(wkt_, 0, &ewkb).ok()) {
      auto info = io::geom::InspectEwkb(ewkb);
      if (info.ok()) shape_srid_ = info->srid;
    }
    return Status::OK();
  }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    // A shape in another CRS than the rows would silently match nothing.
    const int srid = GEOSGetSRID_r(geo.handle(), g.get());
    if (shape_srid_ != 0 && srid != 0 && srid != shape_srid_) {
      error_ = fmt::format(
          "the row's geometry is in EPSG:{}, `wkt` in EPSG:{}: reproject one of "
          "them",
          srid, shape_srid_);
      return RowOutcome::kError;
    }
    const char hit = GEOSPreparedIntersects_r(geo.handle(), prepared_, g.get());
    if (hit == 2) return GeosError(geo, "intersects failed");
    return hit == 1 ? RowOutcome::kKeep : RowOutcome::kDrop;
  }
  RowOutcome NullRow(int64_t r) override { return RowOutcome::kDrop; }
  std::string DropsRows() const override {
    return "keeps only the rows whose geometry intersects `wkt`";
  }

 private:
  std::string wkt_;
  const GEOSPreparedGeometry* prepared_ = nullptr;  // the current thread's, for this batch
  int shape_srid_ = 0;                              // from EWKT; 0: any
};

struct ReprojectConfig {
  std::string from;  ///< "" : each geometry's SRID.
  std::string to;
  int to_srid = 0;  ///< The SRID written: `to`'s EPSG code (0 when it has none).
  std::string as;
};

/// Transform each geometry's coordinates from one CRS to another with PROJ (x = longitude
/// or easting, y = latitude or northing). Z values are kept as they are.
class ReprojectTransform final : public GeoTransform {
 public:
  ReprojectTransform(NodeOptions options, CommonConfig common, ReprojectConfig c)
      : GeoTransform(std::move(options), std::move(common)), c_(std::move(c)) {}

  std::vector<Output> Outputs() const override { return {{c_.as, TypeId::kGeometry}}; }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    const GEOSContextHandle_t h = geo.handle();
    const int srid = GEOSGetSRID_r(h, g.get());
    if (c_.from.empty()) {
      if (srid == 0) {
        fatal_ = options().ErrorAt(
            "from", fmt::format("the geometry of {} has no SRID, and `from` is not set: set it "
                                "to the CRS the coordinates are in (e.g. EPSG:4326)",
                                RowName(r)));
        return RowOutcome::kError;
      }
      if (srid != from_srid_) {
        from_srid_ = srid;
        from_ = fmt::format("EPSG:{}", srid);
      }
    }
    if (c_.from.empty() && srid == c_.to_srid) {
      builders_[0].AppendString(wkb);  // already in the target CRS
      return RowOutcome::kKeep;
    }
    auto pj = geo.Transformation(c_.from.empty() ? from_ : c_.from, c_.to);
    if (!pj.ok()) {
      error_ = pj.status().message();
      return RowOutcome::kError;
    }
    Projection state{*pj, false};
    GeomPtr moved = geo.Own(GEOSGeom_transformXY_r(h, g.get(), &Project, &state));
    if (moved == nullptr || state.failed) {
      error_ = state.failed
                   ? fmt::format("PROJ cannot transform its coordinates from {} to {}: {}",
                                 c_.from.empty() ? from_ : c_.from, c_.to, ProjMessage(geo, *pj))
                   : fmt::format("reproject failed: {}", geo.TakeError());
      proj_errno_reset(*pj);
      return RowOutcome::kError;
    }
    if (!WriteGeometry(geo, moved.get(), c_.to_srid, Dimensions(geo, g.get()), &builders_[0])) {
      return RowOutcome::kError;
    }
    return RowOutcome::kKeep;
  }

 private:
  struct Projection {
    PJ* pj;
    bool failed;
  };
  static std::string ProjMessage(GeoThread& geo, PJ* pj) {
    const char* text = proj_context_errno_string(geo.proj(), proj_errno(pj));
    return text != nullptr ? text : "coordinates outside the CRS's domain";
  }
  static int Project(double* x, double* y, void* userdata) {
    auto* p = static_cast<Projection*>(userdata);
    PJ_COORD c = proj_coord(*x, *y, 0, 0);
    c = proj_trans(p->pj, PJ_FWD, c);
    if (!std::isfinite(c.xy.x) || !std::isfinite(c.xy.y)) {
      p->failed = true;
      return 0;
    }
    *x = c.xy.x;
    *y = c.xy.y;
    return 1;
  }

  ReprojectConfig c_;
  int from_srid_ = 0;  // the SRID from_ names
  std::string from_;   // "EPSG:<srid>" of the last geometry, without `from`
};

/// Add a point geometry made of two numeric expressions (or columns), with a fixed SRID.
class MakePointTransform final : public GeoTransform {
 public:
  MakePointTransform(NodeOptions options, CommonConfig common, std::unique_ptr<Expr> x,
                     std::unique_ptr<Expr> y, int32_t srid, std::string as)
      : GeoTransform(std::move(options), std::move(common)),
        x_(std::move(x)),
        y_(std::move(y)),
        srid_(srid),
        as_(std::move(as)) {}

  std::vector<Output> Outputs() const override { return {{as_, TypeId::kGeometry}}; }
  std::vector<NumberExpr> Exprs() const override { return {{"x", x_.get()}, {"y", y_.get()}}; }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    double x, y;
    if (!NumberAt(values_[0], r, &x) || !NumberAt(values_[1], r, &y)) {
      return RowOutcome::kKeep;  // a null coordinate: a null point
    }
    if (!std::isfinite(x) || !std::isfinite(y)) {
      error_ = fmt::format("the point ({}, {}) is not finite", x, y);
      return RowOutcome::kError;
    }
    scratch_.clear();
    io::geom::AppendEwkbPoint(x, y, srid_, &scratch_);
    builders_[0].AppendString(scratch_);
    return RowOutcome::kKeep;
  }

 private:
  std::unique_ptr<Expr> x_;
  std::unique_ptr<Expr> y_;
  int32_t srid_;
  std::string as_;
  std::string scratch_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeBboxFilter(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  Box box;
  for (const auto& [name, v] : {std::pair<const char*, double*>{"xmin", &box.xmin},
                                {"ymin", &box.ymin},
                                {"xmax", &box.xmax},
                                {"ymax", &box.ymax}}) {
    if (!o.Has(name)) return o.ErrorAt(name, "is required");
    *v = o.GetFloat(name);
    if (!std::isfinite(*v)) return o.ErrorAt(name, "must be a finite number");
  }
  if (box.xmin > box.xmax) return o.ErrorAt("xmax", "must not be less than xmin");
  if (box.ymin > box.ymax) return o.ErrorAt("ymax", "must not be less than ymin");
  return std::unique_ptr<Transform>(
      std::make_unique<BboxFilterTransform>(o, std::move(common), box));
}

Result<std::unique_ptr<Transform>> MakeIntersects(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  const std::string wkt = o.GetString("wkt");
  if (wkt.empty()) return o.ErrorAt("wkt", "is required: the geometry rows must intersect");
  auto prepared = GeoThread::Get().Prepared(wkt);  // checks it before the run
  if (!prepared.ok()) return o.ErrorAt("wkt", prepared.status().message());
  return std::unique_ptr<Transform>(
      std::make_unique<IntersectsTransform>(o, std::move(common), wkt));
}

Result<std::unique_ptr<Transform>> MakeReproject(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  ReprojectConfig c;
  c.to = o.GetString("to");
  if (c.to.empty()) return o.ErrorAt("to", "is required: the target CRS, e.g. EPSG:3857");
  auto to = EpsgCodeOf(c.to);
  if (!to.ok()) return o.ErrorAt("to", to.status().message());
  c.to_srid = *to;
  c.from = o.GetString("from");
  if (!c.from.empty()) {
    auto from = EpsgCodeOf(c.from);
    if (!from.ok()) return o.ErrorAt("from", from.status().message());
    auto pj = GeoThread::Get().Transformation(c.from, c.to);
    if (!pj.ok()) return o.ErrorAt("to", pj.status().message());
  }
  c.as = StringOr(o, "as", common.column);
  return std::unique_ptr<Transform>(
      std::make_unique<ReprojectTransform>(o, std::move(common), std::move(c)));
}

Result<std::unique_ptr<Transform>> MakeMakePoint(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o, /*has_column=*/false));
  SLUICE_ASSIGN_OR_RETURN(auto x, ReadExpr(o, "x"));
  SLUICE_ASSIGN_OR_RETURN(auto y, ReadExpr(o, "y"));
  const int64_t srid = IntOr(o, "srid", 4326);
  if (srid < 0 || srid > 999'999) return o.ErrorAt("srid", "must be 0..999999 (0: none)");
  std::string as = StringOr(o, "as", "geometry");
  if (as.empty()) return o.ErrorAt("as", "must not be empty");
  return std::unique_ptr<Transform>(std::make_unique<MakePointTransform>(
      o, std::move(common), std::move(x), std::move(y), static_cast<int32_t>(srid), std::move(as)));
}

}  // namespace sluice::geo
