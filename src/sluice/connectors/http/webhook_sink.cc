#include "sluice/connectors/http/webhook_sink.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "sluice/connectors/http/curl_api.h"
#include "sluice/connectors/http/http_post.h"
#include "sluice/core/log.h"
#include "sluice/io/jsonl.h"
#include "sluice/io/sha256.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice::http {

namespace {

// How often a wait for room in the queue, or for the queue to empty, looks at the run's
// cancelled flag.
constexpr auto kWaitSlice = std::chrono::milliseconds(50);

struct WebhookSinkOptions {
  std::string url;
  PostOptions post;  // with the `headers` option as "Name: value" lines (secrets)
  int64_t max_batch_rows = 500;
  size_t queue = 4;
  RetryPolicy retry;
  CircuitBreakerOptions breaker;
};

/// One POST: the body of up to max_batch_rows rows, and the acks of the batch they came from
/// (shared with the other requests of that batch).
struct Request {
  std::string body;
  std::string idempotency_key;
  int64_t rows = 0;
  AckSet acks;
};

class WebhookSink final : public Sink {
 public:
  explicit WebhookSink(WebhookSinkOptions options)
      : options_(std::move(options)), shown_url_(RedactUrl(options_.url)) {}

  ~WebhookSink() override { StopSender(); }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    if (ctx->dry_run()) return Status::OK();
    breaker_ = std::make_unique<CircuitBreaker>(options_.breaker, ctx->clock());
    poster_ = std::make_unique<HttpPoster>(ctx->cancelled_flag());
    sender_ = std::thread([this] { SendLoop(); });
    // A request that fails while no batch comes fails the run at the next timer, not at the
    // next batch, which a quiet stream may not send for a long time.
    ctx->SetTimer(1'000'000);
    return Status::OK();
  }

  Status Write(const BatchPtr& batch, AckSet acks) override {
    if (ctx_->dry_run() || batch->num_rows() == 0) return Status::OK();
    SLUICE_RETURN_NOT_OK(FirstError());
    if (encoder_ == nullptr || !(*encoder_schema_ == *batch->schema())) {
      encoder_schema_ = batch->schema();
      encoder_ = std::make_unique<io::JsonlEncoder>(encoder_schema_);
    }
    lines_.clear();
    row_ends_.clear();
    encoder_->Encode(*batch, &lines_, &row_ends_);
    const int64_t rows = batch->num_rows();
    for (int64_t start = 0; start < rows; start += options_.max_batch_rows) {
      const int64_t end = std::min(rows, start + options_.max_batch_rows);
      Request request;
      request.rows = end - start;
      request.body = JsonArray(start, end);
      request.idempotency_key = IdempotencyKey(request.body);
      // Every request shares the batch's acks; the caller's reference goes when Write returns.
      request.acks = acks;
      SLUICE_RETURN_NOT_OK(Enqueue(std::move(request)));
    }
    return Status::OK();
  }

  /// Wait until every queued request was answered; return the first failure, if any.
  Status Flush() override {
    if (ctx_ == nullptr || ctx_->dry_run()) return Status::OK();
    std::unique_lock<std::mutex> lock(mu_);
    while (error_.ok() && (!queue_.empty() || in_flight_)) {
      if (ctx_->cancelled()) {
        return Status::Cancelled("webhook {}: cancelled with {} request(s) unanswered", shown_url_,
                                 queue_.size() + (in_flight_ ? 1 : 0));
      }
      changed_.wait_for(lock, kWaitSlice);
    }
    return error_;
  }

  Status OnTimer(int64_t) override { return FirstError(); }

  Status Close() override {
    StopSender();
    return Status::OK();
  }

 private:
  Status FirstError() {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
  }

