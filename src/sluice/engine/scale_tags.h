#pragma once

// The columns a graph scale-up (workload 4) tags its copies with, shared by the `replicate`
// transform that adds them and the sinks whose `indexes: [auto]` indexes them
// (engine/index_entries.h).

#include <array>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::scale_tags {

/// The columns `replicate` adds to every copy, in the order it adds them.
inline constexpr std::string_view kSynthetic = "synthetic";
inline constexpr std::string_view kOperation = "scale_operation_id";
inline constexpr std::string_view kTemplate = "template_source_id";
inline constexpr std::string_view kCopy = "copy_number";
/// A column of the template's own that scale-up queries filter on (it is copied unchanged).
inline constexpr std::string_view kTenant = "tenant_id";

/// Return the indexes `indexes: [auto]` makes on a table whose columns `has_column` tells
/// apart, each as its columns in order: scale_operation_id (scale_down's WHERE),
/// template_source_id, tenant_id, and (synthetic, scale_operation_id) — each only when the
/// table has all its columns. `synthetic` gets no index of its own: the two-column index
/// leads with it and serves a query on it alone. Deterministic: the same columns give the
/// same list in the same order.
inline std::vector<std::vector<std::string>> AutoIndexes(
    const std::function<bool(std::string_view)>& has_column) {
  const std::array<std::vector<std::string_view>, 4> candidates = {{
      {kOperation},
      {kTemplate},
      {kTenant},
      {kSynthetic, kOperation},
  }};
  std::vector<std::vector<std::string>> out;
  for (const auto& columns : candidates) {
    bool all = true;
    for (std::string_view c : columns) all = all && has_column(c);
    if (all) out.emplace_back(columns.begin(), columns.end());
  }
  return out;
}

}  // namespace sluice::scale_tags
