#include "sluice/connectors/http/http_post.h"

#include <algorithm>
#include <cctype>

#include "sluice/connectors/http/curl_api.h"

namespace sluice::http {

namespace {

size_t DiscardBody(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

int AbortWhenSet(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const auto* abort = static_cast<const std::atomic<bool>*>(flag);
  return abort != nullptr && abort->load(std::memory_order_relaxed) ? 1 : 0;
}

long Millis(int64_t us) { return static_cast<long>(std::max<int64_t>(us / 1000, 1)); }

}  // namespace

std::string UrlProblem(std::string_view url) {
  if (url.find_first_of(" \t\r\n") != std::string_view::npos) {
    return "it has a space or a line break: percent-encode it (%20)";
  }
  if (Status st = LoadCurl(); !st.ok()) return st.message();
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

HttpPoster::HttpPoster(const std::atomic<bool>* abort) : abort_(abort) {}

HttpPoster::~HttpPoster() {
  if (curl_ != nullptr) curl_easy_cleanup(static_cast<CURL*>(curl_));
}

Result<int> HttpPoster::Post(const std::string& url, std::string_view body,
                             const PostOptions& options) {
  const std::string shown = RedactUrl(url);
  if (curl_ == nullptr) {
    SLUICE_RETURN_NOT_OK(LoadCurl());
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
