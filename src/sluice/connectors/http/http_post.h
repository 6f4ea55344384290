#pragma once

// The one HTTP client of sluice's webhooks: a POST over libcurl, used by the `webhook` sink and
// by the alert notifier (alerts/webhook_notifier.h). Webhook URLs are secrets — tokens sit in
// their paths and queries — so nothing here ever puts more of a URL than RedactUrl() keeps into
// a message.

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/result.h"

namespace sluice::http {

/// Return what of `url` may be shown in a log line, an error, a report or a progress line: its
/// scheme and host (with the port, if any), followed by "/…" when the URL has anything after
/// the host but a lone "/" (path, query or fragment): "https://user:pw@hooks.example.com/T0/B1?
/// token=abc" gives "https://hooks.example.com/…". User-info is dropped, an IPv6 host keeps its
/// brackets ("http://[::1]:8080/…"). A text that is not `scheme://host[:port]...` with a
/// plausible host gives "<invalid URL>", never the text itself. Pure; thread-safe.
std::string RedactUrl(std::string_view url);

/// Return why libcurl would refuse `url` ("the port is not a number from 1 to 65535", "it has
/// a space: percent-encode it as %20"), or "" when it parses. Never quotes the URL. For
/// checking a configured URL before the run rather than at the first request.
std::string UrlProblem(std::string_view url);

/// Return `message` with every occurrence of `url`, of its user-info and of what follows its
/// host (path, query, fragment) replaced: the full URL by RedactUrl(url), the others (when at
/// least 4 bytes long) by "…".
/// For texts that come from elsewhere (a library's error buffer) and might quote the URL.
std::string ScrubUrl(std::string message, std::string_view url);

/// Settings of one POST.
struct PostOptions {
  int64_t connect_timeout_us = 2'000'000;  ///< TCP (and TLS) connect.
  int64_t total_timeout_us = 5'000'000;    ///< The whole exchange, answer included.
  /// Extra request headers as "Name: value" lines. Their values may be secrets: they are sent,
  /// never logged or put into errors.
  std::vector<std::string> headers;
  std::string content_type = "application/json";
  std::string user_agent = "sluice";
};

/// POST bodies with libcurl, reusing one connection between calls to the same host
/// (keep-alive). Redirects are not followed: a webhook is one POST to one place. Not
/// thread-safe: use one poster per thread.
class HttpPoster {
 public:
  /// Abort a transfer in progress (within about a second) once `abort` is set; null: never.
  /// `abort` is not owned and must outlive the poster.
  explicit HttpPoster(const std::atomic<bool>* abort = nullptr);
  ~HttpPoster();
  HttpPoster(const HttpPoster&) = delete;
  HttpPoster& operator=(const HttpPoster&) = delete;

  /// POST `body` to `url` and return the HTTP status of the answer, whatever it is (2xx or
  /// not; the answer's body is read and dropped). Without an answer, return an error whose
  /// message names RedactUrl(url) only: kTimeout when a timeout passed, kCancelled when the
  /// abort flag was set, kInvalidArgument for a URL or TLS setup curl refuses, kUnavailable for
  /// everything else (refused, reset, unresolvable: the network or the server may recover).
  Result<int> Post(const std::string& url, std::string_view body, const PostOptions& options);

 private:
  const std::atomic<bool>* abort_;
  void* curl_ = nullptr;  // CURL*, created by the first Post
};

/// Return the outcome of a POST to `url` answered with `http_status`: OK for 2xx; kUnavailable
/// (retryable) for 408, 429 and 5xx; kInvalidArgument (not retried: the request itself was
/// refused) for anything else. The message is "HTTP <status> from <RedactUrl(url)>".
Status StatusFromHttp(int http_status, std::string_view url);

}  // namespace sluice::http
