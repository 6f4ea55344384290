#include "sluice/expr/expr.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

/// Keep the rows for which `where` is true. Stateless apart from its cache of bound
/// expressions; a batch in which no row passes produces no output.
class FilterTransform final : public Transform {
 public:
  FilterTransform(NodeOptions options, std::unique_ptr<Expr> where)
      : options_(std::move(options)), where_(std::move(where)) {}

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_RETURN_NOT_OK(BoundFor(inputs[0]).status());
    return inputs[0];
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_ASSIGN_OR_RETURN(const BoundPredicate* predicate, BoundFor(batch->schema()));
    auto kept = (*predicate)->Filter(batch);
    if (!kept.ok()) return kept.status().WithContext("node '{}'", options_.id());
    if ((*kept)->num_rows() == 0) return Status::OK();
    return out->Emit(std::move(*kept));
  }

  bool BatchLocal() const override { return true; }
  std::string LossyBecause() const override {
    return "drops the rows for which `where` is not true";
  }

 private:
  using BoundPredicate = std::unique_ptr<BoundExpr>;

  Result<const BoundPredicate*> BoundFor(const SchemaPtr& schema) {
    return cache_.Get(schema, [&]() -> Result<BoundPredicate> {
      auto bound = sluice::Bind(*where_, *schema);
      if (!bound.ok()) return options_.ErrorAt("where", bound.status().message());
      if ((*bound)->type() != TypeId::kBool) {
        return options_.ErrorAt(
            "where", fmt::format("expression '{}' is {}, but a filter needs a bool (true/false)",
                                 where_->text, TypeName((*bound)->type())));
      }
      return std::move(*bound);
    });
  }

  NodeOptions options_;
  std::unique_ptr<Expr> where_;
  SchemaCache<BoundPredicate> cache_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeFilter(const NodeOptions& options) {
  if (!options.Has("where")) return options.ErrorAt("where", "is required");
  auto where = ParseExpr(options.GetString("where"));
  if (!where.ok()) return options.ErrorAt("where", where.status().message());
  return std::unique_ptr<Transform>(std::make_unique<FilterTransform>(options, std::move(*where)));
}

}  // namespace sluice::transforms_internal
