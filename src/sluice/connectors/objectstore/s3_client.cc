// S3 over libcurl: requests signed by curl's SigV4, wrapped in Retry() and a circuit breaker.

#include "sluice/connectors/objectstore/s3_client.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <thread>

#include "sluice/connectors/http/curl_api.h"
#include "sluice/core/log.h"

namespace sluice {

namespace s3 {

namespace {

std::string XmlUnescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out.push_back(s[i]);
      continue;
    }
    const size_t semi = s.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out.push_back(s[i]);
      continue;
    }
    const std::string_view entity = s.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out.push_back('&');
    } else if (entity == "lt") {
      out.push_back('<');
    } else if (entity == "gt") {
      out.push_back('>');
    } else if (entity == "quot") {
      out.push_back('"');
    } else if (entity == "apos") {
      out.push_back('\'');
    } else if (entity.size() > 1 && entity[0] == '#') {
      const bool hex = entity[1] == 'x' || entity[1] == 'X';
      const std::string_view digits = entity.substr(hex ? 2 : 1);
      uint32_t cp = 0;
      const auto [end, ec] =
          std::from_chars(digits.data(), digits.data() + digits.size(), cp, hex ? 16 : 10);
      // Digits only (no sign or space), and a code point UTF-8 can encode: a surrogate
      // (U+D800-DFFF) has no UTF-8 form, and decoding it would make a key invalid UTF-8
      // (s3_xml_fuzz). Anything else stays as written.
      if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size() ||
          cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        out.push_back(s[i]);
        continue;
      }
      // UTF-8 encode the code point.
      if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
      } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else if (cp < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      } else {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
    } else {
      out.push_back(s[i]);
      continue;
    }
    i = semi;
  }
  return out;
}

// Returns the raw content of the first <tag>...</tag> at or after `*pos`, and moves `*pos`
// past it; nullopt when there is none. Attributes on the opening tag are allowed; a
// self-closing <tag/> is empty.
std::optional<std::string_view> NextElement(std::string_view xml, std::string_view tag,
                                            size_t* pos) {
  size_t at = *pos;
  while (true) {
    at = xml.find('<', at);
    if (at == std::string_view::npos) return std::nullopt;
    const std::string_view rest = xml.substr(at + 1);
    if (rest.starts_with(tag) && rest.size() > tag.size()) {
      const char next = rest[tag.size()];
      const size_t close = xml.find('>', at);
      if (close == std::string_view::npos) return std::nullopt;
      if (next == '/' || (next == ' ' && xml[close - 1] == '/')) {
        *pos = close + 1;
        return std::string_view();
      }
      if (next == '>' || next == ' ') {
        const std::string end_tag = fmt::format("</{}>", tag);
        const size_t end = xml.find(end_tag, close + 1);
        if (end == std::string_view::npos) return std::nullopt;
        *pos = end + end_tag.size();
        return xml.substr(close + 1, end - close - 1);
      }
    }
    ++at;
  }
}

std::string OneLine(std::string s, size_t max_chars) {
  for (char& c : s) {
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  }
  if (s.size() > max_chars) {
    s.resize(max_chars);
    s += "...";
  }
  return s;
}

}  // namespace

std::string XmlText(std::string_view xml, std::string_view tag) {
  size_t pos = 0;
  auto e = NextElement(xml, tag, &pos);
  return e.has_value() ? XmlUnescape(*e) : std::string();
}

S3Error ParseError(std::string_view xml) {
  S3Error e;
  size_t pos = 0;
  auto body = NextElement(xml, "Error", &pos);
  if (!body.has_value()) return e;
  e.code = XmlText(*body, "Code");
  e.message = XmlText(*body, "Message");
  return e;
}

