#pragma once

// The `indexes` option of the database sinks (postgres, sqlite): one index per entry — a
// column, several comma-separated ("host, ts"), or `auto` for a graph scale-up's tag columns.
// One reading of it for both sinks.

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/engine/scale_tags.h"

namespace sluice {

/// The entry of `indexes` that stands for scale_tags::AutoIndexes.
inline constexpr std::string_view kAutoIndexes = "auto";

/// Return true when `entries` hold `auto`.
inline bool HasAutoIndexes(const std::vector<std::string>& entries) {
  for (const std::string& e : entries) {
    if (e == kAutoIndexes) return true;
  }
  return false;
}

/// Return the columns of one `indexes` entry ("host, ts" -> {"host", "ts"}), trimmed of
/// spaces, as views into `entry`; an empty name (",ts") stays empty for the caller to refuse.
inline std::vector<std::string_view> SplitIndexColumns(std::string_view entry) {
  std::vector<std::string_view> cols;
  while (true) {
    const size_t comma = entry.find(',');
    std::string_view col = entry.substr(0, comma);
    while (!col.empty() && col.front() == ' ') col.remove_prefix(1);
    while (!col.empty() && col.back() == ' ') col.remove_suffix(1);
    cols.push_back(col);
    if (comma == std::string_view::npos) return cols;
    entry.remove_prefix(comma + 1);
  }
}

/// Return the indexes `entries` ask for, each as its columns in order: an entry's columns, or
/// for `auto` the tag indexes of a table whose columns `has_column` tells apart
/// (scale_tags::AutoIndexes; none when it has no tag column). Whether the table has an
/// entry's columns is left to the caller, which reports it with the table's name.
inline std::vector<std::vector<std::string>> ExpandIndexEntries(
    const std::vector<std::string>& entries,
    const std::function<bool(std::string_view)>& has_column) {
  std::vector<std::vector<std::string>> out;
  for (const std::string& entry : entries) {
    if (entry == kAutoIndexes) {
      for (auto& cols : scale_tags::AutoIndexes(has_column)) out.push_back(std::move(cols));
      continue;
    }
    std::vector<std::string> cols;
    for (const std::string_view c : SplitIndexColumns(entry)) cols.emplace_back(c);
    out.push_back(std::move(cols));
  }
  return out;
}

}  // namespace sluice
