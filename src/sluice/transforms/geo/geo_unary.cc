// The geo transforms that map each row's geometry to a value: buffer, simplify, centroid,
// make_valid (a geometry), area and length (a number), is_valid (a bool and a reason).

#include <algorithm>
#include <cmath>
#include <numbers>

#include "sluice/core/log.h"
#include "sluice/io/geometry.h"
#include "sluice/transforms/geo/ewkb.h"
#include "sluice/transforms/geo/geo_internal.h"

namespace sluice::geo {

namespace {

/// The name of a node's geometry output: `as`, or the input column it replaces.
std::string GeometryOutput(const NodeOptions& o, const CommonConfig& common) {
  return StringOr(o, "as", common.column);
}

struct BufferConfig {
  double distance = 0;
  std::unique_ptr<Expr> distance_expr;  ///< Instead of `distance`, evaluated per row.
  int quadrant_segments = 8;
  int cap = GEOSBUF_CAP_ROUND;
  int join = GEOSBUF_JOIN_ROUND;
  double mitre_limit = 5.0;
  std::string as;
};

/// Replace each geometry by the polygon of the points within `distance` of it. A 2-D point
/// with round caps (the common case) is buffered without GEOS, into the very bytes GEOS
/// would make (CircleTemplate); anything else goes through GEOSBufferWithParams_r.
class BufferTransform final : public GeoTransform {
 public:
  BufferTransform(NodeOptions options, CommonConfig common, BufferConfig c)
      : GeoTransform(std::move(options), std::move(common)),
        c_(std::move(c)),
        circle_(c_.quadrant_segments),
        step_(std::numbers::pi / 2 / c_.quadrant_segments) {}

  ~BufferTransform() override { ReleaseParams(); }

  std::vector<Output> Outputs() const override { return {{c_.as, TypeId::kGeometry}}; }
  std::vector<NumberExpr> Exprs() const override {
    if (c_.distance_expr == nullptr) return {};
    return {{"distance_expr", c_.distance_expr.get()}};
  }

  Status BeginBatch(const Batch& batch) override {
    // The parameters belong to a GEOS context; this call may run on another thread than the
    // last one.
    GeoThread& geo = GeoThread::Get();
    if (params_handle_ != geo.handle()) {
      ReleaseParams();
      params_handle_ = geo.handle();
      params_ = GEOSBufferParams_create_r(params_handle_);
      GEOSBufferParams_setQuadrantSegments_r(params_handle_, params_, c_.quadrant_segments);
      GEOSBufferParams_setEndCapStyle_r(params_handle_, params_, c_.cap);
      GEOSBufferParams_setJoinStyle_r(params_handle_, params_, c_.join);
      GEOSBufferParams_setMitreLimit_r(params_handle_, params_, c_.mitre_limit);
    }
    builders_[0].ReserveBytes(batch.num_rows() * static_cast<int64_t>(circle_.ewkb_size()));
    return Status::OK();
  }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    double d = c_.distance;
    if (!values_.empty()) {
      if (!NumberAt(values_[0], r, &d)) return RowOutcome::kKeep;  // a null distance: null
      if (!std::isfinite(d)) {
        error_ = fmt::format("distance_expr '{}' gave {}", c_.distance_expr->text, d);
        return RowOutcome::kError;
      }
    }
    if (!units_checked_) WarnAboutDegrees(wkb, d);
    Point2D p;
    if (c_.cap == GEOSBUF_CAP_ROUND && d > 0 && ReadPoint2D(wkb, &p) && std::isfinite(p.x) &&
        std::isfinite(p.y) && d * step_ > 1e-9 * std::max({1.0, std::fabs(p.x), std::fabs(p.y)})) {
      scratch_.clear();
      circle_.AppendEwkb(p.x, p.y, d, p.srid, &scratch_);
      builders_[0].AppendString(scratch_);
      return RowOutcome::kKeep;
    }
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    GeomPtr b = geo.Own(GEOSBufferWithParams_r(geo.handle(), g.get(), params_, d));
    if (b == nullptr) return GeosError(geo, "buffer failed");
    if (!WriteGeometry(geo, b.get(), GEOSGetSRID_r(geo.handle(), g.get()), 2, &builders_[0])) {
      return RowOutcome::kError;
    }
    return RowOutcome::kKeep;
  }

 private:
  // Once per node: a distance of more than one unit on a geographic CRS (EPSG 4000-4999: degrees)
  // is almost surely metres meant — 100 "metres" would be 100 degrees. Legal, so only a warning.
  void WarnAboutDegrees(std::string_view wkb, double d) {
    units_checked_ = true;
    auto info = io::geom::InspectEwkb(wkb);
    if (!info.ok() || info->srid < 4000 || info->srid > 4999 || std::fabs(d) <= 1) return;
    // Not per instance: a segment runs one on every worker.
    if (ctx_ != nullptr && !ctx_->stats()->Once("buffer: degrees")) return;
    Log(LogLevel::kWarn,
        "buffer: distance {} on geometries in EPSG:{}, whose units are degrees; to buffer by "
        "metres, reproject to a metric CRS first (a UTM zone)",
        d, info->srid);
  }