Status StatusFromHttp(std::string_view operation, std::string_view target, long http_status,
                      std::string_view body) {
  const S3Error e = ParseError(body);
  std::string msg = fmt::format("S3 {} {}: HTTP {}", operation, target, http_status);
  if (!e.code.empty()) msg += " " + e.code;
  if (!e.message.empty()) msg += ": " + e.message;
  msg = OneLine(std::move(msg), 500);
  StatusCode code;
  if (http_status >= 500 || http_status == 429 || e.code == "SlowDown" ||
      e.code == "RequestTimeout" || e.code == "InternalError" || e.code == "ServiceUnavailable") {
    code = StatusCode::kUnavailable;
  } else if (http_status == 401 || http_status == 403) {
    code = StatusCode::kPermissionDenied;
  } else if (http_status == 404) {
    code = StatusCode::kNotFound;
  } else {
    code = StatusCode::kInvalidArgument;
  }
  return Status(code, std::move(msg));
}

Status StatusFromCurl(std::string_view operation, std::string_view target, int curl_code,
                      std::string_view detail) {
  const auto rc = static_cast<CURLcode>(curl_code);
  std::string msg = fmt::format("S3 {} {}: {}", operation, target,
                                detail.empty() ? curl_easy_strerror(rc) : detail);
  msg = OneLine(std::move(msg), 500);
  StatusCode code;
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
      code = StatusCode::kTimeout;
      break;
    case CURLE_ABORTED_BY_CALLBACK:
      code = StatusCode::kCancelled;
      break;
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
      code = StatusCode::kInvalidArgument;
      break;
    default:
      // Connection refused or reset, resolution failures, partial transfers: the network or
      // the server, which may well recover.
      code = StatusCode::kUnavailable;
      break;
  }
  return Status(code, std::move(msg));
}

Result<ListPage> ParseListObjects(std::string_view xml) {
  size_t pos = 0;
  auto result = NextElement(xml, "ListBucketResult", &pos);
  if (!result.has_value()) {
    return Status::Invalid("ListObjects answer has no <ListBucketResult>: {}",
                           OneLine(std::string(xml.substr(0, 200)), 200));
  }
  ListPage page;
  size_t at = 0;
  while (auto contents = NextElement(*result, "Contents", &at)) {
    ObjectInfo info;
    info.key = XmlText(*contents, "Key");
    const std::string size = XmlText(*contents, "Size");
    info.size = std::strtoll(size.c_str(), nullptr, 10);
    info.etag = XmlText(*contents, "ETag");
    if (info.etag.size() >= 2 && info.etag.front() == '"' && info.etag.back() == '"') {
      info.etag = info.etag.substr(1, info.etag.size() - 2);
    }
    page.objects.push_back(std::move(info));
  }
  page.truncated = XmlText(*result, "IsTruncated") == "true";
  page.next_marker = XmlText(*result, "NextMarker");
  if (page.next_marker.empty()) page.next_marker = XmlText(*result, "NextContinuationToken");
  return page;
}

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size() + 8);
  for (unsigned char c : s) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
        c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

}  // namespace s3

namespace {

// The SHA-256 of an empty payload, for requests without a body.
constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr size_t kMaxErrorBody = 64 << 10;
constexpr int kMaxParts = 10'000;

std::string EnvOr(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::string(v) : fallback;
}

bool Is2xx(long status) { return status >= 200 && status < 300; }

// One HTTP exchange.
struct HttpRequest {
  const char* method = "GET";
  std::string url;
  std::vector<std::string> headers;
  std::string_view body;                                          // sent by PUT and POST
  std::string payload_sha256{kEmptySha256};                       // of `body`
  const std::atomic<bool>* abort = nullptr;                       // besides the store's cancel flag
  const std::function<Status(std::string_view)>* sink = nullptr;  // 2xx bodies go here
  int64_t resume_from = 0;  // bytes the sink already has (a Range request)
};

struct HttpResponse {
  long status = 0;
  std::string body;  // the body when there is no sink, or the error body (capped)
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-case
  int64_t delivered = 0;                                     // bytes passed to the sink
  Status sink_status;

  std::string Header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (k == name) return v;
    }
    return "";
  }
};

