// The `replicate` transform (workload 4, graph scale-up): each input row comes out `copies`
// times, once per copy k = 1..copies, with its key columns remapped to the copy's ids by a
// deterministic function of (operation, k, value). Resources and the relationships between them
// go through separate replicate nodes with the same operation: a relationship's endpoints in
// copy k are the ids its resources got in copy k, with no lookup table, and a rerun of the same
// operation makes the same ids (an upsert sink then adds nothing).

#include "sluice/engine/scale_tags.h"
#include "sluice/transforms/group_key.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

// The columns replicate adds to each copy (the sinks' `indexes: [auto]` index them).
using scale_tags::kCopy;
using scale_tags::kOperation;
using scale_tags::kSynthetic;
using scale_tags::kTemplate;

uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

struct ReplicateConfig {
  int64_t copies = 1;
  std::string operation;
  std::vector<std::string> remap;
};

class ReplicateTransform final : public Transform {
 public:
  ReplicateTransform(NodeOptions options, ReplicateConfig config)
      : options_(std::move(options)),
        c_(std::move(config)),
        operation_hash_(KeyHash(c_.operation)) {}

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_RETURN_NOT_OK(BindTo(inputs[0]));
    return output_schema_;
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_RETURN_NOT_OK(BindTo(batch->schema()));
    const int64_t n = batch->num_rows();
    // The tags every copy shares, built once per batch.
    ColumnBuilder synthetic_b(TypeId::kBool, n), operation_b(TypeId::kString, n);
    for (int64_t r = 0; r < n; ++r) {
      synthetic_b.AppendBool(true);
      operation_b.AppendString(c_.operation);
    }
    const Column synthetic = synthetic_b.Finish(), operation = operation_b.Finish();
    for (int64_t k = 1; k <= c_.copies; ++k) {
      std::vector<Column> cols = batch->columns();
      for (const int c : remap_cols_) cols[static_cast<size_t>(c)] = Remap(batch->column(c), k);
      ColumnBuilder copy(TypeId::kInt64, n);
      for (int64_t r = 0; r < n; ++r) copy.AppendInt64(k);
      cols.push_back(synthetic);
      cols.push_back(operation);
      cols.push_back(batch->column(remap_cols_[0]));  // the template's id
      cols.push_back(copy.Finish());
      SLUICE_RETURN_NOT_OK(
          out->Emit(Batch::MakeUnchecked(output_schema_, std::move(cols), n, batch->tags())));
    }
    return Status::OK();
  }

  /// The id of `value` in copy `k`: int64 ids a 62-bit hash of (operation, k, value), positive
  /// and distinct from each other but for a chance of about n^2 / 2^63 (1e-7 for a million
  /// ids); string ids "<value>~<operation>~<k>", distinct by construction.
  Column Remap(const Column& in, int64_t k) const {
    const int64_t n = in.length();
    ColumnBuilder b(in.type(), n);
    for (int64_t r = 0; r < n; ++r) {
      if (!in.IsValid(r)) {
        b.AppendNull();
      } else if (in.type() == TypeId::kInt64) {
        const uint64_t h =
            Mix(operation_hash_ ^ Mix(static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL ^
                                      Mix(static_cast<uint64_t>(in.GetInt64(r)))));
        b.AppendInt64(static_cast<int64_t>(h >> 2) + 1);
      } else {
        scratch_.assign(in.GetView(r));
        scratch_.append("~").append(c_.operation).append("~").append(std::to_string(k));
        b.AppendString(scratch_);
      }
    }
    return b.Finish();
  }

 private:
  Status BindTo(const SchemaPtr& schema) {
    if (input_schema_ != nullptr) {
      if (schema == input_schema_ || *schema == *input_schema_) return Status::OK();
      return Status::Invalid("node '{}': the input's columns changed during the run",
                             options_.id());
    }
    remap_cols_.clear();
    for (const auto& name : c_.remap) {
      const int c = schema->FieldIndex(name);
      if (c < 0) return options_.ErrorAt("remap", NoColumn(name, *schema));
      const TypeId t = schema->field(c).type;
      if (t != TypeId::kInt64 && t != TypeId::kString) {
        return options_.ErrorAt("remap", fmt::format("'{}' is {}; ids to remap are int64 or "
                                                     "string columns",
                                                     name, TypeName(t)));
      }
      remap_cols_.push_back(c);
    }
    std::vector<Field> fields = schema->fields();
    const TypeId template_type = schema->field(remap_cols_[0]).type;
    for (const auto& [name, type] :
         std::vector<std::pair<std::string_view, TypeId>>{{kSynthetic, TypeId::kBool},
                                                          {kOperation, TypeId::kString},
                                                          {kTemplate, template_type},
                                                          {kCopy, TypeId::kInt64}}) {
      if (schema->FieldIndex(name) >= 0) {
        return options_.ErrorAt("remap", fmt::format("the input already has a column '{}', "
                                                     "which replicate adds; rename it first",
                                                     name));
      }
      fields.push_back({std::string(name), type, name == kTemplate});
    }
    output_schema_ = MakeSchema(std::move(fields));
    input_schema_ = schema;
    return Status::OK();
  }

  NodeOptions options_;
  ReplicateConfig c_;
  uint64_t operation_hash_ = 0;
  SchemaPtr input_schema_;
  SchemaPtr output_schema_;
  std::vector<int> remap_cols_;
  mutable std::string scratch_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeReplicate(const NodeOptions& o) {
  ReplicateConfig c;
  c.copies = o.GetInt("copies");
  if (c.copies < 1 || c.copies > 1'000'000) return o.ErrorAt("copies", "must be 1..1000000");
  c.operation = o.GetString("operation");
  if (c.operation.empty()) return o.ErrorAt("operation", "must not be empty");
  c.remap = o.GetStringList("remap");
  if (c.remap.empty()) return o.ErrorAt("remap", "name at least one id column");
  return std::unique_ptr<Transform>(std::make_unique<ReplicateTransform>(o, std::move(c)));
}

void RegisterReplicateNode(NodeRegistry* registry) {
  registry->AddTransform(
      "replicate",
      "Emit each row `copies` times, its id columns remapped to each copy's ids by a "
      "deterministic function of (operation, copy, id), tagged synthetic, scale_operation_id, "
      "template_source_id and copy_number (graph scale-up).",
      {
          {"copies", OptionType::kInt, "", "How many copies of each row (1..1000000).", true, {}},
          {"operation",
           OptionType::kString,
           "",
           "The scale operation's id: the same operation gives the same ids on a rerun.",
           true,
           {}},
          {"remap",
           OptionType::kStringList,
           "",
           "The id columns to remap (int64: a positive 62-bit hash; string: "
           "<id>~<operation>~<copy>). The first is the row's own id, kept as "
           "template_source_id. A relationship lists its endpoint columns: they get the ids "
           "their resources got in the same copy.",
           true,
           {}},
      },
      &MakeReplicate, /*stateless=*/true);
}

}  // namespace sluice::transforms_internal
