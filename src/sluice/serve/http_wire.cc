#include "sluice/serve/http_wire.h"

#include <cstring>
#include <limits>

namespace sluice::serve {

namespace {

constexpr std::string_view kSlash = "/";

// RFC 9110 5.6.2: the characters of a token (method, header name).
bool IsTokenChar(unsigned char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Field values: visible characters, spaces, tabs and obs-text; no CR, LF, NUL or DEL.
bool IsFieldValue(std::string_view s) {
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c != '\t' && (c < 0x20 || c == 0x7F)) return false;
  }
  return true;
}

bool IsHexDigit(unsigned char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/// Whether `v` is a Host header's value (RFC 9112 3.2, RFC 3986 3.2.2): uri-host [":" port],
/// where uri-host is an IP literal in brackets or a reg-name (IPv4 addresses are reg-names
/// too); empty is allowed.
bool IsHostValue(std::string_view v) {
  auto reg_name_char = [](unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("-._~!$&'()*+,;=").find(static_cast<char>(c)) != std::string_view::npos;
  };
  size_t i = 0;
  if (!v.empty() && v[0] == '[') {
    const size_t close = v.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (const char ch : v.substr(1, close - 1)) {
      const auto c = static_cast<unsigned char>(ch);
      // IPv6 (hex digits, ':', '.', a zone as %25…: RFC 6874) or IPvFuture
      if (!reg_name_char(c) && c != ':' && c != '%') return false;
    }
    i = close + 1;
  } else {
    while (i < v.size() && v[i] != ':') {
      const auto c = static_cast<unsigned char>(v[i]);
      if (c == '%') {
        if (i + 2 >= v.size() || !IsHexDigit(static_cast<unsigned char>(v[i + 1])) ||
            !IsHexDigit(static_cast<unsigned char>(v[i + 2]))) {
          return false;
        }
        i += 3;
        continue;
      }
      if (!reg_name_char(c)) return false;
      ++i;
    }
  }
  if (i == v.size()) return true;
  if (v[i] != ':') return false;
  for (++i; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return false;
  }
  return true;
}

std::string_view TrimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsNoCase(s.substr(0, prefix.size()), prefix);
}

// Split a path-and-query ("/a?b") at its '?'.
void SplitQuery(std::string_view target, RequestHead* out) {
  const size_t q = target.find('?');
  out->path = target.substr(0, q);
  out->query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
}

// RFC 9112 3.2: origin-form ("/path?query"), asterisk-form ("*") and absolute-form
// ("http://host/path?query", which a proxy-aware client may send to a server too).
bool ParseTarget(std::string_view target, RequestHead* out) {
  for (char ch : target) {
    const auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7F) return false;
  }
  if (target.empty()) return false;
  if (target.front() == '/') {
    SplitQuery(target, out);
    return true;
  }
  if (target == "*") {
    out->path = target;
    return true;
  }
  size_t scheme = 0;
  if (StartsWithNoCase(target, "http://")) {
    scheme = 7;
  } else if (StartsWithNoCase(target, "https://")) {
    scheme = 8;
  } else {
    return false;
  }
  const std::string_view rest = target.substr(scheme);
  const size_t path_start = rest.find_first_of("/?");
  if (path_start == 0) return false;  // no authority
  if (path_start == std::string_view::npos || rest[path_start] == '?') {
    out->path = kSlash;
    out->query =
        path_start == std::string_view::npos ? std::string_view() : rest.substr(path_start + 1);
    return true;
  }
  SplitQuery(rest.substr(path_start), out);
  return true;
}

// "HTTP/1.1" → 1; -1 for HTTP/1.x beyond 1 or another major version (505), -2 for
// something else (400).
int ParseVersion(std::string_view v) {
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (v.size() != 8 || v.substr(0, 5) != "HTTP/" || !digit(v[5]) || v[6] != '.' || !digit(v[7])) {
    return -2;
  }
  if (v[5] != '1' || v[7] > '1') return -1;
  return v[7] - '0';
}

// Content-Length: 1*DIGIT; a number beyond int64 is held as INT64_MAX (answered 413).
bool ParseLength(std::string_view value, int64_t* length) {
  if (value.empty()) return false;
  int64_t n = 0;
  for (char c : value) {
    if (c < '0' || c > '9') return false;
    const int d = c - '0';
    n = n > (std::numeric_limits<int64_t>::max() - d) / 10 ? std::numeric_limits<int64_t>::max()
                                                           : n * 10 + d;
  }
  *length = n;
  return true;
}

// Visit each comma-separated element of a header list ("close, Upgrade"), trimmed.
template <typename F>
void ForEachListItem(std::string_view list, F visit) {
  while (!list.empty()) {
    const size_t comma = list.find(',');
    visit(TrimWhitespace(list.substr(0, comma)));
    list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
  }
}

}  // namespace

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

