#pragma once

// Group keys of stateful transforms (window, anomaly): the values of the key columns of one row
// encoded as bytes, to look groups up in hash maps and to write the key columns back out.

#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"

namespace sluice::transforms_internal {

/// Append the key of row `r` to `out`: for each of `cols`, a null tag, or a tag and the
/// value's bytes. Two rows get equal keys exactly when their key values are equal (NaN and -0.0 by
/// their bits).
void EncodeKey(const Batch& batch, const std::vector<int>& cols, int64_t r, std::string* out);

/// Append the values of `key` (made by EncodeKey) to `builders`, one per key column.
void DecodeKey(std::string_view key, std::vector<ColumnBuilder>* builders);

}  // namespace sluice::transforms_internal
