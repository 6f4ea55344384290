#include "sluice/core/time.h"

#include <chrono>
#include <cstdio>
#include <cstring>

namespace sluice {

// Howard Hinnant's civil-date algorithms (public domain description).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void CivilFromDays(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

namespace {
inline void Put2(char* p, unsigned v) {
  p[0] = static_cast<char>('0' + v / 10);
  p[1] = static_cast<char>('0' + v % 10);
}
}  // namespace

int FormatTimestamp(int64_t micros, char* out) {
  // Floor division without overflow, even for INT64_MIN.
  int64_t days = micros / kMicrosPerDay;
  int64_t rem = micros % kMicrosPerDay;
  if (rem < 0) {
    rem += kMicrosPerDay;
    --days;
  }
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char* p = out;
  if (y < 0 || y > 9999) {
    p += std::snprintf(p, 8, "%+05lld", static_cast<long long>(y));
  } else {
    const auto uy = static_cast<unsigned>(y);
    Put2(p, uy / 100);
    Put2(p + 2, uy % 100);
    p += 4;
  }
  *p++ = '-';
  Put2(p, m);
  p += 2;
  *p++ = '-';
  Put2(p, d);
  p += 2;
  *p++ = 'T';
  const auto secs = static_cast<unsigned>(rem / kMicrosPerSecond);
  const auto frac = static_cast<unsigned>(rem % kMicrosPerSecond);
  Put2(p, secs / 3600);
  p[2] = ':';
  Put2(p + 3, secs / 60 % 60);
  p[5] = ':';
  Put2(p + 6, secs % 60);
  p += 8;
  if (frac != 0) {
    *p++ = '.';
    unsigned f = frac;
    for (int i = 5; i >= 0; --i) {
      p[i] = static_cast<char>('0' + f % 10);
      f /= 10;
    }
    p += 6;
  }
  *p++ = 'Z';
  return static_cast<int>(p - out);
}

std::string FormatTimestamp(int64_t micros) {
  char buf[40];
  const int n = FormatTimestamp(micros, buf);
  return std::string(buf, static_cast<size_t>(n));
}

namespace {
bool ReadDigits(std::string_view s, size_t* pos, int count, int64_t* out) {
  int64_t v = 0;
  for (int i = 0; i < count; ++i) {
    if (*pos >= s.size() || s[*pos] < '0' || s[*pos] > '9') return false;
    v = v * 10 + (s[*pos] - '0');
    ++*pos;
  }
  *out = v;
  return true;
}
}  // namespace

Result<int64_t> ParseTimestamp(std::string_view s) {
  auto bad = [&] {
    return Status::Invalid("'{}' is not a timestamp (expected YYYY-MM-DD[THH:MM:SS[.ffffff]][Z])",
                           s.substr(0, 64));
  };
  size_t pos = 0;
  int64_t y, mo, d, h = 0, mi = 0, sec = 0, frac = 0;
  if (!ReadDigits(s, &pos, 4, &y) || pos >= s.size() || s[pos++] != '-' ||
      !ReadDigits(s, &pos, 2, &mo) || pos >= s.size() || s[pos++] != '-' ||
      !ReadDigits(s, &pos, 2, &d)) {
    return bad();
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31) return bad();
  int64_t offset_us = 0;
  if (pos < s.size() && (s[pos] == 'T' || s[pos] == ' ' || s[pos] == 't')) {
    ++pos;
    if (!ReadDigits(s, &pos, 2, &h) || pos >= s.size() || s[pos++] != ':' ||
        !ReadDigits(s, &pos, 2, &mi)) {
      return bad();
    }
    if (pos < s.size() && s[pos] == ':') {
      ++pos;
      if (!ReadDigits(s, &pos, 2, &sec)) return bad();
      if (pos < s.size() && s[pos] == '.') {
        ++pos;
        int digits = 0;
        while (pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
          if (digits < 6) {
            frac = frac * 10 + (s[pos] - '0');
            ++digits;
          }
          ++pos;
        }
        if (digits == 0) return bad();
        while (digits++ < 6) frac *= 10;
      }
    }
    if (h > 23 || mi > 59 || sec > 60) return bad();
    if (pos < s.size()) {
      const char c = s[pos];
      if (c == 'Z' || c == 'z') {
        ++pos;
      } else if (c == '+' || c == '-') {
        ++pos;
        int64_t oh, om = 0;
        if (!ReadDigits(s, &pos, 2, &oh)) return bad();
        if (pos < s.size() && s[pos] == ':') ++pos;
        if (pos < s.size() && !ReadDigits(s, &pos, 2, &om)) return bad();
        offset_us = (oh * 3600 + om * 60) * kMicrosPerSecond * (c == '+' ? 1 : -1);
      }
    }
  }
  if (pos != s.size()) return bad();
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return days * kMicrosPerDay + ((h * 60 + mi) * 60 + sec) * kMicrosPerSecond + frac - offset_us;
}

int64_t NowMicros() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string FormatDate(int64_t micros) {
  int64_t days = micros / kMicrosPerDay;
  if (micros % kMicrosPerDay < 0) --days;  // floor, for times before 1970
  int64_t y;
  unsigned m, d;
  CivilFromDays(days, &y, &m, &d);
  char out[32];
  const int n =
      std::snprintf(out, sizeof(out), "%04lld-%02u-%02u", static_cast<long long>(y), m, d);
  return std::string(out, static_cast<size_t>(n));
}

}  // namespace sluice
