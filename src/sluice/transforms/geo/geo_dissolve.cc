// The `dissolve` transform: the geometric union of each group's geometries, emitted once the
// input has ended — one row per group with its keys, the union and the group's row count.

#include <unordered_map>

#include "sluice/transforms/geo/geo_internal.h"
#include "sluice/transforms/group_key.h"

namespace sluice::geo {

namespace {

using transforms_internal::DecodeKey;
using transforms_internal::EncodeKey;
using transforms_internal::NoColumn;

/// The bytes of geometries held before the first union of what was read so far (see Compact),
/// or a quarter of the run's memory budget when that is less.
constexpr int64_t kCompactBytes = 64 << 20;
/// Rows per emitted batch.
constexpr int64_t kEmitRows = 4096;

struct DissolveConfig {
  std::vector<std::string> group_by;
  std::string count_as = "count";
};

class DissolveTransform final : public GeoTransform {
 public:
  DissolveTransform(NodeOptions options, CommonConfig common, DissolveConfig c)
      : GeoTransform(std::move(options), std::move(common)), c_(std::move(c)) {}

  Result<SchemaPtr> PlanOutput(const SchemaPtr& input, Plan* plan) override {
    std::vector<Field> fields;
    for (const auto& name : c_.group_by) {
      const int i = input->FieldIndex(name);
      if (i < 0) return options().ErrorAt("group_by", NoColumn(name, *input));
      fields.push_back(input->field(i));
      if (name == common().column || name == c_.count_as) {
        return options().ErrorAt("group_by", fmt::format("'{}' is also the geometry or count "
                                                         "column of the output",
                                                         name));
      }
    }
    if (c_.count_as == common().column) {
      return options().ErrorAt("count_as", "must differ from the geometry column's name");
    }
    fields.push_back({common().column, TypeId::kGeometry, true});
    fields.push_back({c_.count_as, TypeId::kInt64, false});
    SchemaPtr output = MakeSchema(std::move(fields));
    if (output_ != nullptr && *output != *output_) {
      return Status::Invalid("node '{}': the input's columns changed during the run",
                             options().id());
    }
    output_ = output;
    return output;
  }

  bool BatchLocal() const override { return false; }  // it keeps groups until Finish

  Status Open(NodeContext* ctx) override {
    SLUICE_RETURN_NOT_OK(GeoTransform::Open(ctx));
    const int64_t limit = ctx->memory_limit();
    compact_at_ = limit > 0 ? std::min(kCompactBytes, limit / 4) : kCompactBytes;
    return Status::OK();
  }

  Status BeginBatch(const Batch& batch) override {
    key_cols_.clear();
    for (const auto& name : c_.group_by) key_cols_.push_back(batch.schema()->FieldIndex(name));
    return Status::OK();
  }

  RowOutcome Row(GeoThread& geo, int64_t r, std::string_view wkb) override {
    GeomPtr g = ReadGeometry(geo, wkb);
    if (g == nullptr) return RowOutcome::kError;
    const int srid = GEOSGetSRID_r(geo.handle(), g.get());
    Group& group = GroupOf(r);
    if (group.geometries > 0 && srid != group.srid) {
      error_ = fmt::format("its SRID {} differs from the SRID {} of its group's geometries", srid,
                           group.srid);
      return RowOutcome::kError;
    }
    group.srid = srid;
    group.dims = std::max(group.dims, Dimensions(geo, g.get()));
    ++group.count;
    ++group.geometries;
    const int64_t bytes = static_cast<int64_t>(wkb.size()) * 2 + 160;
    bytes_ += bytes;
    group.pending.push_back({std::move(g), bytes});
    if (bytes_ >= compact_at_) {
      Status st = Compact(geo);
      if (!st.ok()) {
        fatal_ = std::move(st);
        return RowOutcome::kError;
      }
    }
    return RowOutcome::kDrop;  // rows come out at the end, one per group
  }

  RowOutcome NullRow(int64_t r) override {
    ++GroupOf(r).count;  // counted; nothing to union
    return RowOutcome::kDrop;
  }

  Status EndBatch(const BatchPtr& batch, Emitter* out) override {
    held_.Merge(out->HoldAcks());
    return AccountState();
  }

