#include "sluice/connectors/http/http_post.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <mutex>

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

void GlobalInitCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t DiscardBody(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

int AbortWhenSet(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(flag);
  return abort != nullptr && abort->load(std::memory_order_relaxed) ? 1 : 0;
}

long Millis(int64_t us) { return static_cast<long>(std::max<int64_t>(us / 1000, 1)); }

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

std::string UrlProblem(std::string_view url) {
  if (url.find_first_of(" \t\r\n") != std::string_view::npos) {
    return "it has a space or a line break: percent-encode it (%20)";
  }
  CURLU* h = curl_url();
  if (h == nullptr) return "";
  const std::string text(url);
  const CURLUcode rc = curl_url_set(h, CURLUPART_URL, text.c_str(), 0);
  curl_url_cleanup(h);
  switch (rc) {
    case CURLUE_OK:
      return "";
    case CURLUE_BAD_PORT_NUMBER:
      return "the port is not a number from 1 to 65535";
    case CURLUE_BAD_HOSTNAME:
    case CURLUE_NO_HOST:
      return "the host is missing or not a valid name";
    default:
      return fmt::format("libcurl cannot parse it ({})", curl_url_strerror(rc));
  }
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

HttpPoster::HttpPoster(const std::atomic<bool>* abort) : abort_(abort) {}

HttpPoster::~HttpPoster() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<int> HttpPoster::Post(const std::string& url, std::string_view body,
                             const PostOptions& options) {
  const std::string shown = RedactUrl(url);
  if (curl_ == nullptr) {
    GlobalInitCurl();
    curl_ = curl_easy_init();
    if (curl_ == nullptr) return Status::Internal("POST {}: cannot create a curl handle", shown);
  }
  CURL* h = static_cast<CURL*>(curl_);
  // Reset the options of the last call but keep its connection (keep-alive).
  curl_easy_reset(h);
  curl_slist* headers =
      curl_slist_append(nullptr, ("Content-Type: " + options.content_type).c_str());
  for (const std::string& header : options.headers) {
    headers = curl_slist_append(headers, header.c_str());
  }
  // curl would send "Expect: 100-continue" for bodies over 1 MiB and wait for an answer a
  // simple receiver never gives.
  headers = curl_slist_append(headers, "Expect:");
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POST, 1L);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  curl_easy_setopt(h, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, Millis(options.connect_timeout_us));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, Millis(options.total_timeout_us));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &DiscardBody);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &AbortWhenSet);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, abort_);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  const CURLcode rc = curl_easy_perform(h);
  long http_status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
  curl_slist_free_all(headers);
  if (rc == CURLE_OK) return static_cast<int>(http_status);

  // curl's messages name hosts and ports, but scrub them anyway: a future version might quote
  // the URL.
  const std::string detail = ScrubUrl(error[0] != '\0' ? error : curl_easy_strerror(rc), url);
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      return Status::Timeout("POST {}: {}", shown, detail);
    case CURLE_ABORTED_BY_CALLBACK:
      return Status::Cancelled("POST {}: abandoned (stopping)", shown);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      return Status::Invalid("POST {}: {}", shown, detail);
    default:
      return Status::Unavailable("POST {}: {}", shown, detail);
  }
}

Status StatusFromHttp(int http_status, std::string_view url) {
  if (http_status >= 200 && http_status < 300) return Status::OK();
  const std::string shown = RedactUrl(url);
  if (http_status == 408 || http_status == 429 || http_status >= 500) {
    return Status::Unavailable("HTTP {} from {}", http_status, shown);
  }
  return Status::Invalid("HTTP {} from {}", http_status, shown);
}

}  // namespace sluice::http
