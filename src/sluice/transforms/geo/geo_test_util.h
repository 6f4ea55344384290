#pragma once

// Helpers of the geo transforms' unit tests: geometries from WKT, a transform run on batches,
// and the geometries it emitted read back with GEOS.

#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/engine/registry.h"
#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/geo/geo.h"
#include "sluice/transforms/geo/geo_context.h"

namespace sluice::geo::testing {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using J = nlohmann::json;

inline const NodeRegistry& Registry() {
  static const NodeRegistry* registry = [] {
    auto* r = new NodeRegistry();
    RegisterGeoNodes(r);
    return r;
  }();
  return *registry;
}

/// Return the EWKB of `wkt` with `srid` (0: none), as GEOS writes it.
inline std::string Ewkb(const std::string& wkt, int srid = 4326) {
  GeoThread& geo = GeoThread::Get();
  GEOSWKTReader* reader = GEOSWKTReader_create_r(geo.handle());
  GeomPtr g(GEOSWKTReader_read_r(geo.handle(), reader, wkt.c_str()));
  GEOSWKTReader_destroy_r(geo.handle(), reader);
  EXPECT_NE(g, nullptr) << wkt;
  if (g == nullptr) return {};
  GEOSSetSRID_r(geo.handle(), g.get(), srid);
  ColumnBuilder b(TypeId::kGeometry);
  geo.Write(g.get(), GEOSGeom_getCoordinateDimension_r(geo.handle(), g.get()), &b);
  return std::string(b.Finish().GetView(0));
}

/// Return the geometry of EWKB bytes (which must parse).
inline GeomPtr Parse(std::string_view ewkb) {
  GeomPtr g = GeoThread::Get().Read(ewkb);
  EXPECT_NE(g, nullptr);
  return g;
}

inline double Area(std::string_view ewkb) {
  double a = -1;
  GeomPtr g = Parse(ewkb);
  if (g != nullptr) GEOSArea_r(GeoThread::Get().handle(), g.get(), &a);
  return a;
}

inline int Srid(std::string_view ewkb) {
  GeomPtr g = Parse(ewkb);
  return g == nullptr ? -1 : GEOSGetSRID_r(GeoThread::Get().handle(), g.get());
}

/// Return `ewkb` as WKT with `decimals` digits after the point (trailing zeros trimmed).
inline std::string Wkt(std::string_view ewkb, int decimals = 6) {
  GeoThread& geo = GeoThread::Get();
  GeomPtr g = Parse(ewkb);
  if (g == nullptr) return "<unparsable>";
  GEOSWKTWriter* w = GEOSWKTWriter_create_r(geo.handle());
  GEOSWKTWriter_setRoundingPrecision_r(geo.handle(), w, decimals);
  GEOSWKTWriter_setTrim_r(geo.handle(), w, 1);
  GEOSWKTWriter_setOutputDimension_r(geo.handle(), w, 3);
  char* text = GEOSWKTWriter_write_r(geo.handle(), w, g.get());
  std::string out = text;
  GEOSFree_r(geo.handle(), text);
  GEOSWKTWriter_destroy_r(geo.handle(), w);
  return out;
}

/// A batch of (id int64, geometry) rows; an empty string is a null geometry.
inline BatchPtr Features(const std::vector<std::pair<int64_t, std::string>>& rows) {
  ColumnBuilder id(TypeId::kInt64), geometry(TypeId::kGeometry);
  for (const auto& [i, g] : rows) {
    id.AppendInt64(i);
    if (g.empty()) {
      geometry.AppendNull();
    } else {
      geometry.AppendString(g);
    }
  }
  return Batch::MakeUnchecked(MakeSchema({{"id", TypeId::kInt64}, {"geometry", TypeId::kGeometry}}),
                              {id.Finish(), geometry.Finish()}, static_cast<int64_t>(rows.size()));
}

/// One geo transform of type `type`, opened on a context of its own — or, given `node_stats`,
/// as instance `instance` of a node whose stats those are.
struct Harness {
  Harness(const std::string& type, J options, MemoryBudget* memory = nullptr,
          NodeStats* node_stats = nullptr, int instance = 0)
      : ctx("g", type, node_stats != nullptr ? node_stats : &stats, &cancelled, false) {
    ctx.set_instance(instance);
    ctx.set_memory(memory);
    const NodeTypeInfo* info = Registry().Find(type);
    EXPECT_NE(info, nullptr) << type;
    auto made = info->make_transform(NodeOptions::ForTest("g", std::move(options), type));
    status = made.status();
    if (!made.ok()) return;
    t = std::move(*made);
    status = t->Open(&ctx);
  }

  /// Bind to `batch`'s schema and process it; the output rows collect in `out`.
  Status Run(const BatchPtr& batch) {
    auto bound = t->Bind({batch->schema()});
    if (!bound.ok()) return bound.status();
    schema = *bound;
    return t->Process(batch, 0, &out);
  }

  /// Return the value of column `name` in every output row (string views of variable-width
  /// columns; null as "null"), in order.
  std::vector<std::string> Strings(const std::string& name) const {
    std::vector<std::string> values;
    for (const auto& b : out.rows) {
      const Column* c = b->GetColumn(name);
      EXPECT_NE(c, nullptr) << name;
      if (c == nullptr) return values;
      for (int64_t r = 0; r < b->num_rows(); ++r) {
        values.push_back(c->IsNull(r) ? "null" : std::string(c->GetView(r)));
      }
    }
    return values;
  }
  std::vector<int64_t> Ids() const {
    std::vector<int64_t> ids;
    for (const auto& b : out.rows) {
      for (int64_t r = 0; r < b->num_rows(); ++r) ids.push_back(b->GetColumn("id")->GetInt64(r));
    }
    return ids;
  }
  int64_t Counter(const std::string& name) const {
    const auto counters = stats.Counters();
    auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }

  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx;
  std::unique_ptr<Transform> t;
  SchemaPtr schema;
  Status status;
  ::sluice::testing::CollectingEmitter out;
};

}  // namespace sluice::geo::testing
