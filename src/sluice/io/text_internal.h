#pragma once

// Helpers shared by the JSONL and CSV encoders and decoders. Private to src/sluice/io.

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

#include "sluice/core/result.h"
#include "sluice/core/time.h"

namespace sluice::io::internal {

/// The most bytes WriteDouble and WriteInt64 write.
inline constexpr size_t kMaxNumberChars = 32;

/// Copy `s` to `p`; return the end.
inline char* CopyBytes(std::string_view s, char* p) { return std::copy_n(s.data(), s.size(), p); }

/// Write `v` in decimal at `p`; return the end.
inline char* WriteInt64(int64_t v, char* p) { return std::to_chars(p, p + kMaxNumberChars, v).ptr; }

/// Write the shortest text that reads back as exactly `v`, with ".0" added when it would
/// otherwise read as an integer (so a float column stays float when re-read). Non-finite
/// values are written as "nan", "inf", "-inf". Return the end.
inline char* WriteDouble(double v, char* p) {
  char* end = std::to_chars(p, p + kMaxNumberChars, v).ptr;
  if (!std::isfinite(v)) return end;
  for (const char* q = p; q < end; ++q) {
    if (*q == '.' || *q == 'e') return end;
  }
  end[0] = '.';
  end[1] = '0';
  return end + 2;
}

/// The range of timestamps ISO-8601 writes with a 4-digit year: 0000-01-01T00:00:00Z to
/// 9999-12-31T23:59:59.999999Z, in µs since the epoch.
inline constexpr int64_t kMinIsoMicros = -62'167'219'200LL * 1'000'000;
inline constexpr int64_t kMaxIsoMicros = 253'402'300'800LL * 1'000'000 - 1;

/// Write a timestamp of `micros` at `p` (at most 42 bytes), quoted when `quoted`: an ISO-8601
/// string inside the 4-digit-year range; INT64_MAX and INT64_MIN (PostgreSQL's ±infinity) as
/// "infinity" and "-infinity"; anything else as the integer of µs (unquoted), which the
/// decoders read back. Return the end.
inline char* WriteTimestamp(int64_t micros, bool quoted, char* p) {
  std::string_view infinity;
  if (micros == std::numeric_limits<int64_t>::max()) infinity = "infinity";
  if (micros == std::numeric_limits<int64_t>::min()) infinity = "-infinity";
  if (infinity.empty() && (micros < kMinIsoMicros || micros > kMaxIsoMicros)) {
    return WriteInt64(micros, p);
  }
  if (quoted) *p++ = '"';
  if (infinity.empty()) {
    p += FormatTimestamp(micros, p);
  } else {
    p = CopyBytes(infinity, p);
  }
  if (quoted) *p++ = '"';
  return p;
}

/// Return the timestamp "infinity" or "-infinity" stands for (INT64_MAX / INT64_MIN), or false
/// for any other text.
inline bool ParseInfiniteTimestamp(std::string_view s, int64_t* out) {
  if (s == "infinity" || s == "+infinity") {
    *out = std::numeric_limits<int64_t>::max();
    return true;
  }
  if (s == "-infinity") {
    *out = std::numeric_limits<int64_t>::min();
    return true;
  }
  return false;
}

/// Return the non-finite double `s` spells ("NaN", "Infinity", "-Infinity", as PostgreSQL and
/// the JSON encoder write them; also "nan", "inf", "-inf", "+Infinity"), or false.
inline bool ParseNonFinite(std::string_view s, double* out) {
  auto is = [&](std::string_view word) {
    if (s.size() != word.size()) return false;
    for (size_t i = 0; i < s.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(s[i])) != word[i]) return false;
    }
    return true;
  };
  if (is("nan")) {
    *out = std::numeric_limits<double>::quiet_NaN();
  } else if (is("infinity") || is("+infinity") || is("inf") || is("+inf")) {
    *out = std::numeric_limits<double>::infinity();
  } else if (is("-infinity") || is("-inf")) {
    *out = -std::numeric_limits<double>::infinity();
  } else {
    return false;
  }
  return true;
}

/// Write `bytes` as lower-case hex at `p` (2 bytes out per byte in); return the end.
inline char* WriteHex(std::string_view bytes, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (unsigned char c : bytes) {
    *p++ = kHex[c >> 4];
    *p++ = kHex[c & 15];
  }
  return p;
}