  Status Finish(Emitter* out) override {
    if (ctx_ != nullptr && ctx_->stopping()) {
      // A stop is not the end of the input: the groups are incomplete. Emit none, and give up
      // the acknowledgements of their rows so the source keeps them for the next run.
      held_.Fail();
      return Release();
    }
    if (output_ == nullptr || groups_.empty()) return Release();
    GeoThread& geo = GeoThread::Get();
    for (size_t first = 0; first < groups_.size(); first += kEmitRows) {
      const size_t last = std::min(groups_.size(), first + static_cast<size_t>(kEmitRows));
      const auto n = static_cast<int64_t>(last - first);
      std::vector<ColumnBuilder> keys;
      for (size_t k = 0; k < c_.group_by.size(); ++k) keys.emplace_back(output_->field(k).type, n);
      ColumnBuilder geometry(TypeId::kGeometry, n), count(TypeId::kInt64, n);
      for (size_t i = first; i < last; ++i) {
        Group& group = groups_[i];
        DecodeKey(keys_[i], &keys);
        count.AppendInt64(group.count);
        if (group.geometries == 0) {
          geometry.AppendNull();
          continue;
        }
        SLUICE_RETURN_NOT_OK(Union(geo, &group));
        GEOSSetSRID_r(geo.handle(), group.merged.g.get(), group.srid);
        if (!geo.Write(group.merged.g.get(), group.dims, &geometry)) {
          return Status::Invalid("node '{}': cannot write the union of group {}: {}",
                                 options().id(), GroupName(i), geo.TakeError());
        }
        bytes_ -= group.merged.bytes;
        group.merged = {};
      }
      std::vector<Column> columns;
      for (auto& b : keys) columns.push_back(b.Finish());
      columns.push_back(geometry.Finish());
      columns.push_back(count.Finish());
      SLUICE_RETURN_NOT_OK(out->Emit(Batch::MakeUnchecked(output_, std::move(columns), n), held_));
    }
    return Release();
  }

  Status Close() override { return Release(); }

  std::string DropsRows() const override {
    return "replaces its input rows by one row per group (the union of their geometries)";
  }
  bool HoldsAcksUntilWatermark() const override { return true; }

 private:
  /// A geometry of a group's state, and its estimated size.
  struct Partial {
    GeomPtr g;
    int64_t bytes = 0;
  };
  struct Group {
    std::vector<Partial> pending;  // read, not yet unioned
    Partial merged;                // the union of the group's geometries before `pending`
    int64_t count = 0;             // rows, null geometries included
    int64_t geometries = 0;        // non-null geometries
    int srid = 0;
    int dims = 2;
  };

  /// Return the group of row `r` of batch_ (made when new); key_ holds its key afterwards.
  Group& GroupOf(int64_t r) {
    key_.clear();
    EncodeKey(*batch_, key_cols_, r, &key_);
    auto [it, added] = index_.try_emplace(key_, groups_.size());
    if (added) {
      groups_.emplace_back();
      keys_.push_back(key_);
      bytes_ += static_cast<int64_t>(2 * key_.size()) + 192;
    }
    return groups_[it->second];
  }

  /// Union each group's geometries so far, once they take compact_at_ bytes. GEOS's cascaded
  /// union of many geometries at once groups neighbours first (an STR tree), which is far
  /// cheaper than unioning them in arrival order: 100,000 overlapping circles took 112 s
  /// unioned 512 at a time into the union so far, 6.5 s this way. So geometries wait until
  /// they are many; when the unions do not shrink them (disjoint inputs), the threshold
  /// doubles, so each geometry is unioned O(log n) times.
  Status Compact(GeoThread& geo) {
    for (auto& group : groups_) SLUICE_RETURN_NOT_OK(Union(geo, &group));
    compact_at_ = std::max(compact_at_, 2 * bytes_);
    return Status::OK();
  }

  /// Replace the group's merged and pending geometries by their union.
  Status Union(GeoThread& geo, Group* group) {
    if (group->pending.empty()) return Status::OK();
    std::vector<Partial> parts;
    if (group->merged.g != nullptr) parts.push_back(std::move(group->merged));
    for (auto& p : group->pending) parts.push_back(std::move(p));
    group->pending.clear();
    SLUICE_ASSIGN_OR_RETURN(group->merged, UnionParts(geo, group, std::move(parts)));
    return Status::OK();
  }