// State of one curl_easy_perform, reached from curl's callbacks.
struct Transfer {
  CURL* curl = nullptr;
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  const std::atomic<bool>* cancelled = nullptr;
  size_t upload_pos = 0;
  bool body_started = false;
  int64_t skip = 0;  // bytes of a 200 answer to a Range request the sink already has
  // Stall detection: the transfer is abandoned when no byte moved for stall_limit.
  std::chrono::microseconds stall_limit{0};
  curl_off_t last_bytes = -1;
  std::chrono::steady_clock::time_point last_move = std::chrono::steady_clock::now();
  bool stalled = false;
};

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  if (line.starts_with("HTTP/")) {
    t->response->headers.clear();  // a new response (after 100 Continue, say)
    return size * n;
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
    value.remove_suffix(1);
  }
  t->response->headers.emplace_back(std::move(name), std::string(value));
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
  if (!Is2xx(status) || t->request->sink == nullptr) {
    // Error documents are short; keep only the start of anything else.
    const size_t room = kMaxErrorBody - std::min(kMaxErrorBody, t->response->body.size());
    t->response->body.append(data, Is2xx(status) ? len : std::min(len, room));
    return len;
  }
  if (!t->body_started) {
    t->body_started = true;
    // A server that ignored the Range header sends the whole object again.
    if (status == 200) t->skip = t->request->resume_from;
  }
  std::string_view chunk(data, len);
  if (t->skip > 0) {
    const auto drop = static_cast<size_t>(std::min<int64_t>(t->skip, static_cast<int64_t>(len)));
    chunk.remove_prefix(drop);
    t->skip -= static_cast<int64_t>(drop);
    if (chunk.empty()) return len;
  }
  Status st = (*t->request->sink)(chunk);
  if (!st.ok()) {
    t->response->sink_status = std::move(st);
    return 0;  // makes curl stop with CURLE_WRITE_ERROR
  }
  t->response->delivered += static_cast<int64_t>(chunk.size());
  return len;
}

size_t OnUpload(char* buffer, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view body = t->request->body;
  const size_t len = std::min(size * n, body.size() - t->upload_pos);
  std::memcpy(buffer, body.data() + t->upload_pos, len);
  t->upload_pos += len;
  return len;
}

int OnSeek(void* user, curl_off_t offset, int origin) {
  auto* t = static_cast<Transfer*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<size_t>(offset) > t->request->body.size()) {
    return CURL_SEEKFUNC_CANTSEEK;
  }
  t->upload_pos = static_cast<size_t>(offset);
  return CURL_SEEKFUNC_OK;
}

// Called by curl at least once a second. (CURLOPT_LOW_SPEED_TIME would average the speed over
// several seconds, so a request that sent its body at once and then hangs is noticed late.)
int OnProgress(void* user, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
  auto* t = static_cast<Transfer*>(user);
  const bool cancelled = (t->cancelled != nullptr && t->cancelled->load()) ||
                         (t->request->abort != nullptr && t->request->abort->load());
  if (cancelled) return 1;
  const auto now = std::chrono::steady_clock::now();
  if (dlnow + ulnow != t->last_bytes) {
    t->last_bytes = dlnow + ulnow;
    t->last_move = now;
  } else if (now - t->last_move > t->stall_limit) {
    t->stalled = true;
    return 1;
  }
  return 0;
}

std::string FormatMicros(int64_t us) {
  if (us % 1'000'000 == 0) return fmt::format("{}s", us / 1'000'000);
  return fmt::format("{}ms", us / 1000);
}

}  // namespace

/// Everything the client owns: settings, the curl handle pool, the breaker and the counters.
class S3Client::Impl {
 public:
  explicit Impl(S3Options options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : SystemClock()),
        breaker_(options_.breaker, clock_) {}

  ~Impl() {
    for (CURL* h : idle_) curl_easy_cleanup(h);
    curl_slist_free_all(connect_to_);
  }

