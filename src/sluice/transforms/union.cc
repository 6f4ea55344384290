#include <algorithm>

#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

/// Pass the batches of every input through as one stream. With by_name, batches are aligned
/// to one output schema by column name (columns an input lacks become null).
class UnionTransform final : public Transform {
 public:
  UnionTransform(NodeOptions options, bool by_name)
      : options_(std::move(options)), by_name_(by_name) {}

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty()) return SchemaPtr{};
    for (const auto& s : inputs) {
      if (s == nullptr) return SchemaPtr{};
    }
    std::vector<Field> fields = inputs[0]->fields();
    for (size_t k = 1; k < inputs.size(); ++k) {
      const Schema& s = *inputs[k];
      if (s == *inputs[0]) continue;
      if (!by_name_) {
        return options_.ErrorAt(
            "by_name",
            fmt::format("input {} has columns [{}] but input 0 has [{}]; make them match or set "
                        "by_name: true to align columns by name",
                        k, s.ToString(), inputs[0]->ToString()));
      }
      for (const auto& f : s.fields()) {
        auto it = std::find_if(fields.begin(), fields.end(),
                               [&](const Field& g) { return g.name == f.name; });
        if (it == fields.end()) {
          fields.push_back(f);
          fields.back().nullable = true;
        } else if (it->type != f.type) {
          return options_.ErrorAt(
              "by_name", fmt::format("column '{}' is {} in an earlier input but {} in input {}",
                                     f.name, TypeName(it->type), TypeName(f.type), k));
        } else {
          it->nullable = it->nullable || f.nullable;
        }
      }
    }
    // Columns some input lacks will be null.
    for (auto& f : fields) {
      for (const auto& s : inputs) {
        if (s->FieldIndex(f.name) < 0) f.nullable = true;
      }
    }
    output_ = MakeSchema(std::move(fields));
    return output_;
  }

  // Without Bind, each instance's output schema would be its own first batch's.
  bool BatchLocal() const override { return output_ != nullptr; }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    const SchemaPtr& schema = batch->schema();
    // Without Bind (schemas unknown before the run) the first batch sets the output schema.
    if (output_ == nullptr) output_ = schema;
    if (schema == output_ || *schema == *output_) return out->Emit(batch);
    if (!by_name_) {
      return Status::Invalid(
          "node '{}': input {} sent columns [{}] but the output has [{}]; make them match or set "
          "by_name: true to align columns by name",
          options_.id(), input, schema->ToString(), output_->ToString());
    }
    SLUICE_ASSIGN_OR_RETURN(const Alignment* alignment, AlignmentFor(schema, input));
    std::vector<Column> columns;
    columns.reserve(alignment->source.size());
    for (size_t i = 0; i < alignment->source.size(); ++i) {
      const int from = alignment->source[i];
      columns.push_back(
          from >= 0 ? batch->column(from)
                    : NullColumn(output_->field(static_cast<int>(i)).type, batch->num_rows()));
    }
    return out->Emit(Batch::MakeUnchecked(output_, std::move(columns), batch->num_rows()));
  }

 private:
  struct Alignment {
    std::vector<int> source;  // per output column: the input column, or -1 for nulls
  };

  Result<const Alignment*> AlignmentFor(const SchemaPtr& schema, int input) {
    return cache_.Get(schema, [&]() -> Result<Alignment> {
      Alignment a;
      for (const auto& f : output_->fields()) {
        const int i = schema->FieldIndex(f.name);
        if (i >= 0 && schema->field(i).type != f.type) {
          return Status::Invalid("node '{}': column '{}' of input {} is {}, but the output has {}",
                                 options_.id(), f.name, input, TypeName(schema->field(i).type),
                                 TypeName(f.type));
        }
        a.source.push_back(i);
      }
      for (const auto& f : schema->fields()) {
        if (output_->FieldIndex(f.name) < 0) {
          return Status::Invalid(
              "node '{}': input {} has a column '{}' that the output schema [{}] lacks (the "
              "input schemas were not known before the run, so the first batch fixed the "
              "output)",
              options_.id(), input, f.name, output_->ToString());
        }
      }
      return a;
    });
  }

  NodeOptions options_;
  bool by_name_;
  SchemaPtr output_;
  SchemaCache<Alignment> cache_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeUnion(const NodeOptions& options) {
  return std::unique_ptr<Transform>(
      std::make_unique<UnionTransform>(options, options.GetBool("by_name")));
}

}  // namespace sluice::transforms_internal
