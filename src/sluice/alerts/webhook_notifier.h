#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>

#include "sluice/alerts/alerts.h"
#include "sluice/connectors/http/http_post.h"

namespace sluice::alerts {

struct WebhookOptions {
  int64_t connect_timeout_us = 2'000'000;  ///< Per request: TCP (and TLS) connect.
  int64_t total_timeout_us = 5'000'000;    ///< Per request: everything.
  size_t max_queue = 64;                   ///< Posts waiting; beyond it the oldest is dropped.
  std::string pipeline{};                  ///< Added to every body as "pipeline" when set.
  std::string run_id{};                    ///< Added to every body as "run_id" when set.
};

/// Post alert events as JSON to their webhooks from a background thread, so that the caller
/// (the run's sampler) never waits on the network. Each request has connect and total timeouts
/// and is tried once; a failure (unreachable, timeout, non-2xx status) is logged as a warning
/// naming the URL only as http::RedactUrl shows it (scheme and host: webhook URLs carry tokens)
/// and counted, never thrown or returned. Posts go through http::HttpPoster. Thread-safe.
class WebhookNotifier {
 public:
  explicit WebhookNotifier(WebhookOptions options = {});
  /// Abandon posts still queued (logging how many) and abort the one in flight.
  ~WebhookNotifier();
  WebhookNotifier(const WebhookNotifier&) = delete;
  WebhookNotifier& operator=(const WebhookNotifier&) = delete;

  /// Queue a POST of AlertEventJson(event) plus "timestamp" (now, ISO-8601 UTC), "pipeline" and
  /// "run_id" to event.webhook; do nothing when the event has no webhook. Returns at once.
  void Notify(const AlertEvent& event);
  /// Queue a POST of `json_body` (Content-Type: application/json) to `url`. Returns at once.
  void Post(std::string url, std::string json_body);
  /// Wait until every queued post has been attempted, or `timeout_us` passed; return true when
  /// nothing is left. Call at the end of a run.
  bool Flush(int64_t timeout_us);

  /// Return how many posts got a 2xx answer.
  int64_t delivered() const { return delivered_.load(std::memory_order_relaxed); }
  /// Return how many posts failed (logged).
  int64_t failed() const { return failed_.load(std::memory_order_relaxed); }
  /// Return how many posts were dropped because the queue was full (logged).
  int64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }

 private:
  struct Request {
    std::string url;
    std::string body;
  };

  void Run();
  /// Send one request; log and return false on failure.
  bool Send(const Request& request);

  const WebhookOptions options_;
  std::mutex mu_;
  std::condition_variable wake_;  // the worker: work queued or stopping
  std::condition_variable idle_;  // Flush: queue empty and nothing in flight
  std::deque<Request> queue_;     // guarded by mu_
  bool in_flight_ = false;        // guarded by mu_
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> failed_{0};
  std::atomic<int64_t> dropped_{0};
  http::HttpPoster poster_{&stopping_};  // used by the worker only; aborts once stopping_
  std::thread worker_;                   // started by the first post
};

}  // namespace sluice::alerts