  Status Init() {
    std::string endpoint = options_.endpoint;
    if (endpoint.empty()) endpoint = fmt::format("https://s3.{}.amazonaws.com", options_.region);
    while (endpoint.ends_with('/')) endpoint.pop_back();
    const size_t scheme_end = endpoint.find("://");
    if (scheme_end == std::string::npos ||
        (!endpoint.starts_with("http://") && !endpoint.starts_with("https://"))) {
      return Status::Invalid("S3 endpoint '{}' must start with http:// or https://", endpoint);
    }
    const std::string scheme = endpoint.substr(0, scheme_end);
    const std::string host_and_path = endpoint.substr(scheme_end + 3);
    if (host_and_path.empty()) return Status::Invalid("S3 endpoint '{}' has no host", endpoint);
    const std::string encoded_bucket = s3::UriEncode(options_.bucket, false);
    if (options_.path_style) {
      bucket_url_ = endpoint + "/" + encoded_bucket;
      object_base_ = bucket_url_ + "/";
    } else {
      bucket_url_ = scheme + "://" + options_.bucket + "." + host_and_path + "/";
      object_base_ = bucket_url_;
    }
    sigv4_ = fmt::format("aws:amz:{}:s3", options_.region);
    for (const std::string& entry : options_.connect_to) {
      connect_to_ = curl_slist_append(connect_to_, entry.c_str());
    }
    return Status::OK();
  }

  const S3Options& options() const { return options_; }
  std::string Target(std::string_view key) const {
    return fmt::format("s3://{}/{}", options_.bucket, key);
  }
  std::string ObjectUrl(std::string_view key, std::string_view query = {}) const {
    std::string url = object_base_ + s3::UriEncode(key, true);
    if (!query.empty()) {
      url += "?";
      url += query;
    }
    return url;
  }
  std::string BucketUrl(std::string_view query) const {
    return fmt::format("{}?{}", bucket_url_, query);
  }

  // Runs `attempt` (one HTTP exchange and its interpretation) under the breaker and Retry().
  // `stop`, when set, ends the retries early (in addition to the store's cancel flag).
  Status WithRetries(std::string_view op, std::string_view target,
                     const std::function<Status()>& attempt,
                     const std::atomic<bool>* stop = nullptr) {
    RetryStats stats;
    auto one = [&]() -> Status {
      if (!breaker_.Allow()) {
        return Status::Unavailable(
            "S3 {} {}: circuit breaker open after {} consecutive failed requests to {} (next "
            "probe within {}; last failure: {})",
            op, target, options_.breaker.failure_threshold, Describe(),
            FormatMicros(options_.breaker.recovery_timeout_us), LastFailure());
      }
      requests_.fetch_add(1, std::memory_order_relaxed);
      Status st = attempt();
      if (st.IsRetryable()) {
        breaker_.RecordFailure();
        std::lock_guard<std::mutex> lock(mu_);
        last_failure_ = st.message();
      } else {
        breaker_.RecordSuccess();  // the server answered, even if with an error
      }
      if (st.IsRetryable()) Log(LogLevel::kDebug, "{} (will retry)", st.message());
      return st;
    };
    const std::atomic<bool>* cancel = stop != nullptr ? stop : options_.cancelled;
    Status st = Retry(options_.retry, clock_, one, &stats, cancel);
    retries_.fetch_add(stats.retries, std::memory_order_relaxed);
    return Scrub(st);
  }

