#include "sluice/core/units.h"

#include <cctype>
#include <string>

namespace sluice {

namespace {
std::string Lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}
}  // namespace

Result<int64_t> ParseByteSize(std::string_view text) {
  auto bad = [&] {
    return Status::Invalid("'{}' is not a byte size (expected e.g. 64KiB, 512MiB, 1GB or 1048576)",
                           text);
  };
  size_t i = 0;
  double number = 0;
  bool digits = false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    number = number * 10 + (text[i++] - '0');
    digits = true;
  }
  if (i < text.size() && text[i] == '.') {
    double scale = 0.1;
    for (++i; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
      number += (text[i] - '0') * scale;
      scale /= 10;
      digits = true;
    }
  }
  if (!digits) return bad();
  while (i < text.size() && text[i] == ' ') ++i;
  const std::string unit = Lower(text.substr(i));
  double mult = 0;
  if (unit.empty() || unit == "b")
    mult = 1;
  else if (unit == "k" || unit == "kb")
    mult = 1e3;
  else if (unit == "kib")
    mult = 1024.0;
  else if (unit == "m" || unit == "mb")
    mult = 1e6;
  else if (unit == "mib")
    mult = 1024.0 * 1024;
  else if (unit == "g" || unit == "gb")
    mult = 1e9;
  else if (unit == "gib")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "tib")
    mult = 1024.0 * 1024 * 1024 * 1024;
  else
    return bad();
  const double bytes = number * mult;
  if (bytes > 9e18) return bad();
  return static_cast<int64_t>(bytes);
}

Result<int64_t> ParseDurationMicros(std::string_view text) {
  auto bad = [&] {
    return Status::Invalid("'{}' is not a duration (expected e.g. 500ms, 2s, 5m, 1h30m, 90d)",
                           text);
  };
  if (text.empty()) return bad();
  int64_t total = 0;
  size_t i = 0;
  while (i < text.size()) {
    int64_t n = 0;
    bool digits = false;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (n > 1'000'000'000'000) return bad();
      n = n * 10 + (text[i++] - '0');
      digits = true;
    }
    if (!digits) return bad();
    size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    const std::string unit = Lower(text.substr(i, j - i));
    i = j;
    int64_t mult;
    if (unit == "us")
      mult = 1;
    else if (unit == "ms")
      mult = 1000;
    else if (unit == "s" || unit.empty())
      mult = 1'000'000;
    else if (unit == "m" || unit == "min")
      mult = 60'000'000;
    else if (unit == "h")
      mult = 3'600'000'000;
    else if (unit == "d")
      mult = 86'400'000'000;
    else if (unit == "w")
      mult = 7 * 86'400'000'000;
    else
      return bad();
    int64_t part;
    if (__builtin_mul_overflow(n, mult, &part) || __builtin_add_overflow(total, part, &total)) {
      return Status::Invalid("'{}' is too long a duration", text);
    }
  }
  return total;
}

std::string WithCommas(int64_t n) {
  const uint64_t mag = n < 0 ? 0 - static_cast<uint64_t>(n) : static_cast<uint64_t>(n);
  const std::string digits = std::to_string(mag);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return n < 0 ? "-" + out : out;
}

}  // namespace sluice
