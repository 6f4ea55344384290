#include "sluice/connectors/procfs/sample_rows.h"

namespace sluice::procfs {

namespace {

/// Return the length of the UTF-8 sequence at the start of `s`, or 0 when it is not one
/// (overlong forms, surrogates and code points past U+10FFFF are not).
size_t Utf8Length(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i, unsigned lo, unsigned hi) {
    return i < s.size() && b(i) >= lo && b(i) <= hi;
  };
  const unsigned c = b(0);
  if (c >= 0xC2 && c <= 0xDF) return cont(1, 0x80, 0xBF) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

}  // namespace

void AppendJsonStringBody(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      const size_t n = Utf8Length(s.substr(i));
      if (n == 0) {
        out->append("\xEF\xBF\xBD");  // U+FFFD
        ++i;
      } else {
        out->append(s.substr(i, n));
        i += n;
      }
      continue;
    }
    if (c == '"' || c == '\\') {
      out->push_back('\\');
      out->push_back(static_cast<char>(c));
    } else if (c == '\n') {
      out->append("\\n");
    } else if (c < 0x20 || c == 0x7f) {
      const char esc[] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      out->append(esc, sizeof(esc));
    } else {
      out->push_back(static_cast<char>(c));
    }
    ++i;
  }
}

void SampleRows::Add(std::string_view metric, double value, std::initializer_list<Label> labels) {
  Row r;
  r.metric = metric;
  r.value = value;
  r.labels_begin = static_cast<uint32_t>(labels_.size());
  labels_.push_back('{');
  bool first = true;
  for (const Label& l : labels) {
    if (!first) labels_.push_back(',');
    first = false;
    labels_.push_back('"');
    AppendJsonStringBody(l.name, &labels_);
    labels_.append("\":\"");
    AppendJsonStringBody(l.value, &labels_);
    labels_.push_back('"');
  }
  labels_.push_back('}');
  r.labels_size = static_cast<uint32_t>(labels_.size() - r.labels_begin);
  rows_.push_back(r);
}

size_t SampleRows::metric_bytes() const {
  size_t n = 0;
  for (const Row& r : rows_) n += r.metric.size();
  return n;
}

}  // namespace sluice::procfs
