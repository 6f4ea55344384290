// The `anomaly` transform: a rolling z-score per key against the key's baseline (Welford or
// exponentially weighted mean and variance), optional static bounds, and baselines that
// survive restarts in a SQLite file written before the rows behind them are acknowledged.

#include <cmath>
#include <unordered_map>

#include "sluice/expr/expr.h"
#include "sluice/transforms/baseline_store.h"
#include "sluice/transforms/group_key.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

struct AnomalyConfig {
  std::string value;
  std::vector<std::string> group_by;
  std::string time;
  bool ewma = false;
  double alpha = 0.05;
  double threshold = 3;
  int64_t min_samples = 30;
  bool emit_all = false;
  std::string state;
  int64_t snapshot_every_us = 1'000'000;
};

/// The columns the transform adds to each row it passes on.
constexpr const char* kAddedColumns[] = {"anomaly_score",   "anomaly_mean",   "anomaly_stddev",
                                         "anomaly_samples", "anomaly_reason", "is_anomaly"};

class AnomalyTransform final : public Transform {
 public:
  AnomalyTransform(NodeOptions options, AnomalyConfig config, std::unique_ptr<Expr> bounds)
      : options_(std::move(options)), c_(std::move(config)), bounds_(std::move(bounds)) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    if (c_.state.empty()) return Status::OK();
    auto store = BaselineStore::Open(c_.state, options_.id());
    if (!store.ok()) return store.status().WithContext("node '{}'", options_.id());
    store_ = std::move(*store);
    SLUICE_RETURN_NOT_OK(store_->Load(&baselines_));
    for (const auto& [key, b] : baselines_) key_bytes_ += static_cast<int64_t>(key.size());
    AccountState();
    ctx_->stats()->AddCounter("baselines_loaded", static_cast<int64_t>(baselines_.size()));
    ctx_->SetTimer(c_.snapshot_every_us);
    return Status::OK();
  }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_RETURN_NOT_OK(BindTo(inputs[0]));
    return output_schema_;
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_RETURN_NOT_OK(BindTo(batch->schema()));
    if (store_ != nullptr) held_.Merge(out->HoldAcks());  // until a snapshot holds this batch
    const int64_t n = batch->num_rows();
    const Column& value = batch->column(value_col_);
    const Column* time = time_col_ >= 0 ? &batch->column(time_col_) : nullptr;
    Column bounds_hit;
    if (bound_bounds_ != nullptr) {
      auto evaluated = bound_bounds_->Evaluate(*batch);
      if (!evaluated.ok()) return evaluated.status().WithContext("node '{}'", options_.id());
      bounds_hit = std::move(*evaluated);
    }
    ColumnBuilder score(TypeId::kFloat64, n), mean(TypeId::kFloat64, n),
        stddev(TypeId::kFloat64, n), samples(TypeId::kInt64, n), reason(TypeId::kString, n),
        flag(TypeId::kBool, n);
    std::vector<int32_t> keep;
    int64_t anomalies = 0;
    for (int64_t r = 0; r < n; ++r) {
      key_.clear();
      EncodeKey(*batch, key_cols_, r, &key_);
      auto [it, added] = baselines_.try_emplace(key_);
      if (added) key_bytes_ += static_cast<int64_t>(key_.size());
      Baseline& b = it->second;
      const bool has_value = value.IsValid(r);
      const double x = !has_value                         ? 0
                       : value.type() == TypeId::kFloat64 ? value.GetFloat64(r)
                                                          : static_cast<double>(value.GetInt64(r));
      // Score against the baseline before this reading.
      const double sd = StdDev(b);
      bool by_score = false;
      if (has_value && std::isfinite(x) && b.n >= c_.min_samples) {
        const double d = x - b.mean;
        const double z = sd > 0 ? d / sd : (d == 0 ? 0 : std::copysign(INFINITY, d));
        by_score = std::abs(z) > c_.threshold;
        score.AppendFloat64(z);
      } else {
        score.AppendNull();
      }
      const bool by_bounds =
          bound_bounds_ != nullptr && bounds_hit.IsValid(r) && bounds_hit.GetBool(r);
      const bool anomaly = by_score || by_bounds;
      b.n > 0 ? mean.AppendFloat64(b.mean) : mean.AppendNull();
      b.n > 1 ? stddev.AppendFloat64(sd) : stddev.AppendNull();
      samples.AppendInt64(b.n);
      if (anomaly) {
        reason.AppendString(by_score && by_bounds ? "zscore,bounds"
                            : by_score            ? "zscore"
                                                  : "bounds");
      } else {
        reason.AppendNull();
      }
      flag.AppendBool(anomaly);
      if (anomaly) {
        ++anomalies;
        keep.push_back(static_cast<int32_t>(r));
      }
      // Fold the reading in: not an anomaly (it would become normal), a finite value, and, with
      // an event time, newer than the newest folded — a redelivered reading is not folded twice.
      if (!anomaly && has_value && std::isfinite(x)) {
        const bool has_time = time != nullptr && time->IsValid(r);
        const int64_t t = has_time ? time->GetInt64(r) : INT64_MIN;
        if (time == nullptr || (has_time && t > b.last_us)) {
          Fold(&b, x);
          if (has_time) b.last_us = t;
          if (store_ != nullptr) dirty_.push_back(&*it);
        }
      }
    }
    if (anomalies > 0) ctx_->stats()->AddCounter("anomalies", anomalies);
    ctx_->stats()->SetInstanceGauge("keys", ctx_->instance(),
                                    static_cast<double>(baselines_.size()));
    AccountState();
    if (!c_.emit_all && keep.empty()) return Status::OK();
    std::vector<Column> cols = batch->columns();
    cols.push_back(score.Finish());
    cols.push_back(mean.Finish());
    cols.push_back(stddev.Finish());
    cols.push_back(samples.Finish());
    cols.push_back(reason.Finish());
    if (c_.emit_all) cols.push_back(flag.Finish());
    BatchPtr scored = Batch::MakeUnchecked(output_schema_, std::move(cols), n, batch->tags());
    return out->Emit(c_.emit_all ? scored : scored->Take(keep));
  }

  Status OnTimer(int64_t now_us, Emitter* out) override { return Snapshot(); }
  Status Close() override {
    if (ctx_ != nullptr && held_bytes_ != 0) ctx_->HoldMemory(-held_bytes_);
    held_bytes_ = 0;
    return Status::OK();
  }
  Status Finish(Emitter* out) override { return Snapshot(); }

  std::string LossyBecause() const override {
    return c_.emit_all ? "" : "passes on only the rows it finds anomalous";
  }

 private:
  /// Count the baselines against the run's memory budget (one hash-map node and key each).
  void AccountState() {
    const int64_t bytes =
        static_cast<int64_t>(baselines_.size() * (sizeof(Baseline) + 64)) + key_bytes_;
    ctx_->HoldMemory(bytes - held_bytes_);
    held_bytes_ = bytes;
  }

  double StdDev(const Baseline& b) const {
    if (c_.ewma) return b.n > 1 ? std::sqrt(b.m2) : 0;
    return b.n > 1 ? std::sqrt(b.m2 / static_cast<double>(b.n - 1)) : 0;
  }

  void Fold(Baseline* b, double x) const {
    ++b->n;
    if (c_.ewma) {
      if (b->n == 1) {
        b->mean = x;
        b->m2 = 0;
        return;
      }
      // West's exponentially weighted mean and variance.
      const double d = x - b->mean;
      b->mean += c_.alpha * d;
      b->m2 = (1 - c_.alpha) * (b->m2 + c_.alpha * d * d);
      return;
    }
    const double d = x - b->mean;
    b->mean += d / static_cast<double>(b->n);
    b->m2 += d * (x - b->mean);
  }

  /// Write the baselines changed since the last snapshot, then release the acks of the rows
  /// they reflect: a source commits a reading only once its baseline is on disk.
  Status Snapshot() {
    if (store_ == nullptr) return Status::OK();
    std::vector<std::pair<const std::string*, const Baseline*>> entries;
    entries.reserve(dirty_.size());
    for (const auto* e : dirty_) entries.emplace_back(&e->first, &e->second);
    std::sort(entries.begin(), entries.end());
    entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
    SLUICE_RETURN_NOT_OK(store_->Save(entries));
    ctx_->stats()->AddCounter("baselines_saved", static_cast<int64_t>(entries.size()));
    dirty_.clear();
    held_.Release();
    return Status::OK();
  }

  Status BindTo(const SchemaPtr& schema) {
    if (input_schema_ != nullptr) {
      if (schema == input_schema_ || *schema == *input_schema_) return Status::OK();
      return Status::Invalid("node '{}': the input's columns changed during the run",
                             options_.id());
    }
    value_col_ = schema->FieldIndex(c_.value);
    if (value_col_ < 0) return options_.ErrorAt("value", NoColumn(c_.value, *schema));
    if (!IsNumeric(schema->field(value_col_).type)) {
      return options_.ErrorAt(
          "value", fmt::format("'{}' is not an int64 or float64 column of the input", c_.value));
    }
    key_cols_.clear();
    for (const auto& g : c_.group_by) {
      const int k = schema->FieldIndex(g);
      if (k < 0) return options_.ErrorAt("group_by", NoColumn(g, *schema));
      key_cols_.push_back(k);
    }
    time_col_ = -1;
    if (!c_.time.empty()) {
      time_col_ = schema->FieldIndex(c_.time);
      if (time_col_ < 0) return options_.ErrorAt("time", NoColumn(c_.time, *schema));
      if (schema->field(time_col_).type != TypeId::kTimestamp) {
        return options_.ErrorAt(
            "time", fmt::format("'{}' is not a timestamp column of the input", c_.time));
      }
    }
    if (bounds_ != nullptr) {
      auto bound = sluice::Bind(*bounds_, *schema);
      if (!bound.ok()) return options_.ErrorAt("bounds", bound.status().message());
      if ((*bound)->type() != TypeId::kBool) {
        return options_.ErrorAt("bounds", fmt::format("expression '{}' is {}, but bounds needs a "
                                                      "bool (true: an anomaly)",
                                                      bounds_->text, TypeName((*bound)->type())));
      }
      bound_bounds_ = std::move(*bound);
    }
    std::vector<Field> fields = schema->fields();
    const size_t added = c_.emit_all ? std::size(kAddedColumns) : std::size(kAddedColumns) - 1;
    for (size_t i = 0; i < added; ++i) {
      const std::string name = kAddedColumns[i];
      if (schema->FieldIndex(name) >= 0) {
        return options_.ErrorAt("value", fmt::format("the input already has a column '{}', "
                                                     "which anomaly adds; rename it first",
                                                     name));
      }
      const TypeId type = i == 3   ? TypeId::kInt64
                          : i == 4 ? TypeId::kString
                          : i == 5 ? TypeId::kBool
                                   : TypeId::kFloat64;
      fields.push_back({name, type, i != 3 && i != 5});
    }
    output_schema_ = MakeSchema(std::move(fields));
    input_schema_ = schema;
    return Status::OK();
  }

  NodeOptions options_;
  AnomalyConfig c_;
  std::unique_ptr<Expr> bounds_;
  NodeContext* ctx_ = nullptr;
  SchemaPtr input_schema_;
  SchemaPtr output_schema_;
  int value_col_ = -1;
  int time_col_ = -1;
  std::vector<int> key_cols_;
  std::unique_ptr<BoundExpr> bound_bounds_;
  std::unordered_map<std::string, Baseline> baselines_;
  std::unique_ptr<BaselineStore> store_;
  std::vector<const std::pair<const std::string, Baseline>*> dirty_;
  AckSet held_;
  std::string key_;
  int64_t key_bytes_ = 0;   // bytes of the keys in baselines_
  int64_t held_bytes_ = 0;  // what this node counts against the memory budget
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeAnomaly(const NodeOptions& o) {
  AnomalyConfig c;
  c.value = o.GetString("value");
  c.group_by = o.GetStringList("group_by");
  c.time = o.GetString("time");
  c.ewma = o.GetString("method") == "ewma";
  c.alpha = o.Has("alpha") ? o.GetFloat("alpha") : 0.05;
  if (!(c.alpha > 0 && c.alpha < 1)) return o.ErrorAt("alpha", "must be between 0 and 1");
  c.threshold = o.Has("threshold") ? o.GetFloat("threshold") : 3.0;
  if (!(c.threshold > 0)) return o.ErrorAt("threshold", "must be positive");
  c.min_samples = o.Has("min_samples") ? o.GetInt("min_samples") : 30;
  if (c.min_samples < 2) return o.ErrorAt("min_samples", "must be at least 2");
  c.emit_all = o.GetString("emit") == "all";
  c.state = o.GetString("state");
  if (o.Has("snapshot_every")) c.snapshot_every_us = o.GetDurationMicros("snapshot_every");
  if (c.snapshot_every_us <= 0) return o.ErrorAt("snapshot_every", "must be positive");
  if (!c.state.empty() && c.time.empty()) {
    return o.ErrorAt("state",
                     "needs `time`: the event time tells a reading redelivered after a "
                     "restart from a new one, so it is not folded in twice");
  }
  std::unique_ptr<Expr> bounds;
  if (o.Has("bounds")) {
    auto parsed = ParseExpr(o.GetString("bounds"));
    if (!parsed.ok()) return o.ErrorAt("bounds", parsed.status().message());
    bounds = std::move(*parsed);
  }
  return std::unique_ptr<Transform>(
      std::make_unique<AnomalyTransform>(o, std::move(c), std::move(bounds)));
}

