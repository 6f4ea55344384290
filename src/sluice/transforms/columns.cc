// select and rename: transforms that rearrange columns without touching their data.

#include <set>

#include "sluice/expr/expr.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

/// Keep the listed columns in the listed order. Zero-copy.
class SelectTransform final : public Transform {
 public:
  SelectTransform(NodeOptions options, std::vector<std::string> columns)
      : options_(std::move(options)), columns_(std::move(columns)) {}

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(inputs[0]));
    std::string dropped;
    for (const auto& f : inputs[0]->fields()) {
      if (std::find(columns_.begin(), columns_.end(), f.name) == columns_.end()) {
        dropped += (dropped.empty() ? "" : ", ") + f.name;
      }
    }
    lossy_ = dropped.empty() ? "" : "drops the columns " + dropped;
    return plan->output;
  }

  std::string LossyBecause() const override { return lossy_; }
  bool BatchLocal() const override { return true; }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(batch->schema()));
    std::vector<Column> columns;
    columns.reserve(plan->indices.size());
    for (int i : plan->indices) columns.push_back(batch->column(i));
    return out->Emit(Batch::MakeUnchecked(plan->output, std::move(columns), batch->num_rows()));
  }

 private:
  struct Plan {
    std::vector<int> indices;
    SchemaPtr output;
  };

  Result<const Plan*> PlanFor(const SchemaPtr& input) {
    return cache_.Get(input, [&]() -> Result<Plan> {
      Plan plan;
      std::vector<Field> fields;
      for (const auto& name : columns_) {
        const int i = input->FieldIndex(name);
        if (i < 0) return options_.ErrorAt("columns", UnknownFieldMessage(name, *input));
        plan.indices.push_back(i);
        fields.push_back(input->field(i));
      }
      plan.output = MakeSchema(std::move(fields));
      return plan;
    });
  }

  NodeOptions options_;
  std::vector<std::string> columns_;
  SchemaCache<Plan> cache_;
  // Until Bind sees the input schema, any column not listed may be dropped.
  std::string lossy_ =
      "keeps only the columns it lists (its input's columns are not known "
      "before the run)";
};

/// Rename columns. Zero-copy: only the schema changes.
class RenameTransform final : public Transform {
 public:
  RenameTransform(NodeOptions options, std::vector<std::pair<std::string, std::string>> renames)
      : options_(std::move(options)), renames_(std::move(renames)) {}
  bool BatchLocal() const override { return true; }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_ASSIGN_OR_RETURN(const SchemaPtr* output, OutputFor(inputs[0]));
    return *output;
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_ASSIGN_OR_RETURN(const SchemaPtr* output, OutputFor(batch->schema()));
    return out->Emit(Batch::MakeUnchecked(*output, batch->columns(), batch->num_rows()));
  }

 private:
  Result<const SchemaPtr*> OutputFor(const SchemaPtr& input) {
    return cache_.Get(input, [&]() -> Result<SchemaPtr> {
      std::vector<Field> fields = input->fields();
      for (const auto& [from, to] : renames_) {
        const int i = input->FieldIndex(from);
        if (i < 0) return options_.ErrorAt("columns", UnknownFieldMessage(from, *input));
        fields[static_cast<size_t>(i)].name = to;
      }
      std::set<std::string> seen;
      for (const auto& f : fields) {
        if (!seen.insert(f.name).second) {
          return options_.ErrorAt(
              "columns", fmt::format("after renaming, two columns are called '{}'", f.name));
        }
      }
      return MakeSchema(std::move(fields));
    });
  }

  NodeOptions options_;
  std::vector<std::pair<std::string, std::string>> renames_;
  SchemaCache<SchemaPtr> cache_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeSelect(const NodeOptions& options) {
  std::vector<std::string> columns = options.GetStringList("columns");
  if (columns.empty()) return options.ErrorAt("columns", "list at least one column to keep");
  std::set<std::string> seen;
  for (const auto& c : columns) {
    if (!seen.insert(c).second) {
      return options.ErrorAt("columns", fmt::format("'{}' is listed twice", c));
    }
  }
  return std::unique_ptr<Transform>(std::make_unique<SelectTransform>(options, std::move(columns)));
}

Result<std::unique_ptr<Transform>> MakeRename(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto renames, ReadPairs(options, "columns"));
  if (renames.empty()) return options.ErrorAt("columns", "give at least one old: new pair");
  std::set<std::string> sources;
  for (const auto& [from, to] : renames) {
    if (to.empty())
      return options.ErrorAt("columns", fmt::format("new name for '{}' is empty", from));
    if (!sources.insert(from).second) {
      return options.ErrorAt("columns", fmt::format("'{}' is renamed twice", from));
    }
  }
  return std::unique_ptr<Transform>(std::make_unique<RenameTransform>(options, std::move(renames)));
}

}  // namespace sluice::transforms_internal