  // Performs one HTTP exchange. Returns a non-OK Status only for transport failures (the HTTP
  // status is in `response`).
  Status Perform(std::string_view op, std::string_view target, const HttpRequest& request,
                 HttpResponse* response) {
    if (options_.cancelled != nullptr && options_.cancelled->load()) {
      return Status::Cancelled("S3 {} {}: cancelled", op, target);
    }
    CURL* h = Acquire();
    if (h == nullptr) return Status::Internal("S3 {} {}: curl_easy_init failed", op, target);
    Transfer t;
    t.curl = h;
    t.request = &request;
    t.response = response;
    t.cancelled = options_.cancelled;
    t.stall_limit = std::chrono::microseconds(options_.low_speed_time_us);
    char errbuf[CURL_ERROR_SIZE] = {0};

    curl_slist* headers = nullptr;
    auto add_header = [&headers](const std::string& header) {
      headers = curl_slist_append(headers, header.c_str());
    };
    add_header("x-amz-content-sha256: " + request.payload_sha256);
    add_header("Expect:");
    if (!options_.session_token.empty()) {
      add_header("x-amz-security-token: " + options_.session_token);
    }
    for (const auto& header : request.headers) add_header(header);

    curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
    curl_easy_setopt(h, CURLOPT_USERNAME, options_.access_key_id.c_str());
    curl_easy_setopt(h, CURLOPT_PASSWORD, options_.secret_access_key.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to_);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     static_cast<long>(std::max<int64_t>(options_.connect_timeout_us / 1000, 1)));
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &OnHeader);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &OnBody);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &OnProgress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, &t);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);

    const std::string_view method = request.method;
    if (method == "HEAD") {
      curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (method == "GET") {
      curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
      curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L << 10);
    } else if (method == "PUT") {
      curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
      curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L << 10);
      curl_easy_setopt(h, CURLOPT_READFUNCTION, &OnUpload);
      curl_easy_setopt(h, CURLOPT_READDATA, &t);
      curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, &OnSeek);
      curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
      curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    } else if (method == "POST") {
      curl_easy_setopt(h, CURLOPT_POST, 1L);
      curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.empty() ? "" : request.body.data());
      curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.body.size()));
    } else {
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, request.method);
    }

    const CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_slist_free_all(headers);
    Release(h);
    response->status = status;
    if (rc == CURLE_OK) return Status::OK();
    if (!response->sink_status.ok()) return Status::OK();  // the caller reports the sink's error
    if (rc == CURLE_ABORTED_BY_CALLBACK && t.stalled) {
      return Status::Timeout("S3 {} {}: no byte moved for {}", op, target,
                             FormatMicros(options_.low_speed_time_us));
    }
    if (rc == CURLE_ABORTED_BY_CALLBACK) {
      return Status::Cancelled("S3 {} {}: cancelled", op, target);
    }
    return s3::StatusFromCurl(op, target, rc, errbuf);
  }

  // Performs `request` once and maps a non-2xx answer to a Status.
  Status Exchange(std::string_view op, std::string_view target, const HttpRequest& request,
                  HttpResponse* response) {
    *response = HttpResponse();
    SLUICE_RETURN_NOT_OK(Perform(op, target, request, response));
    if (!response->sink_status.ok()) return Status::OK();
    if (!Is2xx(response->status)) {
      return s3::StatusFromHttp(op, target, response->status, response->body);
    }
    return Status::OK();
  }

  std::string Describe() const { return "s3://" + options_.bucket; }

  const S3Options options_;
  Clock* const clock_;
  CircuitBreaker breaker_;
  std::atomic<int64_t> retries_{0};
  std::atomic<int64_t> requests_{0};

 private:
  CURL* Acquire() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        CURL* h = idle_.back();
        idle_.pop_back();
        curl_easy_reset(h);  // keeps the connection cache
        return h;
      }
    }
    return curl_easy_init();
  }

  void Release(CURL* h) {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(h);
  }

  std::string LastFailure() {
    std::lock_guard<std::mutex> lock(mu_);
    return last_failure_;
  }

  // Removes credentials from a message, should a server ever echo them.
  Status Scrub(const Status& st) const {
    if (st.ok()) return st;
    std::string msg = st.message();
    bool changed = false;
    for (const std::string* secret : {&options_.secret_access_key, &options_.session_token}) {
      if (secret->size() < 4) continue;
      for (size_t at = msg.find(*secret); at != std::string::npos; at = msg.find(*secret, at)) {
        msg.replace(at, secret->size(), "***");
        changed = true;
      }
    }
    return changed ? Status(st.code(), std::move(msg)) : st;
  }

  std::string sigv4_;
  curl_slist* connect_to_ = nullptr;  // from options_.connect_to
  std::string bucket_url_;            // path style: endpoint/bucket; virtual: scheme://bucket.host/
  std::string object_base_;           // prefix of object URLs, ending with '/'
  std::mutex mu_;
  std::vector<CURL*> idle_;   // guarded by mu_
  std::string last_failure_;  // guarded by mu_: of the last retryable failure
};

