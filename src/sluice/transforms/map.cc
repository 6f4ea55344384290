#include "sluice/expr/expr.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

/// Add or replace columns computed from expressions, then drop columns.
class MapTransform final : public Transform {
 public:
  struct Step {
    std::string name;
    std::unique_ptr<Expr> expr;
  };

  MapTransform(NodeOptions options, std::vector<Step> steps, bool sequential,
               std::vector<std::string> drop)
      : options_(std::move(options)),
        steps_(std::move(steps)),
        sequential_(sequential),
        drop_(std::move(drop)) {
    if (!drop_.empty()) lossy_ = "drops columns (`drop`)";
  }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(inputs[0]));
    // Only what the input had can be lost: a computed column dropped again loses nothing.
    std::string lost;
    for (const auto& step : steps_) {
      if (inputs[0]->FieldIndex(step.name) >= 0) lost += (lost.empty() ? "" : ", ") + step.name;
    }
    std::string dropped;
    for (const auto& name : drop_) {
      if (inputs[0]->FieldIndex(name) >= 0) dropped += (dropped.empty() ? "" : ", ") + name;
    }
    lossy_.clear();
    if (!lost.empty()) lossy_ = "replaces the input columns " + lost;
    if (!dropped.empty()) {
      lossy_ += (lossy_.empty() ? "" : " and ") + std::string("drops the columns ") + dropped;
    }
    return plan->output;
  }

  std::string LossyBecause() const override { return lossy_; }
  bool BatchLocal() const override { return true; }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(batch->schema()));
    const int64_t rows = batch->num_rows();
    std::vector<Column> columns = batch->columns();
    BatchPtr current = batch;
    for (size_t k = 0; k < plan->exprs.size(); ++k) {
      auto value = plan->exprs[k]->Evaluate(*current);
      if (!value.ok()) {
        return value.status().WithContext("node '{}': column '{}'", options_.id(), steps_[k].name);
      }
      const auto target = static_cast<size_t>(plan->targets[k]);
      if (target == columns.size()) {
        columns.push_back(std::move(*value));
      } else {
        columns[target] = std::move(*value);
      }
      if (sequential_ && k + 1 < plan->exprs.size()) {
        current = Batch::MakeUnchecked(plan->step_schemas[k], columns, rows);
      }
    }
    std::vector<Column> kept;
    kept.reserve(plan->keep.size());
    for (int i : plan->keep) kept.push_back(std::move(columns[static_cast<size_t>(i)]));
    return out->Emit(Batch::MakeUnchecked(plan->output, std::move(kept), rows));
  }

 private:
  // What the transform does to batches of one input schema.
  struct Plan {
    std::vector<std::unique_ptr<BoundExpr>> exprs;  // one per step
    std::vector<int> targets;                       // the working column each step writes
    std::vector<SchemaPtr> step_schemas;  // the working schema after each step (sequential)
    std::vector<int> keep;                // working columns that survive `drop`
    SchemaPtr output;
  };

  Result<const Plan*> PlanFor(const SchemaPtr& input) {
    return cache_.Get(input, [&]() -> Result<Plan> {
      Plan plan;
      std::vector<Field> fields = input->fields();
      SchemaPtr current = input;
      for (const auto& step : steps_) {
        auto bound = sluice::Bind(*step.expr, sequential_ ? *current : *input);
        if (!bound.ok()) {
          return options_.ErrorAt(
              "columns", fmt::format("column '{}': {}", step.name, bound.status().message()));
        }
        Field field{step.name, (*bound)->type(), true};
        int target = -1;
        for (size_t i = 0; i < fields.size(); ++i) {
          if (fields[i].name == step.name) target = static_cast<int>(i);
        }
        if (target < 0) {
          target = static_cast<int>(fields.size());
          fields.push_back(std::move(field));
        } else {
          fields[static_cast<size_t>(target)] = std::move(field);
        }
        plan.exprs.push_back(std::move(*bound));
        plan.targets.push_back(target);
        current = MakeSchema(fields);
        plan.step_schemas.push_back(current);
      }
      std::vector<bool> dropped(fields.size(), false);
      for (const auto& name : drop_) {
        const int i = current->FieldIndex(name);
        if (i < 0) return options_.ErrorAt("drop", UnknownFieldMessage(name, *current));
        dropped[static_cast<size_t>(i)] = true;
      }
      std::vector<Field> out_fields;
      for (size_t i = 0; i < fields.size(); ++i) {
        if (dropped[i]) continue;
        plan.keep.push_back(static_cast<int>(i));
        out_fields.push_back(fields[i]);
      }
      plan.output = MakeSchema(std::move(out_fields));
      return plan;
    });
  }

  NodeOptions options_;
  std::vector<Step> steps_;
  bool sequential_;
  std::vector<std::string> drop_;
  SchemaCache<Plan> cache_;
  std::string lossy_;  // see LossyBecause; refined by Bind when the input schema is known
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeMap(const NodeOptions& options) {
  bool sequential = false;
  SLUICE_ASSIGN_OR_RETURN(auto pairs, ReadPairs(options, "columns", &sequential));
  std::vector<std::string> drop = options.GetStringList("drop");
  if (pairs.empty() && drop.empty()) {
    return options.ErrorAt("columns", "give at least one of 'columns' or 'drop'");
  }
  std::vector<MapTransform::Step> steps;
  for (auto& [name, text] : pairs) {
    if (name.empty()) return options.ErrorAt("columns", "a column name is empty");
    auto expr = ParseExpr(text);
    if (!expr.ok()) {
      return options.ErrorAt("columns",
                             fmt::format("column '{}': {}", name, expr.status().message()));
    }
    steps.push_back({name, std::move(*expr)});
  }
  return std::unique_ptr<Transform>(
      std::make_unique<MapTransform>(options, std::move(steps), sequential, std::move(drop)));
}

}  // namespace sluice::transforms_internal