  /// Return the rows [start, end) of lines_ as one JSON array.
  std::string JsonArray(int64_t start, int64_t end) const {
    const size_t from = start == 0 ? 0 : row_ends_[static_cast<size_t>(start - 1)];
    const size_t to = row_ends_[static_cast<size_t>(end - 1)];
    std::string body;
    body.reserve(to - from + 2);
    body += '[';
    size_t row_start = from;
    for (int64_t r = start; r < end; ++r) {
      const size_t row_end = row_ends_[static_cast<size_t>(r)];  // just past the '\n'
      body.append(lines_, row_start, row_end - 1 - row_start);
      if (r + 1 < end) body += ',';
      row_start = row_end;
    }
    body += ']';
    return body;
  }

  /// Queue `request`, first waiting while `queue` requests are queued or in flight.
  Status Enqueue(Request request) {
    std::unique_lock<std::mutex> lock(mu_);
    while (error_.ok() && queue_.size() + (in_flight_ ? 1 : 0) >= options_.queue) {
      if (ctx_->cancelled()) {
        request.acks.Fail();
        return Status::Cancelled("webhook {}: cancelled while waiting for room in the queue",
                                 shown_url_);
      }
      changed_.wait_for(lock, kWaitSlice);
    }
    if (!error_.ok()) {
      request.acks.Fail();
      return error_;
    }
    queue_.push_back(std::move(request));
    changed_.notify_all();
    return Status::OK();
  }

  void SendLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      changed_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) break;
      Request request = std::move(queue_.front());
      queue_.pop_front();
      in_flight_ = true;
      lock.unlock();
      Status st = Deliver(request);
      if (!st.ok()) request.acks.Fail();
      request.acks.Release();  // this request is done with its batch (delivered, or failed)
      lock.lock();
      in_flight_ = false;
      if (!st.ok() && error_.ok()) {
        error_ = st;
        // Nothing queued behind a failed request is sent: the run fails, and every batch
        // still waiting is abandoned for a rerun to deliver.
        for (Request& q : queue_) q.acks.Fail();
        queue_.clear();
      }
      changed_.notify_all();
    }
  }

  /// POST one request until it gets a 2xx, retrying what may succeed later.
  Status Deliver(const Request& request) {
    NodeStats* stats = ctx_->stats();
    PostOptions post = options_.post;
    post.headers.push_back("Idempotency-Key: " + request.idempotency_key);
    int attempt = 0;
    auto one = [&]() -> Status {
      if (!breaker_->Allow()) {
        return Status::Unavailable(
            "webhook {}: circuit breaker open after {} consecutive failed requests (next probe "
            "within {:g}s)",
            shown_url_, options_.breaker.failure_threshold,
            static_cast<double>(options_.breaker.recovery_timeout_us) / 1e6);
      }
      if (++attempt > 1) stats->AddCounter("retries", 1);
      stats->AddCounter("requests", 1);
      const auto started = std::chrono::steady_clock::now();
      Result<int> answered = poster_->Post(options_.url, request.body, post);
      if (stats->histograms) {
        stats->request_latency.Record(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                          std::chrono::steady_clock::now() - started)
                                          .count());
      }
      Status st = answered.ok() ? StatusFromHttp(*answered, options_.url) : answered.status();
      // A 4xx other than 408/429 is the server answering, and refusing this request: it says
      // nothing about the server's health.
      if (st.ok() || (answered.ok() && !st.IsRetryable())) {
        breaker_->RecordSuccess();
      } else if (st.code() != StatusCode::kCancelled) {
        breaker_->RecordFailure();
      }
      if (!st.ok()) {
        stats->AddCounter("failures", 1);
        // Messages name the URL as RedactUrl shows it, never more.
        if (st.IsRetryable() && attempt < options_.retry.max_attempts) {
          Log(LogLevel::kWarn, "node '{}': webhook attempt {} of {} failed, retrying: {}",
              ctx_->id(), attempt, options_.retry.max_attempts, st.message());
        }
      }
      return st;
    };
    Status st = Retry(options_.retry, ctx_->clock(), one, &retry_stats_, ctx_->cancelled_flag());
    if (st.ok()) {
      stats->AddCounter("rows_delivered", request.rows);
      return st;
    }
    if (st.code() == StatusCode::kCancelled) return st;
    return st.WithContext("webhook: a request of {} row(s) not delivered", request.rows);
  }

  void StopSender() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      // Not sent: their batches are abandoned (a successful run has flushed them all).
      for (Request& q : queue_) q.acks.Fail();
      queue_.clear();
    }
    changed_.notify_all();
    if (sender_.joinable()) sender_.join();
  }

  const WebhookSinkOptions options_;
  const std::string shown_url_;
  NodeContext* ctx_ = nullptr;
  // Used by Write only.
  SchemaPtr encoder_schema_;
  std::unique_ptr<io::JsonlEncoder> encoder_;
  std::string lines_;
  std::vector<size_t> row_ends_;
  // Used by the sender thread only.
  std::unique_ptr<HttpPoster> poster_;
  std::unique_ptr<CircuitBreaker> breaker_;
  RetryStats retry_stats_;

  std::mutex mu_;
  std::condition_variable changed_;  // a request queued or answered, or stopping
  std::deque<Request> queue_;        // guarded by mu_
  bool in_flight_ = false;           // guarded by mu_
  bool stop_ = false;                // guarded by mu_
  Status error_;                     // guarded by mu_; the first request that failed
  std::thread sender_;
};

