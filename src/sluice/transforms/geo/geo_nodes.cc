// The geo transforms' registration: their option schemas (which drive YAML validation,
// `sluice nodes` and docs/nodes.md) and the options they share.

#include "sluice/transforms/geo/geo.h"
#include "sluice/transforms/geo/geo_internal.h"

namespace sluice::geo {

Result<CommonConfig> ReadCommon(const NodeOptions& o, bool has_column) {
  CommonConfig c;
  c.column = has_column ? StringOr(o, "column", "geometry") : "";
  if (has_column && c.column.empty()) return o.ErrorAt("column", "must name a geometry column");
  c.id_column = StringOr(o, "id_column", "");
  const std::string on_error = StringOr(o, "on_error", "fail");
  if (on_error == "skip") {
    c.on_error = OnError::kSkip;
  } else if (on_error == "dead_letter") {
    c.on_error = OnError::kDeadLetter;
  } else if (on_error != "fail") {
    return o.ErrorAt("on_error",
                     fmt::format("must be fail, skip or dead_letter; got '{}'", on_error));
  }
  c.validate = BoolOr(o, "validate", false);
  return c;
}

Result<std::unique_ptr<Expr>> ReadExpr(const NodeOptions& o, const std::string& name) {
  if (!o.Has(name)) return o.ErrorAt(name, "is required");
  auto e = ParseExpr(o.GetString(name));
  if (!e.ok()) return o.ErrorAt(name, e.status().message());
  return std::move(*e);
}

namespace {

/// Return `own` options followed by those every geo transform has.
OptionSchema WithCommon(OptionSchema own, bool column = true, bool validate = true) {
  OptionSchema all;
  if (column) {
    all.push_back({"column",
                   OptionType::kString,
                   "geometry",
                   "The geometry column (WKB or EWKB; its SRID is kept).",
                   false,
                   {}});
  }
  for (auto& o : own) all.push_back(std::move(o));
  all.push_back({"on_error",
                 OptionType::kEnum,
                 "fail",
                 "A row whose geometry cannot be read or processed fails the run (fail), is "
                 "dropped and counted (skip), or goes to the `<id>.dead_letter` output with the "
                 "error (dead_letter). Always counted in geometry_errors.",
                 false,
                 {"fail", "skip", "dead_letter"}});
  all.push_back({"id_column",
                 OptionType::kString,
                 "",
                 "A column whose value error messages and dead letters quote with the row.",
                 false,
                 {}});
  if (validate) {
    all.push_back({"validate",
                   OptionType::kBool,
                   "false",
                   "Check each geometry with GEOS's isValid first: an invalid one (a bow-tie "
                   "polygon) follows on_error.",
                   false,
                   {}});
  }
  return all;
}

OptionSpec AsOption(const std::string& fallback, const std::string& doc) {
  return {"as", OptionType::kString, fallback, doc, false, {}};
}

const char* kAsGeometry = "The output geometry column (default: replace `column`).";

/// `make`, once GEOS and PROJ are open: a node made without them is an error naming the
/// package to install, not a crash at its first geometry.
TransformFactory Loaded(Result<std::unique_ptr<Transform>> (*make)(const NodeOptions&)) {
  return [make](const NodeOptions& options) -> Result<std::unique_ptr<Transform>> {
    SLUICE_RETURN_NOT_OK(LoadGeoLibraries());
    return make(options);
  };
}

}  // namespace

void RegisterGeoNodes(NodeRegistry* registry) {
  registry->AddTransform(
      "buffer",
      "Replace each geometry by its buffer: the area within a distance of it (GEOS), in the "
      "geometry's units.",
      WithCommon({
          {"distance",
           OptionType::kFloat,
           "",
           "The buffer distance (negative shrinks polygons). Give this or distance_expr.",
           false,
           {}},
          {"distance_expr",
           OptionType::kExpr,
           "",
           "A numeric expression over the row, e.g. `radius_m * 2`; a null distance gives a "
           "null geometry.",
           false,
           {}},
          {"quadrant_segments",
           OptionType::kInt,
           "8",
           "Segments per quarter circle of round caps and joins (1..1000).",
           false,
           {}},
          {"cap_style",
           OptionType::kEnum,
           "round",
           "The ends of lines (a point's buffer is a circle only with round).",
           false,
           {"round", "flat", "square"}},
          {"join_style",
           OptionType::kEnum,
           "round",
           "The corners of lines and polygons.",
           false,
           {"round", "mitre", "bevel"}},
          {"mitre_limit",
           OptionType::kFloat,
           "5",
           "With join_style mitre: how far a corner may reach, in distances.",
           false,
           {}},
          AsOption("", kAsGeometry),
      }),
      Loaded(&MakeBuffer), /*stateless=*/true);
  registry->AddTransform(
      "simplify", "Simplify each geometry (Douglas-Peucker) to within a distance tolerance.",
      WithCommon({
          {"tolerance",
           OptionType::kFloat,
           "",
           "The largest distance a vertex may move, in the geometry's units.",
           true,
           {}},
          {"preserve_topology",
           OptionType::kBool,
           "true",
           "Keep polygons valid (no self-intersections, holes inside shells); false is faster "
           "and may collapse or invalidate them.",
           false,
           {}},
          AsOption("", kAsGeometry),
      }),
      Loaded(&MakeSimplify), /*stateless=*/true);
  registry->AddTransform("centroid", "Replace each geometry by its centroid (a point).",
                         WithCommon({AsOption("", kAsGeometry)}), Loaded(&MakeCentroid),
                         /*stateless=*/true);
  registry->AddTransform(
      "make_valid",
      "Repair invalid geometries (a bow-tie polygon becomes two triangles); valid ones pass "
      "unchanged.",
      WithCommon({AsOption("", kAsGeometry)}, /*column=*/true, /*validate=*/false),
      Loaded(&MakeMakeValid),
      /*stateless=*/true);
  registry->AddTransform(
      "area", "Add a float64 column: each geometry's area, in the square of its units.",
      WithCommon({AsOption("area", "The added column.")}), Loaded(&MakeArea), /*stateless=*/true);
  registry->AddTransform(
      "length",
      "Add a float64 column: each geometry's length (the perimeter of polygons), in its units.",
      WithCommon({AsOption("length", "The added column.")}), Loaded(&MakeLength),
      /*stateless=*/true);
  registry->AddTransform(
      "is_valid", "Add a bool column: whether each geometry is valid (OGC rules, GEOS).",
      WithCommon({AsOption("is_valid", "The added bool column."),
                  {"reason_as",
                   OptionType::kString,
                   "",
                   "Also add a string column with why a geometry is invalid, e.g. "
                   "`Self-intersection[1 1]` (null when valid).",
                   false,
                   {}}},
                 /*column=*/true, /*validate=*/false),
      Loaded(&MakeIsValid), /*stateless=*/true);
  OptionSchema box;
  for (const char* name : {"xmin", "ymin", "xmax", "ymax"}) {
    box.push_back({name,
                   OptionType::kFloat,
                   "",
                   fmt::format("The box's {} (in the geometries' coordinates).", name),
                   true,
                   {}});
  }
  registry->AddTransform("bbox_filter",
                         "Keep the rows whose geometry's bounding box meets a box (edges "
                         "included); null and empty geometries are dropped.",
                         WithCommon(std::move(box)), Loaded(&MakeBboxFilter), /*stateless=*/true);
  registry->AddTransform(
      "intersects",
      "Keep the rows whose geometry intersects a fixed geometry; null geometries are dropped.",
      WithCommon({{"wkt",
                   OptionType::kString,
                   "",
                   "The geometry, as WKT in the rows' coordinates, e.g. `POLYGON((0 0, 10 0, "
                   "10 10, 0 10, 0 0))`.",
                   true,
                   {}}}),
      Loaded(&MakeIntersects), /*stateless=*/true);
  registry->AddTransform(
      "reproject",
      "Transform each geometry's coordinates to another CRS (PROJ; x = longitude or easting); "
      "the SRID becomes the target's EPSG code.",
      WithCommon({
          {"to", OptionType::kString, "", "The target CRS, e.g. EPSG:3857.", true, {}},
          {"from",
           OptionType::kString,
           "",
           "The source CRS (default: each geometry's SRID, as EPSG:<srid>; a geometry without "
           "one is then an error).",
           false,
           {}},
          AsOption("", kAsGeometry),
      }),
      Loaded(&MakeReproject), /*stateless=*/true);
  registry->AddTransform(
      "dissolve",
      "Union the geometries of each group once the input ends: one row per group with its "
      "keys, the union and the number of rows.",
      WithCommon({
          {"group_by",
           OptionType::kStringList,
           "",
           "Key columns: one output row per key. Empty: one row for all.",
           false,
           {}},
          {"count_as",
           OptionType::kString,
           "count",
           "The int64 column of each group's row count (null geometries included).",
           false,
           {}},
      }),
      Loaded(&MakeDissolve), /*stateless=*/false);
  registry->AddTransform(
      "make_point", "Add a point geometry (EWKB) made of two numbers of each row.",
      WithCommon(
          {
              {"x",
               OptionType::kExpr,
               "",
               "The x (longitude) of each point: a column or a numeric expression.",
               true,
               {}},
              {"y",
               OptionType::kExpr,
               "",
               "The y (latitude): a column or an expression.",
               true,
               {}},
              {"srid", OptionType::kInt, "4326", "The points' SRID (0: none).", false, {}},
              AsOption("geometry", "The added (or replaced) geometry column."),
          },
          /*column=*/false, /*validate=*/false),
      Loaded(&MakeMakePoint), /*stateless=*/true);
}

}  // namespace sluice::geo
