#pragma once

// Helpers of the window transform's unit tests (window_test.cc, window_marks_test.cc): readings
// in, watermarks by hand, rows out as text.

#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <tuple>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sluice/engine/pipeline.h"
#include "sluice/testing/emitter.h"
#include "sluice/testing/matchers.h"
#include "sluice/transforms/aggregate.h"
#include "sluice/transforms/transforms.h"

namespace sluice::window_test {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

constexpr int64_t kMin = 60'000'000;  // one minute in µs
using J = nlohmann::json;

using Collector = ::sluice::testing::CollectingEmitter;

inline int64_t Counter(const NodeStats& stats, const std::string& name) {
  const auto counters = stats.Counters();
  auto it = counters.find(name);
  return it == counters.end() ? 0 : it->second;
}

inline double Gauge(const NodeStats& stats, const std::string& name) {
  const auto gauges = stats.Gauges();
  auto it = gauges.find(name);
  return it == gauges.end() ? -1 : it->second;
}

inline const NodeRegistry& Registry() {
  static const NodeRegistry* registry = [] {
    auto* r = new NodeRegistry();
    RegisterTransformNodes(r);
    return r;
  }();
  return *registry;
}

inline SchemaPtr ReadingSchema() {
  return MakeSchema({{"meter", TypeId::kString},
                     {"ts", TypeId::kTimestamp},
                     {"v", TypeId::kFloat64},
                     {"n", TypeId::kInt64}});
}

struct Reading {
  std::string meter;
  int64_t ts;
  double v;
  int64_t n;
};

inline BatchPtr Readings(const std::vector<Reading>& rows) {
  ColumnBuilder m(TypeId::kString), t(TypeId::kTimestamp), v(TypeId::kFloat64), n(TypeId::kInt64);
  for (const auto& r : rows) {
    m.AppendString(r.meter);
    t.AppendTimestamp(r.ts);
    v.AppendFloat64(r.v);
    n.AppendInt64(r.n);
  }
  std::vector<Column> cols;
  cols.push_back(m.Finish());
  cols.push_back(t.Finish());
  cols.push_back(v.Finish());
  cols.push_back(n.Finish());
  return Batch::MakeUnchecked(ReadingSchema(), std::move(cols), static_cast<int64_t>(rows.size()));
}

/// A window transform bound to ReadingSchema, opened on a context of its own — or, given
/// `node_stats`, as instance `instance` of a node whose stats those are.
struct Harness {
  explicit Harness(nlohmann::json options, MemoryBudget* memory = nullptr,
                   NodeStats* node_stats = nullptr, int instance = 0)
      : ctx("w", "window", node_stats != nullptr ? node_stats : &stats, &cancelled, false) {
    ctx.set_instance(instance);
    if (!options.contains("time")) options["time"] = "ts";
    if (!options.contains("group_by")) options["group_by"] = {"meter"};
    if (!options.contains("aggregates")) {
      options["aggregates"] = nlohmann::json::array({{{"cnt", "count()"}},
                                                     {{"total", "sum(v)"}},
                                                     {{"lo", "min(v)"}},
                                                     {{"hi", "max(v)"}},
                                                     {{"nsum", "sum(n)"}}});
    }
    ctx.set_memory(memory);
    const NodeTypeInfo* info = Registry().Find("window");
    auto made = info->make_transform(NodeOptions::ForTest("w", std::move(options), "window"));
    status = made.status();
    if (!made.ok()) return;
    t = std::move(*made);
    status = t->Open(&ctx);
    if (!status.ok()) return;
    auto bound = t->Bind({ReadingSchema()});
    status = bound.status();
    if (bound.ok()) schema = *bound;
  }

  Status Push(const std::vector<Reading>& rows) { return t->Process(Readings(rows), 0, &out); }
  Status Watermark(int64_t wm) { return t->OnWatermark(wm, &out); }

  /// Every row emitted so far as "meter@start-end: col=value ..." in emission order.
  std::vector<std::string> Lines(const std::vector<BatchPtr>& batches) const {
    std::vector<std::string> lines;
    for (const auto& b : batches) {
      for (int64_t r = 0; r < b->num_rows(); ++r) {
        std::string line;
        for (int c = 0; c < b->num_columns(); ++c) {
          const Column& col = b->column(c);
          line += c == 0 ? "" : " ";
          line += b->schema()->field(c).name + "=";
          if (col.IsNull(r)) {
            line += "null";
          } else if (col.type() == TypeId::kString) {
            line += std::string(col.GetView(r));
          } else if (col.type() == TypeId::kFloat64) {
            line += fmt::format("{}", col.GetFloat64(r));
          } else {
            int64_t v = col.GetInt64(r);
            line += col.type() == TypeId::kTimestamp ? fmt::format("{}m", v / kMin)
                                                     : fmt::format("{}", v);
          }
        }
        lines.push_back(line);
      }
    }
    return lines;
  }
  std::vector<std::string> Lines() const { return Lines(out.rows); }

  NodeStats stats;
  std::atomic<bool> cancelled{false};
  NodeContext ctx;
  std::unique_ptr<Transform> t;
  SchemaPtr schema;
  Status status;
  Collector out;
};

}  // namespace sluice::window_test