std::string_view RequestHead::Header(std::string_view name) const {
  for (const HttpHeader& h : headers) {
    if (EqualsNoCase(h.name, name)) return h.value;
  }
  return {};
}

size_t HeadScanner::Scan(std::string_view bytes) {
  while (searched_ < bytes.size()) {
    const void* found = std::memchr(bytes.data() + searched_, '\n', bytes.size() - searched_);
    if (found == nullptr) {
      searched_ = bytes.size();
      return 0;
    }
    const size_t end = static_cast<size_t>(static_cast<const char*>(found) - bytes.data());
    size_t length = end - line_start_;
    if (length > 0 && bytes[end - 1] == '\r') --length;
    searched_ = end + 1;
    line_start_ = end + 1;
    if (length > 0) {
      any_line_ = true;
    } else if (any_line_) {
      return end + 1;
    }
  }
  return 0;
}

HeadError ParseRequestHead(std::string_view head, RequestHead* out) {
  out->headers.clear();
  out->method = out->target = out->path = out->query = {};
  out->minor_version = 1;
  out->content_length = 0;
  out->transfer_encoding = out->expect_continue = false;
  out->keep_alive = true;
  out->size = 0;

  size_t pos = 0;
  // The next line without its line ending; false when no line ending is left.
  const auto next_line = [&](std::string_view* line) {
    const size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) return false;
    *line = head.substr(pos, nl - pos);
    if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
    pos = nl + 1;
    return true;
  };
  std::string_view line;
  do {
    if (!next_line(&line)) return {400, "incomplete request head"};
  } while (line.empty());

  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos) return {400, "malformed request line"};
  out->method = line.substr(0, sp1);
  out->target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (!IsToken(out->method)) return {400, "malformed request method"};
  const int minor = ParseVersion(line.substr(sp2 + 1));
  if (minor == -2) return {400, "malformed HTTP version"};
  if (minor == -1) return {505, "only HTTP/1.0 and HTTP/1.1 are served"};
  out->minor_version = minor;
  if (!ParseTarget(out->target, out)) return {400, "malformed request target"};

  bool has_length = false;
  int hosts = 0;
  bool close = false;
  bool keep_alive = false;
  while (true) {
    if (!next_line(&line)) return {400, "incomplete request head"};
    if (line.empty()) break;
    if (line.front() == ' ' || line.front() == '\t') {
      return {400, "obsolete line folding in a header field"};
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) {
      return {400, "malformed header field"};
    }
    const HttpHeader h{line.substr(0, colon), TrimWhitespace(line.substr(colon + 1))};
    if (!IsFieldValue(h.value)) return {400, "invalid character in a header field"};
    if (out->headers.size() >= kMaxRequestHeaders) {
      return {431, "more than 100 header fields"};
    }
    out->headers.push_back(h);
    if (EqualsNoCase(h.name, "Content-Length")) {
      int64_t length = 0;
      if (!ParseLength(h.value, &length)) return {400, "malformed Content-Length"};
      if (has_length && length != out->content_length) {
        return {400, "conflicting Content-Length headers"};
      }
      has_length = true;
      out->content_length = length;
    } else if (EqualsNoCase(h.name, "Transfer-Encoding")) {
      out->transfer_encoding = true;
    } else if (EqualsNoCase(h.name, "Connection")) {
      ForEachListItem(h.value, [&](std::string_view option) {
        close = close || EqualsNoCase(option, "close");
        keep_alive = keep_alive || EqualsNoCase(option, "keep-alive");
      });
    } else if (EqualsNoCase(h.name, "Host")) {
      if (!IsHostValue(h.value)) return {400, "malformed Host header field"};
      ++hosts;
    } else if (EqualsNoCase(h.name, "Expect")) {
      out->expect_continue = EqualsNoCase(h.value, "100-continue");
    }
  }
  out->size = pos;
  if (pos > kMaxRequestHeadBytes) return {431, "request line and headers exceed 64 KiB"};
  if (has_length && out->transfer_encoding) {
    return {400, "both Content-Length and Transfer-Encoding"};
  }
  // RFC 9112 3.2: a server must answer 400 to an HTTP/1.1 request without Host, and to any
  // with more than one (or one whose value is not a host, above).
  if (hosts > 1) return {400, "more than one Host header field"};
  if (hosts == 0 && minor == 1) return {400, "an HTTP/1.1 request without a Host header field"};
  out->keep_alive = !close && (minor == 1 || keep_alive);
  return {};
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void AppendStatusLine(int status, std::string* out) {
  out->append("HTTP/1.1 ");
  out->append(std::to_string(status));
  out->push_back(' ');
  out->append(ReasonPhrase(status));
  out->append("\r\n");
}

void AppendHeader(std::string_view name, std::string_view value, std::string* out) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

bool IsValidHeaderField(std::string_view name, std::string_view value) {
  return IsToken(name) && IsFieldValue(value);
}

}  // namespace sluice::serve
