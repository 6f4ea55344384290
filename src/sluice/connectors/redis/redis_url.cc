#include "sluice/connectors/redis/redis_url.h"

#include <charconv>

namespace sluice::redis {

namespace {

constexpr std::string_view kScheme = "redis://";

// Return the position of the '@' that ends the userinfo in `rest` (the text after
// "scheme://"), or npos. The last '@' wins: a password may hold '@', '/' or ':' unescaped,
// and nothing after the host (a db number) holds one.
size_t UserinfoEnd(std::string_view rest) { return rest.rfind('@'); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexValue(in[i + 1]);
    const int lo = HexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

// Parse all of `text` as a decimal number in [min, max].
bool ParseNumber(std::string_view text, int min, int max, int* out) {
  if (text.empty()) return false;
  int value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  if (value < min || value > max) return false;
  *out = value;
  return true;
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  std::string out(url);
  const size_t scheme = out.find("://");
  if (scheme == std::string::npos) return out;
  const size_t begin = scheme + 3;
  const size_t at = UserinfoEnd(std::string_view(out).substr(begin));
  if (at == std::string::npos) return out;
  const size_t colon = out.find(':', begin);
  if (colon == std::string::npos || colon >= begin + at) return out;
  out.replace(colon + 1, begin + at - colon - 1, "***");
  return out;
}

Result<RedisUrl> ParseRedisUrl(std::string_view url) {
  auto error = [&](std::string_view why) {
    return Status::ConfigError("Redis URL '{}': {}", RedactUrl(url), why);
  };
  if (url.rfind("rediss://", 0) == 0) {
    return error("TLS (rediss://) is not supported: this build's hiredis (0.14) has no TLS");
  }
  if (url.rfind(kScheme, 0) != 0) {
    return error("expected redis://[user][:password]@host[:port][/db]");
  }
  std::string_view rest = url.substr(kScheme.size());
  RedisUrl parsed;

  const size_t at = UserinfoEnd(rest);
  if (at != std::string_view::npos) {
    const std::string_view userinfo = rest.substr(0, at);
    const size_t colon = userinfo.find(':');
    if (!PercentDecode(userinfo.substr(0, colon), &parsed.user)) {
      return error("bad percent escape in the user name");
    }
    if (colon != std::string_view::npos &&
        !PercentDecode(userinfo.substr(colon + 1), &parsed.password)) {
      return error("bad percent escape in the password");
    }
    rest = rest.substr(at + 1);
  }
  if (rest.find_first_of("?#") != std::string_view::npos) {
    return error("query strings and fragments are not supported");
  }

  const size_t slash = rest.find('/');
  std::string_view hostport = rest.substr(0, slash);
  const std::string_view path =
      slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);

  std::string_view port_text;
  if (!hostport.empty() && hostport.front() == '[') {
    const size_t close = hostport.find(']');
    if (close == std::string_view::npos) return error("unterminated '[' in the host");
    parsed.host = std::string(hostport.substr(1, close - 1));
    const std::string_view after = hostport.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return error("expected ':port' after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return error("empty port");
    }
  } else {
    const size_t colon = hostport.find(':');
    parsed.host = std::string(hostport.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = hostport.substr(colon + 1);
      if (port_text.empty()) return error("empty port");
    }
  }
  if (parsed.host.empty()) return error("no host");
  if (!port_text.empty() && !ParseNumber(port_text, 1, 65535, &parsed.port)) {
    return error(fmt::format("port '{}' is not a number in 1..65535", port_text));
  }
  if (!path.empty() && !ParseNumber(path, 0, 1'000'000, &parsed.db)) {
    return error(fmt::format("database '{}' is not a number (redis://host:port/0)", path));
  }
  return parsed;
}

}  // namespace sluice::redis
