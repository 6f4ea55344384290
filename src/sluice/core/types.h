#pragma once

#include <cstdint>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice {

/// The logical type of a column. Fixed-width types store one value per row; the variable-width
/// ones (string, bytes, geometry, json) store int32 offsets into a byte buffer.
enum class TypeId : uint8_t {
  kBool,
  kInt64,
  kFloat64,
  kString,
  kBytes,
  kTimestamp,  ///< Microseconds since the Unix epoch, UTC.
  kGeometry,   ///< WKB or EWKB bytes (EWKB carries the SRID).
  kJson,       ///< UTF-8 JSON text.
};

inline constexpr int kNumTypes = 8;

/// Return the name used in configs and messages, e.g. "timestamp".
std::string_view TypeName(TypeId type);
/// Parse a type name as written in a config ("int64", "int", "double", "text", ...).
Result<TypeId> ParseTypeName(std::string_view name);

/// Return true for types stored as offsets + bytes.
constexpr bool IsVarWidth(TypeId t) {
  return t == TypeId::kString || t == TypeId::kBytes || t == TypeId::kGeometry ||
         t == TypeId::kJson;
}
/// Return the width in bytes of one value of a fixed-width type (0 for var-width types).
constexpr int FixedWidth(TypeId t) {
  switch (t) {
    case TypeId::kBool:
      return 1;
    case TypeId::kInt64:
    case TypeId::kFloat64:
    case TypeId::kTimestamp:
      return 8;
    default:
      return 0;
  }
}
constexpr bool IsNumeric(TypeId t) { return t == TypeId::kInt64 || t == TypeId::kFloat64; }

}  // namespace sluice
