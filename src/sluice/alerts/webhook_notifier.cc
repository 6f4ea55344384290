#include "sluice/alerts/webhook_notifier.h"

#include <curl/curl.h>

#include <chrono>

#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice::alerts {

namespace {

void GlobalInitCurl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t DiscardBody(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

/// Abort the transfer once the notifier is being destroyed.
int AbortWhenStopping(void* stopping, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<std::atomic<bool>*>(stopping)->load(std::memory_order_relaxed) ? 1 : 0;
}

}  // namespace

std::string RedactUrl(std::string_view url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const size_t start = scheme + 3;
  const size_t end = std::min(url.find_first_of("/?#", start), url.size());
  const size_t at = url.substr(0, end).rfind('@');
  if (at == std::string_view::npos || at < start) return std::string(url);
  const size_t colon = url.substr(0, at).find(':', start);
  if (colon == std::string_view::npos) return std::string(url);
  return std::string(url.substr(0, colon + 1)) + "***" + std::string(url.substr(at));
}

WebhookNotifier::WebhookNotifier(WebhookOptions options) : options_(std::move(options)) {}

WebhookNotifier::~WebhookNotifier() {
  size_t abandoned = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_.store(true, std::memory_order_relaxed);
    abandoned = queue_.size();
    queue_.clear();
  }
  wake_.notify_all();
  if (worker_.joinable()) worker_.join();
  if (abandoned > 0) {
    Log(LogLevel::kWarn, "alert webhooks: {} notification(s) not sent (shutting down)", abandoned);
  }
}

void WebhookNotifier::Notify(const AlertEvent& event) {
  if (!event.webhook) return;
  nlohmann::json body = AlertEventJson(event);
  body["timestamp"] = FormatTimestamp(NowMicros());
  if (!options_.pipeline.empty()) body["pipeline"] = options_.pipeline;
  if (!options_.run_id.empty()) body["run_id"] = options_.run_id;
  Post(*event.webhook, JsonText(body));
}

void WebhookNotifier::Post(std::string url, std::string json_body) {
  std::string dropped_url;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_.load(std::memory_order_relaxed)) return;
    if (queue_.size() >= std::max<size_t>(options_.max_queue, 1)) {
      dropped_url = std::move(queue_.front().url);
      queue_.pop_front();
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    queue_.push_back(Request{std::move(url), std::move(json_body)});
    if (!worker_.joinable()) {
      GlobalInitCurl();
      worker_ = std::thread([this] { Run(); });
    }
  }
  wake_.notify_one();
  if (!dropped_url.empty()) {
    Log(LogLevel::kWarn, "alert webhook {}: notification dropped (more than {} waiting)",
        RedactUrl(dropped_url), options_.max_queue);
  }
}

bool WebhookNotifier::Flush(int64_t timeout_us) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_.wait_for(lock, std::chrono::microseconds(std::max<int64_t>(timeout_us, 0)),
                        [this] { return queue_.empty() && !in_flight_; });
}

void WebhookNotifier::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock,
               [this] { return stopping_.load(std::memory_order_relaxed) || !queue_.empty(); });
    if (stopping_.load(std::memory_order_relaxed)) break;
    Request request = std::move(queue_.front());
    queue_.pop_front();
    in_flight_ = true;
    lock.unlock();
    const bool ok = Send(request);
    (ok ? delivered_ : failed_).fetch_add(1, std::memory_order_relaxed);
    lock.lock();
    in_flight_ = false;
    if (queue_.empty()) idle_.notify_all();
  }
  in_flight_ = false;
  idle_.notify_all();
}

bool WebhookNotifier::Send(const Request& request) {
  CURL* h = curl_easy_init();
  if (h == nullptr) {
    Log(LogLevel::kWarn, "alert webhook {}: cannot create a curl handle", RedactUrl(request.url));
    return false;
  }
  curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
  char error[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_POSTFIELDS, request.body.data());
  curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  curl_easy_setopt(h, CURLOPT_USERAGENT, "sluice-alerts");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(options_.connect_timeout_us / 1000, 1)));
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS,
                   static_cast<long>(std::max<int64_t>(options_.total_timeout_us / 1000, 1)));
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &DiscardBody);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, &AbortWhenStopping);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &stopping_);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, error);
  // A webhook is one POST: do not follow redirects to somewhere else.
  curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
  const CURLcode rc = curl_easy_perform(h);
  long http_status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http_status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(h);
  if (rc == CURLE_ABORTED_BY_CALLBACK) {
    Log(LogLevel::kWarn, "alert webhook {}: abandoned (shutting down)", RedactUrl(request.url));
    return false;
  }
  if (rc != CURLE_OK) {
    Log(LogLevel::kWarn, "alert webhook {}: {}", RedactUrl(request.url),
        error[0] != '\0' ? error : curl_easy_strerror(rc));
    return false;
  }
  if (http_status < 200 || http_status >= 300) {
    Log(LogLevel::kWarn, "alert webhook {}: HTTP status {}", RedactUrl(request.url), http_status);
    return false;
  }
  return true;
}

}  // namespace sluice::alerts
