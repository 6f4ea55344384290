#pragma once

// Group keys of stateful transforms (window, anomaly): the values of the key columns of one row
// encoded as bytes, to look groups up in hash maps and to write the key columns back out.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"

namespace sluice::transforms_internal {

/// Return a hash of an encoded key for open-addressing tables: FNV-1a over 8-byte words, then
/// a finalizer that mixes every bit into the low ones (tables index by the low bits).
inline uint64_t KeyHash(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ULL ^ key.size();
  size_t i = 0;
  for (; i + 8 <= key.size(); i += 8) {
    uint64_t w;
    std::memcpy(&w, key.data() + i, 8);
    h = (h ^ w) * 0x100000001b3ULL;
  }
  uint64_t tail = 0;
  std::memcpy(&tail, key.data() + i, key.size() - i);
  h = (h ^ tail) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

/// Append the key of row `r` to `out`: for each of `cols`, a null tag, or a tag and the
/// value's bytes. Two rows get equal keys exactly when their key values are equal (NaN and -0.0 by
/// their bits).
void EncodeKey(const Batch& batch, const std::vector<int>& cols, int64_t r, std::string* out);

/// Append the values of `key` (made by EncodeKey) to `builders`, one per key column.
void DecodeKey(std::string_view key, std::vector<ColumnBuilder>* builders);

/// Append the values of `keys` (each made by EncodeKey) to `builders`, one per key column:
/// DecodeKey for many keys. A single key column is written in bulk (its strings in one growth
/// of the column, its 8-byte values straight into the column's memory) rather than row by row;
/// other keys go row by row. `keys` may be overwritten.
void DecodeKeys(std::vector<std::string_view>* keys, std::vector<ColumnBuilder>* builders);

/// Return true when `bytes` is exactly what EncodeKey makes of one row of columns of `types`
/// (tags, lengths, no byte left over), so that DecodeKey may read it: for bytes that come
/// from outside the process (a cache server).
bool KeyEncodingValid(std::string_view bytes, const std::vector<TypeId>& types);

}  // namespace sluice::transforms_internal
