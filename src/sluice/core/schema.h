#pragma once

#include <memory>
#include <string>
#include <vector>

#include "sluice/core/types.h"

namespace sluice {

/// One named, typed column of a schema.
struct Field {
  std::string name;
  TypeId type = TypeId::kString;
  bool nullable = true;

  bool operator==(const Field&) const = default;
};

/// An ordered list of fields. Immutable once shared; batches share it by SchemaPtr.
class Schema {
 public:
  Schema() = default;
  explicit Schema(std::vector<Field> fields) : fields_(std::move(fields)) {}

  int num_fields() const { return static_cast<int>(fields_.size()); }
  const Field& field(int i) const { return fields_[static_cast<size_t>(i)]; }
  const std::vector<Field>& fields() const { return fields_; }
  /// Return the index of the field called `name`, or -1.
  int FieldIndex(std::string_view name) const;
  /// Return "name:type, name:type".
  std::string ToString() const;

  bool operator==(const Schema& other) const { return fields_ == other.fields_; }

 private:
  std::vector<Field> fields_;
};

using SchemaPtr = std::shared_ptr<const Schema>;

/// Return a shared schema built from `fields`.
inline SchemaPtr MakeSchema(std::vector<Field> fields) {
  return std::make_shared<const Schema>(std::move(fields));
}

}  // namespace sluice
