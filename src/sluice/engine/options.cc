#include "sluice/engine/options.h"

#include "sluice/core/json_text.h"
#include "sluice/core/units.h"

namespace sluice {

std::string_view OptionTypeName(OptionType type) {
  switch (type) {
    case OptionType::kString:
      return "string";
    case OptionType::kInt:
      return "integer";
    case OptionType::kFloat:
      return "number";
    case OptionType::kBool:
      return "bool";
    case OptionType::kByteSize:
      return "byte size";
    case OptionType::kDuration:
      return "duration";
    case OptionType::kStringList:
      return "list of strings";
    case OptionType::kExpr:
      return "expression";
    case OptionType::kMap:
      return "mapping";
    case OptionType::kEnum:
      return "one of";
  }
  return "?";
}

OptionSpec OptionSpec::Record(std::string name, std::string doc, std::vector<OptionSpec> fields,
                              bool required) {
  OptionSpec spec(std::move(name), OptionType::kMap, "", std::move(doc), required);
  spec.shape = MapShape::kRecord;
  spec.fields = std::move(fields);
  return spec;
}

OptionSpec OptionSpec::NamedRecords(std::string name, std::string doc,
                                    std::vector<OptionSpec> fields, bool required,
                                    bool names_as_list) {
  OptionSpec spec(std::move(name), OptionType::kMap, "", std::move(doc), required);
  spec.shape = MapShape::kNamedRecords;
  spec.fields = std::move(fields);
  spec.names_as_list = names_as_list;
  return spec;
}

namespace {
const OptionJson& NullJson() {
  static const OptionJson kNull;
  return kNull;
}
}  // namespace

const OptionJson& NodeOptions::GetJson(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? NullJson() : *it;
}

Result<SchemaPtr> NodeOptions::GetSchema(const std::string& name) const {
  if (!Has(name)) return SchemaPtr{};
  const auto& value = GetJson(name);
  if (!value.is_object()) return ErrorAt(name, "expected a mapping of column -> type");
  std::vector<Field> fields;
  for (const auto& [column, type_name] : value.items()) {
    if (!type_name.is_string()) {
      return ErrorAt(name, fmt::format("type of column '{}' must be a string", column));
    }
    auto type = ParseTypeName(type_name.get<std::string>());
    if (!type.ok()) return ErrorAt(name, type.status().message());
    fields.push_back({column, *type, true});
  }
  return MakeSchema(std::move(fields));
}

std::string NodeOptions::GetString(const std::string& name) const {
  const auto& v = GetJson(name);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_null()) return "";
  return JsonText(v);
}

int64_t NodeOptions::GetInt(const std::string& name) const {
  const auto& v = GetJson(name);
  if (v.is_number()) return v.get<int64_t>();
  return 0;
}

double NodeOptions::GetFloat(const std::string& name) const {
  const auto& v = GetJson(name);
  return v.is_number() ? v.get<double>() : 0.0;
}

bool NodeOptions::GetBool(const std::string& name) const {
  const auto& v = GetJson(name);
  return v.is_boolean() && v.get<bool>();
}

int64_t NodeOptions::GetByteSize(const std::string& name) const {
  const auto& v = GetJson(name);
  if (v.is_number()) return v.get<int64_t>();
  if (v.is_string()) return ParseByteSize(v.get<std::string>()).ValueOr(0);
  return 0;
}

int64_t NodeOptions::GetDurationMicros(const std::string& name) const {
  const auto& v = GetJson(name);
  if (v.is_number()) return v.get<int64_t>();  // the loader stores durations in µs
  if (v.is_string()) return ParseDurationMicros(v.get<std::string>()).ValueOr(0);
  return 0;
}

std::vector<std::string> NodeOptions::GetStringList(const std::string& name) const {
  const auto& v = GetJson(name);
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get<std::string>());
  } else if (v.is_array()) {
    for (const auto& e : v) out.push_back(e.is_string() ? e.get<std::string>() : JsonText(e));
  }
  return out;
}

std::string NodeOptions::LocationOf(const std::string& name) const {
  auto it = locations_.find(name);
  return it == locations_.end() ? node_location_ : it->second;
}

Status NodeOptions::ErrorAt(const std::string& name, const std::string& message) const {
  std::string loc = LocationOf(name);
  return Status(StatusCode::kConfigError, fmt::format("{}{}node '{}': option '{}': {}", loc,
                                                      loc.empty() ? "" : ": ", id_, name, message));
}

NodeOptions NodeOptions::ForTest(std::string id, OptionJson values, std::string type) {
  return NodeOptions(std::move(id), std::move(type), std::move(values), {}, "");
}

Result<TableOrQuery> GetTableOrQuery(const NodeOptions& o) {
  TableOrQuery t;
  t.query = o.GetString("query");
  t.table = o.GetString("table");
  if (t.query.empty() == t.table.empty()) {
    return o.ErrorAt(t.query.empty() ? "table" : "query", "give either 'query' or 'table'");
  }
  t.where = o.GetString("where");
  t.columns = o.GetStringList("columns");
  if (!t.where.empty() && t.table.empty()) {
    return o.ErrorAt("where", "'where' applies to 'table'; put the condition in 'query'");
  }
  if (!t.columns.empty() && t.table.empty()) {
    return o.ErrorAt("columns", "'columns' applies to 'table'; list the columns in 'query'");
  }
  return t;
}

}  // namespace sluice
