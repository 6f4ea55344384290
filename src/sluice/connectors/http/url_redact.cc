#include "sluice/connectors/http/http_post.h"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

// RedactUrl and ScrubUrl without libcurl: the alert rules validate webhook URLs with them, and
// `sluice-agent` (which loads configs but posts nothing) links this object, not http_post.cc's.
namespace sluice::http {

namespace {

constexpr std::string_view kInvalidUrl = "<invalid URL>";

/// The parts of `scheme://userinfo@host:port/path?query#fragment` (views into the URL).
struct UrlParts {
  std::string_view scheme;
  std::string_view userinfo;  ///< Without the '@'; empty when absent.
  std::string_view host;      ///< With the brackets of an IPv6 literal.
  std::string_view port;      ///< With its ':'; empty when absent.
  std::string_view tail;      ///< Path, query and fragment: everything after the host.
};

bool IsSchemeChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '+' || c == '-' || c == '.';
}

/// A registered name or IPv4 address: letters, digits, "-._~" and percent escapes; bytes from
/// 0x80 up pass (an internationalized name written in UTF-8).
bool IsHostChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return std::isalnum(u) != 0 || u >= 0x80 || c == '-' || c == '.' || c == '_' || c == '~' ||
         c == '%';
}

/// The inside of an IPv6 literal: hex digits, ':' and '.', and a zone after '%'.
bool IsIpv6Char(char c) {
  return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.' || c == '%' ||
         std::isalnum(static_cast<unsigned char>(c)) != 0;
}

/// Split `url`; false when it is not `scheme://host[:port][tail]` with a plausible host.
bool SplitUrl(std::string_view url, UrlParts* parts) {
  const size_t sep = url.find("://");
  if (sep == std::string_view::npos || sep == 0) return false;
  parts->scheme = url.substr(0, sep);
  if (std::isalpha(static_cast<unsigned char>(parts->scheme[0])) == 0 ||
      !std::all_of(parts->scheme.begin(), parts->scheme.end(), IsSchemeChar)) {
    return false;
  }
  std::string_view rest = url.substr(sep + 3);
  const size_t authority_end = std::min(rest.find_first_of("/?#"), rest.size());
  std::string_view authority = rest.substr(0, authority_end);
  parts->tail = rest.substr(authority_end);
  // The last '@' ends the user-info: a password may hold '@' only percent-encoded, but be
  // lenient with what people paste.
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    parts->userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
  }
  std::string_view after_host;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos || close < 2) return false;
    parts->host = authority.substr(0, close + 1);
    const std::string_view inside = authority.substr(1, close - 1);
    if (!std::all_of(inside.begin(), inside.end(), IsIpv6Char) ||
        inside.find(':') == std::string_view::npos) {
      return false;
    }
    after_host = authority.substr(close + 1);
  } else {
    const size_t colon = std::min(authority.find(':'), authority.size());
    parts->host = authority.substr(0, colon);
    if (parts->host.empty() || !std::all_of(parts->host.begin(), parts->host.end(), IsHostChar)) {
      return false;
    }
    after_host = authority.substr(colon);
  }
  if (!after_host.empty()) {
    const std::string_view digits = after_host.substr(1);
    if (after_host[0] != ':' || digits.empty() || digits.size() > 5 ||
        !std::all_of(digits.begin(), digits.end(),
                     [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; })) {
      return false;
    }
    parts->port = after_host;
  }
  return true;
}

void ReplaceAll(std::string* text, std::string_view what, std::string_view with) {
  if (what.empty()) return;
  for (size_t at = text->find(what); at != std::string::npos;
       at = text->find(what, at + with.size())) {
    text->replace(at, what.size(), with);
  }
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  UrlParts p;
  if (!SplitUrl(url, &p)) return std::string(kInvalidUrl);
  std::string out;
  out.reserve(p.scheme.size() + p.host.size() + p.port.size() + 8);
  out.append(p.scheme).append("://").append(p.host).append(p.port);
  if (p.tail == "/") {
    out += '/';
  } else if (!p.tail.empty()) {
    out += "/…";
  }
  return out;
}

std::string ScrubUrl(std::string message, std::string_view url) {
  if (url.empty()) return message;
  ReplaceAll(&message, url, RedactUrl(url));
  UrlParts p;
  // Parts shorter than that are no secret worth hiding, and replacing them would garble the
  // message ("/x" is in many texts).
  constexpr size_t kMinSecret = 4;
  if (SplitUrl(url, &p)) {
    if (p.tail.size() >= kMinSecret) ReplaceAll(&message, p.tail, "…");
    if (p.userinfo.size() >= kMinSecret) ReplaceAll(&message, p.userinfo, "…");
  }
  return message;
}

}  // namespace sluice::http