/// Return true for an HTTP header name: a token of RFC 9110.
bool IsHeaderName(std::string_view name) {
  static constexpr std::string_view kTokenPunct = "!#$%&'*+-.^_`|~";
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
           kTokenPunct.find(c) != std::string_view::npos;
  });
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

Result<std::vector<std::string>> HeaderLines(const NodeOptions& o) {
  std::vector<std::string> lines;
  if (!o.Has("headers")) return lines;
  const OptionJson& headers = o.GetJson("headers");
  if (!headers.is_object()) return o.ErrorAt("headers", "expects a mapping of name -> value");
  for (const auto& [name, value] : headers.items()) {
    if (!IsHeaderName(name)) {
      return o.ErrorAt("headers", fmt::format("'{}' is not an HTTP header name", name));
    }
    for (std::string_view reserved : {"Content-Type", "Content-Length", "Idempotency-Key"}) {
      if (EqualsIgnoreCase(name, reserved)) {
        return o.ErrorAt("headers", fmt::format("'{}' is set by the sink", name));
      }
    }
    // Header values are secrets (tokens): errors name the header, never its value.
    std::string text;
    if (value.is_string()) {
      text = value.get<std::string>();
    } else if (value.is_number() || value.is_boolean()) {
      text = value.dump();
    } else {
      return o.ErrorAt("headers", fmt::format("the value of '{}' must be a string", name));
    }
    if (text.find_first_of("\r\n") != std::string::npos || text.find('\0') != std::string::npos) {
      return o.ErrorAt("headers", fmt::format("the value of '{}' holds a line break or NUL", name));
    }
    std::string line = name;
    line.append(": ").append(text);
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace

std::string IdempotencyKey(std::string_view body) { return Sha256Hex(body); }

OptionSchema WebhookSinkOptionSpecs() {
  return {
      {"url", OptionType::kString, "",
       "The http:// or https:// URL to POST to; ${ENV} works. A secret: logs, errors and "
       "reports show only its scheme and host.",
       true},
      {"headers", OptionType::kMap, "",
       "Extra request headers, name -> value (e.g. Authorization: \"Bearer ${TOKEN}\"). Values "
       "are never logged."},
      {"timeout", OptionType::kDuration, "10s",
       "Per request, connecting and answering included; a timeout is retried."},
      {"max_batch_rows", OptionType::kInt, "500", "Rows per POST (a JSON array of objects)."},
      {"queue", OptionType::kInt, "4",
       "Requests queued or in flight at most; beyond it the sink blocks (backpressure)."},
      {"max_attempts", OptionType::kInt, "5",
       "Attempts per request, the first included, on connection errors, timeouts, 408, 429 "
       "and 5xx; then the run fails."},
      {"backoff", OptionType::kDuration, "1s",
       "Wait before the first retry; doubles each retry (with 10 % jitter), up to 30s."},
      {"breaker_failures", OptionType::kInt, "5",
       "Consecutive failed requests that open the circuit breaker (requests then fail without "
       "being sent, and count as attempts, until a probe succeeds)."},
      {"breaker_recovery", OptionType::kDuration, "30s",
       "How long the breaker stays open before one probe request is let through."},
  };
}

Result<std::unique_ptr<Sink>> MakeWebhookSink(const NodeOptions& o) {
  SLUICE_RETURN_NOT_OK(LoadCurl());  // a missing libcurl: an error naming the package
  SLUICE_RETURN_NOT_OK(LoadSha256());
  WebhookSinkOptions s;
  s.url = o.GetString("url");
  if (!s.url.starts_with("http://") && !s.url.starts_with("https://")) {
    return o.ErrorAt("url",
                     fmt::format("expected an http:// or https:// URL, got {}", RedactUrl(s.url)));
  }
  if (RedactUrl(s.url) == "<invalid URL>") {
    return o.ErrorAt("url", "not a valid URL (expected http(s)://host[:port]/path)");
  }
  if (const std::string problem = UrlProblem(s.url); !problem.empty()) {
    return o.ErrorAt("url", fmt::format("{} is not a valid URL: {}", RedactUrl(s.url), problem));
  }
  SLUICE_ASSIGN_OR_RETURN(s.post.headers, HeaderLines(o));
  s.post.user_agent = "sluice-webhook";
  s.post.total_timeout_us = o.GetDurationMicros("timeout");
  if (s.post.total_timeout_us <= 0) return o.ErrorAt("timeout", "must be positive");
  s.post.connect_timeout_us = s.post.total_timeout_us;
  s.max_batch_rows = o.GetInt("max_batch_rows");
  if (s.max_batch_rows <= 0) return o.ErrorAt("max_batch_rows", "must be positive");
  const int64_t queue = o.GetInt("queue");
  if (queue <= 0) return o.ErrorAt("queue", "must be positive");
  s.queue = static_cast<size_t>(queue);
  const int64_t max_attempts = o.GetInt("max_attempts");
  if (max_attempts <= 0 || max_attempts > 1000) {
    return o.ErrorAt("max_attempts", "must be between 1 and 1000");
  }
  s.retry.max_attempts = static_cast<int>(max_attempts);
  s.retry.initial_us = o.GetDurationMicros("backoff");
  if (s.retry.initial_us < 0) return o.ErrorAt("backoff", "must be >= 0");
  s.retry.max_us = std::max<int64_t>(s.retry.initial_us, 30'000'000);
  // One request at a time, each with its own bounded attempts: there is no storm of retries
  // for a budget to damp, and a budget would make the attempts a run gets depend on history.
  s.retry.use_budget = false;
  const int64_t breaker_failures = o.GetInt("breaker_failures");
  if (breaker_failures <= 0) return o.ErrorAt("breaker_failures", "must be positive");
  s.breaker.failure_threshold = static_cast<int>(std::min<int64_t>(breaker_failures, 1 << 20));
  s.breaker.recovery_timeout_us = o.GetDurationMicros("breaker_recovery");
  if (s.breaker.recovery_timeout_us <= 0) return o.ErrorAt("breaker_recovery", "must be positive");
  return std::unique_ptr<Sink>(new WebhookSink(std::move(s)));
}

}  // namespace sluice::http

namespace sluice {

void RegisterHttpNodes(NodeRegistry* registry) {
  registry->AddSink(
      "webhook",
      "POST rows as JSON arrays of objects (at most max_batch_rows per request) to an HTTP "
      "endpoint, one request at a time, with an Idempotency-Key header (SHA-256 of the body); "
      "retries connection errors, timeouts, 408, 429 and 5xx with backoff behind a circuit "
      "breaker; acknowledged once every request of a batch got a 2xx: at least once. The URL "
      "and header values are never logged.",
      http::WebhookSinkOptionSpecs(), &http::MakeWebhookSink);
}

}  // namespace sluice