Result<std::unique_ptr<S3Client>> S3Client::Make(S3Options options) {
  SLUICE_RETURN_NOT_OK(http::LoadCurl());
  SLUICE_RETURN_NOT_OK(LoadSha256());  // payload digests
  if (options.bucket.empty()) return Status::Invalid("S3: no bucket given");
  if (options.access_key_id.empty() && options.secret_access_key.empty()) {
    options.access_key_id = EnvOr("AWS_ACCESS_KEY_ID", "");
    options.secret_access_key = EnvOr("AWS_SECRET_ACCESS_KEY", "");
    if (options.session_token.empty()) options.session_token = EnvOr("AWS_SESSION_TOKEN", "");
  }
  if (options.access_key_id.empty() || options.secret_access_key.empty()) {
    return Status::ConfigError(
        "S3 s3://{}: no credentials: set access_key_id and secret_access_key, or the "
        "environment variables AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        options.bucket);
  }
  if (options.region.empty()) {
    options.region = EnvOr("AWS_REGION", EnvOr("AWS_DEFAULT_REGION", "us-east-1"));
  }
  if (options.part_size < 1) return Status::Invalid("S3: part_size must be positive");
  if (options.multipart_threshold < 1) {
    return Status::Invalid("S3: multipart_threshold must be positive");
  }
  if (options.upload_parallelism < 1) options.upload_parallelism = 1;
  auto impl = std::make_unique<Impl>(std::move(options));
  SLUICE_RETURN_NOT_OK(impl->Init());
  return std::unique_ptr<S3Client>(new S3Client(std::move(impl)));
}

S3Client::S3Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
S3Client::~S3Client() = default;

std::string S3Client::Describe() const { return impl_->Describe(); }
int64_t S3Client::retries() const { return impl_->retries_.load(std::memory_order_relaxed); }
int64_t S3Client::breaker_trips() const { return impl_->breaker_.trips(); }
bool S3Client::breaker_open() const {
  return impl_->breaker_.state() == CircuitBreaker::State::kOpen;
}
int64_t S3Client::requests() const { return impl_->requests_.load(std::memory_order_relaxed); }
CircuitBreaker::State S3Client::breaker_state() const { return impl_->breaker_.state(); }
const S3Options& S3Client::options() const { return impl_->options(); }

Status S3Client::Put(const std::string& key, std::string_view data) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const S3Options& o = impl_->options();
  if (static_cast<int64_t>(data.size()) > o.multipart_threshold) {
    return PutMultipart(key, data);
  }
  const std::string target = impl_->Target(key);
  HttpRequest req;
  req.method = "PUT";
  req.url = impl_->ObjectUrl(key);
  req.body = data;
  req.payload_sha256 = Sha256Hex(data);
  req.headers.push_back("Content-Type: application/octet-stream");
  return impl_->WithRetries("PUT", target, [&]() -> Status {
    HttpResponse resp;
    return impl_->Exchange("PUT", target, req, &resp);
  });
}

