#include "sluice/connectors/postgres/postgres_internal.h"

#include <algorithm>

namespace sluice::pg_internal {

std::string QuoteIdentifier(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '.') {
      out += "\".\"";
    } else if (c == '"') {
      out += "\"\"";
    } else {
      out.push_back(c);
    }
  }
  out.push_back('"');
  return out;
}

std::string QuoteName(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string_view BaseName(std::string_view name) {
  const size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? name : name.substr(dot + 1);
}

std::string QuoteLiteral(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('\'');
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

void CancellableClock::SleepMicros(int64_t micros) {
  constexpr int64_t kSliceMicros = 50'000;
  const int64_t end = NowMicros() + micros;
  for (int64_t left = micros; left > 0 && !(ctx_ != nullptr && ctx_->cancelled());
       left = end - NowMicros()) {
    SystemClock()->SleepMicros(std::min(left, kSliceMicros));
  }
}

}  // namespace sluice::pg_internal
