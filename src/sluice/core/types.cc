#include "sluice/core/types.h"

#include <string>

namespace sluice {

std::string_view TypeName(TypeId type) {
  switch (type) {
    case TypeId::kBool:
      return "bool";
    case TypeId::kInt64:
      return "int64";
    case TypeId::kFloat64:
      return "float64";
    case TypeId::kString:
      return "string";
    case TypeId::kBytes:
      return "bytes";
    case TypeId::kTimestamp:
      return "timestamp";
    case TypeId::kGeometry:
      return "geometry";
    case TypeId::kJson:
      return "json";
  }
  return "unknown";
}

Result<TypeId> ParseTypeName(std::string_view name) {
  std::string n(name);
  for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (n == "bool" || n == "boolean") return TypeId::kBool;
  if (n == "int64" || n == "int" || n == "integer" || n == "bigint" || n == "long")
    return TypeId::kInt64;
  if (n == "float64" || n == "float" || n == "double" || n == "real") return TypeId::kFloat64;
  if (n == "string" || n == "text" || n == "varchar") return TypeId::kString;
  if (n == "bytes" || n == "blob" || n == "bytea" || n == "binary") return TypeId::kBytes;
  if (n == "timestamp" || n == "timestamptz" || n == "datetime") return TypeId::kTimestamp;
  if (n == "geometry" || n == "wkb") return TypeId::kGeometry;
  if (n == "json" || n == "jsonb") return TypeId::kJson;
  return Status::Invalid(
      "unknown type '{}' (expected bool, int64, float64, string, bytes, timestamp, geometry or "
      "json)",
      name);
}

}  // namespace sluice
