#include "sluice/transforms/group_key.h"

#include <cstring>

namespace sluice::transforms_internal {

void EncodeKey(const Batch& batch, const std::vector<int>& cols, int64_t r, std::string* out) {
  for (const int c : cols) {
    const Column& col = batch.column(c);
    if (col.IsNull(r)) {
      out->push_back('\0');
      continue;
    }
    out->push_back('\1');
    if (IsVarWidth(col.type())) {
      const std::string_view v = col.GetView(r);
      const auto n = static_cast<uint32_t>(v.size());
      out->append(reinterpret_cast<const char*>(&n), sizeof(n));
      out->append(v);
    } else if (col.type() == TypeId::kBool) {
      out->push_back(col.GetBool(r) ? '\1' : '\0');
    } else {
      const int64_t v = col.GetInt64(r);  // int64, timestamp, and float64's bits
      out->append(reinterpret_cast<const char*>(&v), sizeof(v));
    }
  }
}

void DecodeKey(std::string_view key, std::vector<ColumnBuilder>* builders) {
  size_t p = 0;
  for (auto& b : *builders) {
    if (key[p++] == '\0') {
      b.AppendNull();
      continue;
    }
    if (IsVarWidth(b.type())) {
      uint32_t n;
      std::memcpy(&n, key.data() + p, sizeof(n));
      b.AppendString(key.substr(p + sizeof(n), n));
      p += sizeof(n) + n;
    } else if (b.type() == TypeId::kBool) {
      b.AppendBool(key[p++] != '\0');
    } else {
      int64_t v;
      std::memcpy(&v, key.data() + p, sizeof(v));
      if (b.type() == TypeId::kFloat64) {
        double d;
        std::memcpy(&d, &v, sizeof(d));
        b.AppendFloat64(d);
      } else {
        b.AppendInt64(v);
      }
      p += sizeof(v);
    }
  }
}

}  // namespace sluice::transforms_internal