void RegisterAnomalyNode(NodeRegistry* registry) {
  registry->AddTransform(
      "anomaly",
      "Score each row against its key's rolling baseline (z-score) and pass on the anomalies, "
      "with the score and the baseline.",
      {
          {"value", OptionType::kString, "", "The column to score (int64 or float64).", true, {}},
          {"group_by",
           OptionType::kStringList,
           "",
           "Key columns: one baseline per key. Empty: one baseline.",
           false,
           {}},
          {"time",
           OptionType::kString,
           "",
           "The event-time column; a reading no newer than the newest folded into its key's "
           "baseline is scored but not folded (redeliveries, duplicates). Needed with `state`.",
           false,
           {}},
          {"method",
           OptionType::kEnum,
           "welford",
           "welford: mean and variance of every reading so far; ewma: exponentially weighted, "
           "forgetting old readings at rate `alpha`.",
           false,
           {"welford", "ewma"}},
          {"alpha",
           OptionType::kFloat,
           "0.05",
           "For ewma: the weight of each new reading.",
           false,
           {}},
          {"threshold",
           OptionType::kFloat,
           "3",
           "abs(z) above this is an anomaly, z = (value - mean) / stddev of the baseline before "
           "the reading.",
           false,
           {}},
          {"min_samples",
           OptionType::kInt,
           "30",
           "Readings a key's baseline needs before its rows are scored.",
           false,
           {}},
          {"bounds",
           OptionType::kExpr,
           "",
           "A bool expression that marks a row an anomaly whatever its score, e.g. `voltage > "
           "253 or voltage < 207`.",
           false,
           {}},
          {"emit",
           OptionType::kEnum,
           "anomalies",
           "anomalies: pass on only anomalous rows; all: every row, with is_anomaly.",
           false,
           {"anomalies", "all"}},
          {"state",
           OptionType::kString,
           "",
           "A SQLite file that keeps the baselines across runs. They are saved every "
           "`snapshot_every`, and the rows behind them are acknowledged only after the save.",
           false,
           {}},
          {"snapshot_every",
           OptionType::kDuration,
           "1s",
           "How often changed baselines are saved (with `state`).",
           false,
           {}},
      },
      &MakeAnomaly, /*stateless=*/false);
}

}  // namespace sluice::transforms_internal
