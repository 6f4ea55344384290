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

void DecodeKeys(std::vector<std::string_view>* keys, std::vector<ColumnBuilder>* builders) {
  const auto n = static_cast<int64_t>(keys->size());
  std::string_view* k = keys->data();
  if (builders->size() == 1 && (*builders)[0].type() != TypeId::kBool) {
    ColumnBuilder& b = (*builders)[0];
    if (IsVarWidth(b.type())) {
      bool any_null = false;
      for (int64_t i = 0; i < n; ++i) any_null |= k[i][0] == '\0';
      if (!any_null) {
        // A tag and a uint32 length before each value's bytes.
        constexpr size_t kHeader = 1 + sizeof(uint32_t);
        for (int64_t i = 0; i < n; ++i) k[i].remove_prefix(kHeader);
        b.AppendStrings(n, [k](int64_t i) { return k[i]; });
        return;
      }
    } else {
      // A tag and the value's 8 bytes (int64, timestamp, float64's bits).
      const int64_t base = b.length();
      int64_t* out = b.AppendUninitialized<int64_t>(n);
      for (int64_t i = 0; i < n; ++i) {
        if (k[i][0] == '\0') {
          b.SetNull(base + i);
        } else {
          std::memcpy(&out[i], k[i].data() + 1, sizeof(int64_t));
        }
      }
      return;
    }
  }
  for (int64_t i = 0; i < n; ++i) DecodeKey(k[i], builders);
}

bool KeyEncodingValid(std::string_view bytes, const std::vector<TypeId>& types) {
  size_t p = 0;
  for (const TypeId t : types) {
    if (p >= bytes.size()) return false;
    const char tag = bytes[p++];
    if (tag == '\0') continue;
    if (tag != '\1') return false;
    if (IsVarWidth(t)) {
      uint32_t n;
      if (bytes.size() - p < sizeof(n)) return false;
      std::memcpy(&n, bytes.data() + p, sizeof(n));
      p += sizeof(n);
      if (bytes.size() - p < n) return false;
      p += n;
    } else if (t == TypeId::kBool) {
      if (p >= bytes.size() || (bytes[p] != '\0' && bytes[p] != '\1')) return false;
      ++p;
    } else {
      if (bytes.size() - p < sizeof(int64_t)) return false;
      p += sizeof(int64_t);
    }
  }
  return p == bytes.size();
}

}  // namespace sluice::transforms_internal