  /// Return the union of `parts`, of the group `group`, counting the sizes in bytes_.
  Result<Partial> UnionParts(GeoThread& geo, Group* group, std::vector<Partial> parts) {
    std::vector<GEOSGeometry*> raw;
    for (auto& p : parts) {
      bytes_ -= p.bytes;
      raw.push_back(p.g.release());
    }
    // The collection owns the parts from here on.
    GeomPtr all = geo.Own(GEOSGeom_createCollection_r(
        geo.handle(), GEOS_GEOMETRYCOLLECTION, raw.data(), static_cast<unsigned>(raw.size())));
    if (all == nullptr) {
      for (GEOSGeometry* p : raw) GEOSGeom_destroy_r(geo.handle(), p);
      return Status::Invalid("node '{}': {}", options().id(), geo.TakeError());
    }
    Partial u{geo.Own(GEOSUnaryUnion_r(geo.handle(), all.get())), 0};
    if (u.g == nullptr) {
      const auto i = static_cast<size_t>(group - groups_.data());
      return Status::Invalid(
          "node '{}': the union of group {} failed: {} (invalid polygons such as bow-ties make "
          "it fail: set `validate: true` to route them by on_error, or add make_valid before)",
          options().id(), GroupName(i), geo.TakeError());
    }
    u.bytes = static_cast<int64_t>(GEOSGetNumCoordinates_r(geo.handle(), u.g.get())) * 24 + 160;
    bytes_ += u.bytes;
    return u;
  }

  std::string GroupName(size_t i) const {
    if (c_.group_by.empty()) return "(all rows)";
    std::vector<ColumnBuilder> b;
    for (size_t k = 0; k < c_.group_by.size(); ++k) b.emplace_back(output_->field(k).type, 1);
    DecodeKey(keys_[i], &b);
    std::string name;
    for (size_t k = 0; k < b.size(); ++k) {
      name += fmt::format("{}{} = {}", k == 0 ? "(" : ", ", c_.group_by[k],
                          ShowValue(b[k].Finish(), 0));
    }
    return name + ")";
  }

  /// Count the state against the run's memory budget, and refuse to hold more than all of it.
  Status AccountState() {
    if (ctx_ == nullptr) return Status::OK();
    ctx_->HoldMemory(bytes_ - held_bytes_);
    held_bytes_ = bytes_;
    // Keyed instances (partition_by) each hold their own: the node's gauges add them up.
    ctx_->stats()->SetInstanceGauge("groups", ctx_->instance(),
                                    static_cast<double>(groups_.size()));
    ctx_->stats()->SetInstanceGauge("state_bytes", ctx_->instance(), static_cast<double>(bytes_));
    const int64_t limit = ctx_->memory_limit();
    if (limit > 0 && bytes_ > limit) {
      return Status(StatusCode::kResourceExhausted,
                    fmt::format("node '{}': its groups' geometries take {} MiB, more than the "
                                "run's memory budget of {} MiB; raise settings.memory_limit, "
                                "or group by finer keys and spread them with parallelism and "
                                "partition_by",
                                options().id(), bytes_ >> 20, limit >> 20));
    }
    return Status::OK();
  }

  Status Release() {
    groups_.clear();
    keys_.clear();
    index_.clear();
    bytes_ = 0;
    held_.Release();
    if (ctx_ != nullptr && held_bytes_ != 0) ctx_->HoldMemory(-held_bytes_);
    held_bytes_ = 0;
    return Status::OK();
  }

  DissolveConfig c_;
  SchemaPtr output_;
  std::vector<int> key_cols_;      // the current batch's group_by columns
  std::vector<Group> groups_;      // in the order their first rows came
  std::vector<std::string> keys_;  // per group, its encoded key
  std::unordered_map<std::string, size_t> index_;
  std::string key_;
  int64_t bytes_ = 0;  // the state's estimated size
  int64_t compact_at_ = kCompactBytes;
  int64_t held_bytes_ = 0;  // what is counted against the memory budget
  AckSet held_;             // the acks of every row held, released once emitted
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeDissolve(const NodeOptions& o) {
  SLUICE_ASSIGN_OR_RETURN(CommonConfig common, ReadCommon(o));
  DissolveConfig c;
  c.group_by = o.GetStringList("group_by");
  c.count_as = StringOr(o, "count_as", "count");
  if (c.count_as.empty()) return o.ErrorAt("count_as", "must not be empty");
  return std::unique_ptr<Transform>(
      std::make_unique<DissolveTransform>(o, std::move(common), std::move(c)));
}

}  // namespace sluice::geo
