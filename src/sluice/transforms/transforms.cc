#include "sluice/transforms/transforms.h"

#include "sluice/core/json_text.h"
#include "sluice/engine/pipeline.h"
#include "sluice/transforms/encode.h"

#include "sluice/transforms/transforms_internal.h"

namespace sluice {

namespace transforms_internal {

namespace {

Result<std::string> ScalarText(const OptionJson& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number() || v.is_boolean() || v.is_null()) return JsonText(v);
  return Status::Invalid("expected a string, got {}", JsonText(v));
}

}  // namespace

Result<std::vector<std::pair<std::string, std::string>>> ReadPairs(const NodeOptions& options,
                                                                   const std::string& name,
                                                                   bool* ordered) {
  const OptionJson& v = options.GetJson(name);
  std::vector<std::pair<std::string, std::string>> out;
  if (ordered != nullptr) *ordered = v.is_array();
  if (v.is_null()) return out;
  auto add = [&](const std::string& key, const OptionJson& value) -> Status {
    auto text = ScalarText(value);
    if (!text.ok()) {
      return options.ErrorAt(name, fmt::format("'{}': {}", key, text.status().message()));
    }
    out.emplace_back(key, std::move(*text));
    return Status::OK();
  };
  if (v.is_object()) {
    for (const auto& [key, value] : v.items()) SLUICE_RETURN_NOT_OK(add(key, value));
    return out;
  }
  if (v.is_array()) {
    for (const auto& e : v) {
      if (!e.is_object() || e.size() != 1) {
        return options.ErrorAt(
            name,
            fmt::format("expected a mapping or a list of one-entry mappings, got {}", JsonText(e)));
      }
      SLUICE_RETURN_NOT_OK(add(e.begin().key(), e.begin().value()));
    }
    return out;
  }
  return options.ErrorAt(name, fmt::format("expected a mapping, got {}", JsonText(v)));
}

std::string NoColumn(const std::string& name, const Schema& schema) {
  std::vector<std::string> names;
  for (const auto& f : schema.fields()) names.push_back(f.name);
  const std::string hint = SuggestNearest(name, names);
  return fmt::format("no column '{}' in the input{}", name,
                     hint.empty() ? fmt::format(" (its columns: {})", fmt::join(names, ", "))
                                  : fmt::format(" — did you mean '{}'?", hint));
}

Column NullColumn(TypeId type, int64_t rows) {
  ColumnBuilder b(type, rows);
  for (int64_t i = 0; i < rows; ++i) b.AppendNull();
  return b.Finish();
}

}  // namespace transforms_internal

void RegisterTransformNodes(NodeRegistry* registry) {
  using namespace transforms_internal;  // NOLINT(google-build-using-namespace)
  registry->AddTransform(
      "filter", "Keep the rows for which an expression is true.",
      {
          {"where",
           OptionType::kExpr,
           "",
           "A bool expression, e.g. `created_at < now() - 90d`; rows where it is false or null "
           "are dropped.",
           true,
           {}},
      },
      &MakeFilter, /*stateless=*/true);
  RegisterEncodeNode(registry);
  registry->AddTransform(
      "map", "Add or replace columns computed from expressions, and drop columns.",
      {
          {"columns",
           OptionType::kMap,
           "",
           "Output column -> expression. Under a mapping every expression sees the input "
           "columns; under a list of one-entry mappings they run in order and each sees the "
           "columns made before it.",
           false,
           {}},
          {"drop",
           OptionType::kStringList,
           "",
           "Columns to remove, after computing `columns`.",
           false,
           {}},
      },
      &MakeMap, /*stateless=*/true);
  registry->AddTransform("select", "Keep only the listed columns, in the listed order.",
                         {
                             {"columns",
                              OptionType::kStringList,
                              "",
                              "The columns to keep, in output order.",
                              true,
                              {}},
                         },
                         &MakeSelect, /*stateless=*/true);
  registry->AddTransform("rename", "Rename columns.",
                         {
                             {"columns", OptionType::kMap, "", "Old name -> new name.", true, {}},
                         },
                         &MakeRename, /*stateless=*/true);
  registry->AddTransform(
      "cast",
      "Convert columns to other types. Casts that keep the bytes (json to string, string to "
      "bytes, bytes to string, geometry to bytes) share the column and copy nothing.",
      {
          {"columns",
           OptionType::kMap,
           "",
           "Column -> type (bool, int64, float64, string, bytes, timestamp, json, geometry).",
           true,
           {}},
          {"on_error",
           OptionType::kEnum,
           "fail",
           "A value that cannot be converted fails the batch (fail), becomes null (null), or "
           "sends its row to the `<id>.dead_letter` output (row number, error, the row as "
           "JSON) while the other rows go on.",
           false,
           {"fail", "null", "dead_letter"}},
      },
      &MakeCast, /*stateless=*/true);
  registry->AddTransform(
      "union", "Merge the batches of several inputs into one stream.",
      {
          {"by_name",
           OptionType::kBool,
           "false",
           "Align columns by name, filling the ones an input lacks with nulls, instead of "
           "requiring identical schemas.",
           false,
           {}},
      },
      &MakeUnion, /*stateless=*/false, /*min_inputs=*/1, /*max_inputs=*/-1);
  RegisterWindowNode(registry);
  RegisterAnomalyNode(registry);
  RegisterReplicateNode(registry);
}

}  // namespace sluice
