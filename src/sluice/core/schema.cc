#include "sluice/core/schema.h"

namespace sluice {

int Schema::FieldIndex(std::string_view name) const {
  for (size_t i = 0; i < fields_.size(); ++i) {
    if (fields_[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

std::string Schema::ToString() const {
  std::string out;
  for (const auto& f : fields_) {
    if (!out.empty()) out += ", ";
    out += f.name;
    out += ':';
    out += TypeName(f.type);
  }
  return out;
}

}  // namespace sluice
