#include "sluice/alerts/webhook_notifier.h"

#include <chrono>

#include "sluice/connectors/http/http_post.h"
#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"

namespace sluice::alerts {

using http::RedactUrl;

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
  http::PostOptions options;
  options.connect_timeout_us = options_.connect_timeout_us;
  options.total_timeout_us = options_.total_timeout_us;
  options.user_agent = "sluice-alerts";
  // Errors of the client name the URL only as RedactUrl() shows it.
  Result<int> answered = poster_.Post(request.url, request.body, options);
  if (!answered.ok()) {
    if (answered.status().code() == StatusCode::kCancelled) {
      Log(LogLevel::kWarn, "alert webhook {}: abandoned (shutting down)", RedactUrl(request.url));
    } else {
      Log(LogLevel::kWarn, "alert webhook: {}", answered.status().message());
    }
    return false;
  }
  if (Status st = http::StatusFromHttp(*answered, request.url); !st.ok()) {
    Log(LogLevel::kWarn, "alert webhook: {}", st.message());
    return false;
  }
  return true;
}

}  // namespace sluice::alerts