Status S3Client::PutMultipart(const std::string& key, std::string_view data) {
  const S3Options& o = impl_->options();
  const std::string target = impl_->Target(key);
  const auto size = static_cast<int64_t>(data.size());
  int64_t part_size = o.part_size;
  if ((size + part_size - 1) / part_size > kMaxParts)
    part_size = (size + kMaxParts - 1) / kMaxParts;
  const auto parts = static_cast<int>((size + part_size - 1) / part_size);

  // Initiate.
  std::string upload_id;
  {
    HttpRequest req;
    req.method = "POST";
    req.url = impl_->ObjectUrl(key, "uploads=");
    req.headers.push_back("Content-Type: application/octet-stream");
    Status st = impl_->WithRetries("CreateMultipartUpload", target, [&]() -> Status {
      HttpResponse resp;
      SLUICE_RETURN_NOT_OK(impl_->Exchange("CreateMultipartUpload", target, req, &resp));
      upload_id = s3::XmlText(resp.body, "UploadId");
      if (upload_id.empty()) {
        return Status::Invalid("S3 CreateMultipartUpload {}: the answer holds no UploadId", target);
      }
      return Status::OK();
    });
    SLUICE_RETURN_NOT_OK(st);
  }
  const std::string upload_query = "uploadId=" + s3::UriEncode(upload_id, false);

  // Upload the parts, a few at a time; the first failure stops the others.
  std::vector<std::string> etags(static_cast<size_t>(parts));
  std::atomic<int> next_part{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  Status first_error;  // guarded by mu
  auto worker = [&] {
    while (!stop.load()) {
      const int i = next_part.fetch_add(1);
      if (i >= parts) break;
      const int64_t offset = int64_t{i} * part_size;
      HttpRequest req;
      req.method = "PUT";
      req.url = impl_->ObjectUrl(key, fmt::format("partNumber={}&{}", i + 1, upload_query));
      req.body = data.substr(static_cast<size_t>(offset), static_cast<size_t>(part_size));
      req.payload_sha256 = Sha256Hex(req.body);
      req.abort = &stop;
      const std::string op = fmt::format("UploadPart {}/{}", i + 1, parts);
      Status st = impl_->WithRetries(
          op, target,
          [&]() -> Status {
            if (o.cancelled != nullptr && o.cancelled->load()) stop.store(true);
            HttpResponse resp;
            SLUICE_RETURN_NOT_OK(impl_->Exchange(op, target, req, &resp));
            etags[static_cast<size_t>(i)] = resp.Header("etag");
            if (etags[static_cast<size_t>(i)].empty()) {
              return Status::Invalid("S3 {} {}: the answer holds no ETag", op, target);
            }
            return Status::OK();
          },
          &stop);
      if (!st.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = st;
        stop.store(true);
      }
    }
  };
  const int threads = std::min(o.upload_parallelism, parts);
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (first_error.ok() && o.cancelled != nullptr && o.cancelled->load()) {
    first_error = Status::Cancelled("S3 PUT {}: cancelled", target);
  }

  // Complete, or abort so that the parts do not linger (and cost) in the bucket.
  if (first_error.ok()) {
    std::string xml = "<CompleteMultipartUpload>";
    for (int i = 0; i < parts; ++i) {
      xml += fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", i + 1,
                         etags[static_cast<size_t>(i)]);
    }
    xml += "</CompleteMultipartUpload>";
    HttpRequest req;
    req.method = "POST";
    req.url = impl_->ObjectUrl(key, upload_query);
    req.body = xml;
    req.payload_sha256 = Sha256Hex(xml);
    req.headers.push_back("Content-Type: application/xml");
    first_error = impl_->WithRetries("CompleteMultipartUpload", target, [&]() -> Status {
      HttpResponse resp;
      SLUICE_RETURN_NOT_OK(impl_->Exchange("CompleteMultipartUpload", target, req, &resp));
      // S3 may answer 200 and still report an error in the body.
      const s3::S3Error e = s3::ParseError(resp.body);
      if (!e.code.empty()) {
        const bool transient =
            e.code == "InternalError" || e.code == "SlowDown" || e.code == "ServiceUnavailable";
        return s3::StatusFromHttp("CompleteMultipartUpload", target, transient ? 500 : 400,
                                  resp.body);
      }
      return Status::OK();
    });
    if (first_error.ok()) return Status::OK();
  }
  HttpRequest abort;
  abort.method = "DELETE";
  abort.url = impl_->ObjectUrl(key, upload_query);
  HttpResponse resp;
  Status aborted = impl_->Exchange("AbortMultipartUpload", target, abort, &resp);
  if (!aborted.ok()) {
    Log(LogLevel::kWarn, "{} (the parts of upload of {} may remain)", aborted.message(), target);
  }
  return first_error;
}