  void ReleaseParams() {
    if (params_ != nullptr) GEOSBufferParams_destroy_r(params_handle_, params_);
    params_ = nullptr;
  }

  BufferConfig c_;
  CircleTemplate circle_;
  // The angle between the circle's vertices. A circle whose vertices are too close to be told
  // apart at its coordinates' precision goes to GEOS, which drops repeated vertices (and
  // makes an empty polygon of a circle that collapses).
  double step_;
  GEOSContextHandle_t params_handle_ = nullptr;
  GEOSBufferParams* params_ = nullptr;  // made on params_handle_'s thread
  std::string scratch_;
  bool units_checked_ = false;
};

/// The operations that make one geometry of another: simplify, centroid, make_valid.
enum class UnaryOp : uint8_t { kSimplify, kSimplifyKeepTopology, kCentroid, kMakeValid };

class UnaryTransform final : public GeoTransform {
 public:
  UnaryTransform(NodeOptions options, CommonConfig common, UnaryOp op, std::string as,
                 double tolerance = 0)
      : GeoTransform(std::move(options), std::move(common)),
        op_(op),
        as_(std::move(as)),
        tolerance_(tolerance) {}

  std::vector<Output> Outputs() const override { return {{as_, TypeId::kGeometry}}; }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    const GEOSContextHandle_t h = geo.handle();
    int dims = Dimensions(geo, g.get());
    GEOSGeometry* made = nullptr;
    switch (op_) {
      case UnaryOp::kSimplify:
        made = GEOSSimplify_r(h, g.get(), tolerance_);
        break;
      case UnaryOp::kSimplifyKeepTopology:
        made = GEOSTopologyPreserveSimplify_r(h, g.get(), tolerance_);
        break;
      case UnaryOp::kCentroid:
        made = GEOSGetCentroid_r(h, g.get());
        dims = 2;
        break;
      case UnaryOp::kMakeValid:
        made = GEOSMakeValid_r(h, g.get());
        break;
    }
    GeomPtr result = geo.Own(made);
    if (result == nullptr) return GeosError(geo, fmt::format("{} failed", options().type()));
    if (!WriteGeometry(geo, result.get(), GEOSGetSRID_r(h, g.get()), dims, &builders_[0])) {
      return RowOutcome::kError;
    }
    return RowOutcome::kKeep;
  }

 private:
  UnaryOp op_;
  std::string as_;
  double tolerance_;
};

/// area and length: a float64 column of the geometry's area or length, in its units.
class MeasureTransform final : public GeoTransform {
 public:
  MeasureTransform(NodeOptions options, CommonConfig common, bool area, std::string as)
      : GeoTransform(std::move(options), std::move(common)), area_(area), as_(std::move(as)) {}

  std::vector<Output> Outputs() const override { return {{as_, TypeId::kFloat64}}; }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    double v = 0;
    const int ok =
        area_ ? GEOSArea_r(geo.handle(), g.get(), &v) : GEOSLength_r(geo.handle(), g.get(), &v);
    if (ok != 1) return GeosError(geo, area_ ? "area failed" : "length failed");
    builders_[0].AppendFloat64(v);
    return RowOutcome::kKeep;
  }

 private:
  bool area_;
  std::string as_;
};

/// is_valid: a bool column, and optionally the reason GEOS gives for an invalid geometry.
class IsValidTransform final : public GeoTransform {
 public:
  IsValidTransform(NodeOptions options, CommonConfig common, std::string as, std::string reason_as)
      : GeoTransform(std::move(options), std::move(common)),
        as_(std::move(as)),
        reason_as_(std::move(reason_as)) {}

  std::vector<Output> Outputs() const override {
    if (reason_as_.empty()) return {{as_, TypeId::kBool}};
    return {{as_, TypeId::kBool}, {reason_as_, TypeId::kString}};
  }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    char* reason = nullptr;
    GEOSGeometry* location = nullptr;
    const char valid = reason_as_.empty()
                           ? GEOSisValid_r(geo.handle(), g.get())
                           : GEOSisValidDetail_r(geo.handle(), g.get(), 0, &reason, &location);
    GeomPtr at = geo.Own(location);
    if (valid != 0 && valid != 1) return GeosError(geo, "cannot check validity");
    builders_[0].AppendBool(valid == 1);
    if (!reason_as_.empty()) {
      if (valid == 1) {
        builders_[1].AppendNull();
      } else {
        // As GEOSisValidReason words it: "Self-intersection[1.5 1.5]".
        double x = 0, y = 0;
        const bool has_at = at != nullptr && GEOSGeomGetX_r(geo.handle(), at.get(), &x) == 1 &&
                            GEOSGeomGetY_r(geo.handle(), at.get(), &y) == 1;
        builders_[1].AppendString(has_at ? fmt::format("{}[{} {}]", reason, x, y)
                                         : std::string(reason != nullptr ? reason : ""));
      }
    }
    if (reason != nullptr) GEOSFree_r(geo.handle(), reason);
    return RowOutcome::kKeep;
  }

 private:
  std::string as_;
  std::string reason_as_;
};

