#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "sluice/expr/expr.h"

namespace sluice {

namespace {

char Fold(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so that the
// common "nmae" for "name" counts as one edit.
size_t EditDistance(std::string_view a, std::string_view b) {
  const size_t n = a.size();
  const size_t m = b.size();
  std::vector<size_t> prev2(m + 1), prev(m + 1), cur(m + 1);
  for (size_t j = 0; j <= m; ++j) prev[j] = j;
  for (size_t i = 1; i <= n; ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= m; ++j) {
      const size_t cost = Fold(a[i - 1]) == Fold(b[j - 1]) ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && Fold(a[i - 1]) == Fold(b[j - 2]) && Fold(a[i - 2]) == Fold(b[j - 1])) {
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      }
    }
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[m];
}

}  // namespace

std::string ClosestName(std::string_view name, const std::vector<std::string>& candidates) {
  // Names far longer than any identifier are not typos worth a quadratic comparison.
  if (name.size() > 256) return "";
  const size_t limit = name.size() <= 4 ? 1 : name.size() <= 8 ? 2 : 3;
  std::string best;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    if (c.size() > 256) continue;
    const size_t d = EditDistance(name, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

std::string UnknownFieldMessage(std::string_view name, const Schema& schema) {
  std::vector<std::string> names;
  names.reserve(static_cast<size_t>(schema.num_fields()));
  for (const auto& f : schema.fields()) names.push_back(f.name);
  std::string out = fmt::format("unknown field '{}'", name);
  const std::string closest = ClosestName(name, names);
  if (!closest.empty()) return out + fmt::format(" \u2014 did you mean '{}'?", closest);
  if (names.empty()) return out + " (the input has no fields)";
  out += " (fields: ";
  constexpr size_t kMaxListed = 20;
  for (size_t i = 0; i < names.size() && i < kMaxListed; ++i) {
    if (i > 0) out += ", ";
    out += names[i];
  }
  if (names.size() > kMaxListed) out += fmt::format(", ... {} more", names.size() - kMaxListed);
  return out + ")";
}

}  // namespace sluice