/// Decode hex text (either case; an optional "\x" prefix as PostgreSQL writes) into `out`
/// (replacing its content); return false if `hex` is not hex.
inline bool ParseHex(std::string_view hex, std::string* out) {
  if (hex.size() >= 2 && hex[0] == '\\' && hex[1] == 'x') hex.remove_prefix(2);
  if (hex.size() % 2 != 0) return false;
  out->resize(hex.size() / 2);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < out->size(); ++i) {
    const int hi = nibble(hex[2 * i]);
    const int lo = nibble(hex[2 * i + 1]);
    if ((hi | lo) < 0) return false;
    (*out)[i] = static_cast<char>(hi * 16 + lo);
  }
  return true;
}

/// Return true if any of the 8 bytes of `w` is zero.
inline bool HasZeroByte(uint64_t w) {
  return ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL) != 0;
}
/// Return `w` with `c` XORed into each byte (bytes equal to `c` become zero).
inline uint64_t XorBytes(uint64_t w, unsigned char c) { return w ^ (0x0101010101010101ULL * c); }

/// Return true if some byte of `w` must be escaped in a JSON string: a control character
/// (< 0x20), a double quote or a backslash.
inline bool JsonWordNeedsEscape(uint64_t w) {
  const uint64_t control = (w - 0x2020202020202020ULL) & ~w & 0x8080808080808080ULL;
  return control != 0 || HasZeroByte(XorBytes(w, '"')) || HasZeroByte(XorBytes(w, '\\'));
}

/// Write `s` as a quoted JSON string at `p` (at most 6 * s.size() + 2 bytes); return the end.
/// Bytes >= 0x80 are copied as they are (UTF-8 passes through).
inline char* WriteJsonString(std::string_view s, char* p) {
  static constexpr char kHex[] = "0123456789abcdef";
  *p++ = '"';
  const char* in = s.data();
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    // Copy runs of 8 clean bytes at a time; fall back to bytes for a word that needs work.
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, in + i, 8);
      if (JsonWordNeedsEscape(w)) break;
      std::memcpy(p, in + i, 8);
      p += 8;
      i += 8;
    }
    const size_t stop = std::min(n, i + 8);
    for (; i < stop; ++i) {
      const auto c = static_cast<unsigned char>(in[i]);
      if (c >= 0x20 && c != '"' && c != '\\') {
        *p++ = static_cast<char>(c);
        continue;
      }
      *p++ = '\\';
      switch (c) {
        case '"':
          *p++ = '"';
          break;
        case '\\':
          *p++ = '\\';
          break;
        case '\n':
          *p++ = 'n';
          break;
        case '\r':
          *p++ = 'r';
          break;
        case '\t':
          *p++ = 't';
          break;
        case '\b':
          *p++ = 'b';
          break;
        case '\f':
          *p++ = 'f';
          break;
        default:
          p[0] = 'u';
          p[1] = '0';
          p[2] = '0';
          p[3] = kHex[c >> 4];
          p[4] = kHex[c & 15];
          p += 5;
      }
    }
  }
  *p++ = '"';
  return p;
}

/// Return at most the first 40 bytes of `s` for quoting data in a message, with control
/// characters and bytes that are not well-formed UTF-8 replaced by '?' (messages end up in
/// JSON reports and terminals).
inline std::string Excerpt(std::string_view s) {
  std::string out;
  const size_t n = std::min<size_t>(s.size(), 40);
  for (size_t i = 0; i < n;) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      out.push_back(c < 0x20 || c == 0x7f ? '?' : static_cast<char>(c));
      ++i;
      continue;
    }
    const size_t len = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 ? 2 : 0;
    bool ok = len != 0 && i + len <= n && c < 0xf5;
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
    if (ok) {
      out.append(s.substr(i, len));
      i += len;
    } else {
      out.push_back('?');
      ++i;
    }
  }
  return out;
}

/// Return an InvalidArgument status "<source>:<line>: <message>", or "line <line>: <message>"
/// when `source` is empty.
inline Status LineError(const std::string& source, int64_t line, std::string_view message) {
  if (source.empty()) return Status::Invalid("line {}: {}", line, message);
  return Status::Invalid("{}:{}: {}", source, line, message);
}

}  // namespace sluice::io::internal