Result<int> ReadChoice(const NodeOptions& o, const std::string& name, const std::string& fallback,
                       const std::vector<std::pair<std::string, int>>& choices) {
  const std::string v = StringOr(o, name, fallback);
  std::string names;
  for (const auto& [text, value] : choices) {
    if (v == text) return value;
    names += (names.empty() ? "" : ", ") + text;
  }
  return o.ErrorAt(name, fmt::format("must be one of {}; got '{}'", names, v));
}

}  // namespace

Result<std::unique_ptr<Transform>> MakeBuffer(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  BufferConfig c;
  if (o.Has("distance") && o.Has("distance_expr")) {
    return o.ErrorAt("distance_expr", "give either `distance` or `distance_expr`, not both");
  }
  if (o.Has("distance_expr")) {
    SLUICE_ASSIGN_OR_RETURN(c.distance_expr, ReadExpr(o, "distance_expr"));
  } else if (o.Has("distance")) {
    c.distance = o.GetFloat("distance");
    if (!std::isfinite(c.distance)) return o.ErrorAt("distance", "must be a finite number");
  } else {
    return o.ErrorAt("distance", "is required (or give `distance_expr`, per row)");
  }
  const int64_t segments = IntOr(o, "quadrant_segments", 8);
  if (segments < 1 || segments > 1000) {
    return o.ErrorAt(
        "quadrant_segments",
        fmt::format("must be 1..1000 (segments per quarter circle); got {}", segments));
  }
  c.quadrant_segments = static_cast<int>(segments);
  SLUICE_ASSIGN_OR_RETURN(c.cap, ReadChoice(o, "cap_style", "round",
                                            {{"round", GEOSBUF_CAP_ROUND},
                                             {"flat", GEOSBUF_CAP_FLAT},
                                             {"square", GEOSBUF_CAP_SQUARE}}));
  SLUICE_ASSIGN_OR_RETURN(c.join, ReadChoice(o, "join_style", "round",
                                             {{"round", GEOSBUF_JOIN_ROUND},
                                              {"mitre", GEOSBUF_JOIN_MITRE},
                                              {"bevel", GEOSBUF_JOIN_BEVEL}}));
  c.mitre_limit = FloatOr(o, "mitre_limit", 5.0);
  if (!(c.mitre_limit > 0)) return o.ErrorAt("mitre_limit", "must be positive");
  c.as = GeometryOutput(o, common);
  return std::unique_ptr<Transform>(
      std::make_unique<BufferTransform>(o, std::move(common), std::move(c)));
}

Result<std::unique_ptr<Transform>> MakeSimplify(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  if (!o.Has("tolerance")) return o.ErrorAt("tolerance", "is required");
  const double tolerance = o.GetFloat("tolerance");
  if (!(tolerance >= 0) || !std::isfinite(tolerance)) {
    return o.ErrorAt("tolerance", "must be a finite number >= 0");
  }
  const UnaryOp op =
      BoolOr(o, "preserve_topology", true) ? UnaryOp::kSimplifyKeepTopology : UnaryOp::kSimplify;
  std::string as = GeometryOutput(o, common);
  return std::unique_ptr<Transform>(
      std::make_unique<UnaryTransform>(o, std::move(common), op, std::move(as), tolerance));
}

Result<std::unique_ptr<Transform>> MakeCentroid(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  std::string as = GeometryOutput(o, common);
  return std::unique_ptr<Transform>(
      std::make_unique<UnaryTransform>(o, std::move(common), UnaryOp::kCentroid, std::move(as)));
}

Result<std::unique_ptr<Transform>> MakeMakeValid(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  common.validate = false;  // invalid geometries are its input
  std::string as = GeometryOutput(o, common);
  return std::unique_ptr<Transform>(
      std::make_unique<UnaryTransform>(o, std::move(common), UnaryOp::kMakeValid, std::move(as)));
}

Result<std::unique_ptr<Transform>> MakeArea(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  return std::unique_ptr<Transform>(std::make_unique<MeasureTransform>(
      o, std::move(common), /*area=*/true, StringOr(o, "as", "area")));
}

Result<std::unique_ptr<Transform>> MakeLength(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  return std::unique_ptr<Transform>(std::make_unique<MeasureTransform>(
      o, std::move(common), /*area=*/false, StringOr(o, "as", "length")));
}

Result<std::unique_ptr<Transform>> MakeIsValid(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  common.validate = false;  // invalid geometries are what it reports
  std::string as = StringOr(o, "as", "is_valid");
  std::string reason_as = StringOr(o, "reason_as", "");
  if (as.empty()) return o.ErrorAt("as", "must not be empty");
  if (reason_as == as) return o.ErrorAt("reason_as", "must differ from `as`");
  return std::unique_ptr<Transform>(std::make_unique<IsValidTransform>(
      o, std::move(common), std::move(as), std::move(reason_as)));
}

}  // namespace sluice::geo