Result<ObjectInfo> S3Client::Head(const std::string& key) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string target = impl_->Target(key);
  HttpRequest req;
  req.method = "HEAD";
  req.url = impl_->ObjectUrl(key);
  HttpResponse resp;
  SLUICE_RETURN_NOT_OK(impl_->WithRetries(
      "HEAD", target, [&]() -> Status { return impl_->Exchange("HEAD", target, req, &resp); }));
  ObjectInfo info;
  info.key = key;
  const std::string length = resp.Header("content-length");
  if (length.empty())
    return Status::Invalid("S3 HEAD {}: the answer has no Content-Length", target);
  info.size = std::strtoll(length.c_str(), nullptr, 10);
  info.etag = resp.Header("etag");
  if (info.etag.size() >= 2 && info.etag.front() == '"' && info.etag.back() == '"') {
    info.etag = info.etag.substr(1, info.etag.size() - 2);
  }
  return info;
}

Status S3Client::Get(const std::string& key, const std::function<Status(std::string_view)>& sink) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string target = impl_->Target(key);
  int64_t delivered = 0;
  std::string etag;
  Status sink_error;
  Status st = impl_->WithRetries("GET", target, [&]() -> Status {
    HttpRequest req;
    req.method = "GET";
    req.url = impl_->ObjectUrl(key);
    req.sink = &sink;
    req.resume_from = delivered;
    if (delivered > 0) {
      req.headers.push_back(fmt::format("Range: bytes={}-", delivered));
      // The rest must come from the same object, not one written meanwhile.
      if (!etag.empty()) req.headers.push_back("If-Match: " + etag);
    }
    HttpResponse resp;
    Status ex = impl_->Exchange("GET", target, req, &resp);
    delivered += resp.delivered;
    if (etag.empty()) etag = resp.Header("etag");
    if (!resp.sink_status.ok()) {
      sink_error = resp.sink_status;
      return Status::Cancelled("the consumer of the download stopped");
    }
    // A Range starting at the end: everything had arrived before the connection broke.
    if (resp.status == 416 && delivered > 0) return Status::OK();
    return ex;
  });
  if (!sink_error.ok()) return sink_error;
  return st;
}

Result<std::vector<ObjectInfo>> S3Client::List(const std::string& prefix) {
  const std::string target = impl_->Target(prefix) + "*";
  std::vector<ObjectInfo> out;
  std::string marker;
  while (true) {
    std::string query;
    if (!marker.empty()) query += "marker=" + s3::UriEncode(marker, false) + "&";
    query += "prefix=" + s3::UriEncode(prefix, false);
    HttpRequest req;
    req.method = "GET";
    req.url = impl_->BucketUrl(query);
    s3::ListPage page;
    SLUICE_RETURN_NOT_OK(impl_->WithRetries("LIST", target, [&]() -> Status {
      HttpResponse resp;
      SLUICE_RETURN_NOT_OK(impl_->Exchange("LIST", target, req, &resp));
      auto parsed = s3::ParseListObjects(resp.body);
      if (!parsed.ok()) return parsed.status().WithContext("S3 LIST {}", target);
      page = std::move(*parsed);
      return Status::OK();
    }));
    if (!page.truncated) {
      for (auto& info : page.objects) out.push_back(std::move(info));
      break;
    }
    std::string next = page.next_marker;
    if (next.empty() && !page.objects.empty()) next = page.objects.back().key;
    for (auto& info : page.objects) out.push_back(std::move(info));
    if (next.empty() || next <= marker) {
      return Status::Invalid("S3 LIST {}: a truncated answer that does not move forward", target);
    }
    marker = std::move(next);
  }
  std::sort(out.begin(), out.end(),
            [](const ObjectInfo& a, const ObjectInfo& b) { return a.key < b.key; });
  return out;
}

Status S3Client::Delete(const std::string& key) {
  SLUICE_RETURN_NOT_OK(ValidateObjectKey(key));
  const std::string target = impl_->Target(key);
  HttpRequest req;
  req.method = "DELETE";
  req.url = impl_->ObjectUrl(key);
  return impl_->WithRetries("DELETE", target, [&]() -> Status {
    HttpResponse resp;
    Status st = impl_->Exchange("DELETE", target, req, &resp);
    if (st.code() == StatusCode::kNotFound && s3::ParseError(resp.body).code == "NoSuchKey") {
      return Status::OK();
    }
    return st;
  });
}

}  // namespace sluice
