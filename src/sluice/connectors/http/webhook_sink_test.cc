#include "sluice/connectors/http/webhook_sink.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "sluice/connectors/http/http_post.h"
#include "sluice/testing/matchers.h"
#include "sluice/testing/ports.h"

namespace sluice::http {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::AnyOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

// Bounds for waits that end as soon as the awaited thing happens; they only matter when
// something is broken.
constexpr auto kWaitBound = std::chrono::seconds(30);

/// What the receiver recorded of one request.
struct Received {
  std::string path;
  std::string body;
  std::string content_type;
  std::string idempotency_key;
  std::string authorization;
};

/// A real HTTP receiver on 127.0.0.1 and a port of its own. It answers requests with the
/// statuses queued by Answer() (then 200), can hold requests until Release(), and can answer
/// one request late (Delay). Records every request, held or not, as it arrives.
class Receiver {
 public:
  Receiver() {
    server_.Post(".*", [this](const httplib::Request& req, httplib::Response& res) {
      int status = 200;
      int64_t delay_ms = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        received_.push_back(Received{req.path, req.body, req.get_header_value("Content-Type"),
                                     req.get_header_value("Idempotency-Key"),
                                     req.get_header_value("Authorization")});
        const size_t index = received_.size() - 1;
        arrived_.notify_all();
        if (!statuses_.empty()) {
          status = statuses_.front();
          statuses_.pop_front();
        }
        if (index == delayed_index_) delay_ms = delay_ms_;
        released_.wait(lock, [this] { return !holding_; });
      }
      if (delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
      res.status = status;
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Bounded: the server is bound already, so this takes microseconds.
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~Receiver() {
    Release();
    server_.stop();
    thread_.join();
  }

  bool running() const { return port_ > 0 && server_.is_running(); }
  int port() const { return port_; }
  std::string Url(std::string_view path_and_query) const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path_and_query);
  }
  /// Answer the next requests with `statuses`, in order.
  void Answer(std::vector<int> statuses) {
    std::lock_guard<std::mutex> lock(mu_);
    statuses_.insert(statuses_.end(), statuses.begin(), statuses.end());
  }
  /// Answer request number `index` (0-based) only after `ms` milliseconds.
  void Delay(size_t index, int64_t ms) {
    std::lock_guard<std::mutex> lock(mu_);
    delayed_index_ = index;
    delay_ms_ = ms;
  }
  /// Hold every request (after recording it) until Release().
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    holding_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      holding_ = false;
    }
    released_.notify_all();
  }
  /// Wait until `n` requests have arrived; false when they did not within kWaitBound.
  bool WaitForRequests(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return arrived_.wait_for(lock, kWaitBound, [&] { return received_.size() >= n; });
  }
  std::vector<Received> received() {
    std::lock_guard<std::mutex> lock(mu_);
    return received_;
  }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable arrived_;
  std::condition_variable released_;
  std::vector<Received> received_;   // guarded by mu_
  std::deque<int> statuses_;         // guarded by mu_
  bool holding_ = false;             // guarded by mu_
  size_t delayed_index_ = SIZE_MAX;  // guarded by mu_
  int64_t delay_ms_ = 0;             // guarded by mu_
};

/// Return `options` with the schema's defaults filled in, as the config loader would.
OptionJson WithDefaults(OptionJson options) {
  for (const auto& spec : WebhookSinkOptionSpecs()) {
    if (options.contains(spec.name) || spec.default_value.empty()) continue;
    if (spec.type == OptionType::kDuration) {
      options[spec.name] = spec.default_value;  // "10s": NodeOptions parses it
    } else {
      options[spec.name] = std::stoll(spec.default_value);
    }
  }
  return options;
}

/// A webhook sink under test with what the executor would give it: a context whose clock is
/// fake (backoff sleeps return at once), and acks that report to a queue the test reads.
class SinkHarness {
 public:
  explicit SinkHarness(OptionJson options, bool dry_run = false)
      : ctx_("hook", "webhook", &stats_, &cancelled_, dry_run) {
    ctx_.set_clock(&clock_);
    auto made =
        MakeWebhookSink(NodeOptions::ForTest("hook", WithDefaults(std::move(options)), "webhook"));
    if (made.ok()) sink_ = std::move(*made);
    make_status_ = made.status();
  }
  ~SinkHarness() {
    if (sink_ != nullptr) (void)sink_->Close();
  }

  Status Open() {
    if (!make_status_.ok()) return make_status_;
    return sink_->Open(&ctx_);
  }
  Sink* sink() { return sink_.get(); }
  AckSet Acks(uint64_t seq) { return AckSet(std::make_shared<AckHandle>(acks_, seq)); }
  /// Return the batches settled so far as "seq:delivered" / "seq:abandoned".
  std::vector<std::string> Settled() {
    std::vector<AckQueue::Event> events;
    acks_->Drain(&events, 0);
    for (const auto& e : events) {
      settled_.push_back(fmt::format("{}:{}", e.seq, e.delivered ? "delivered" : "abandoned"));
    }
    return settled_;
  }
  int64_t Counter(const std::string& name) const {
    const auto counters = stats_.Counters();
    auto it = counters.find(name);
    return it == counters.end() ? 0 : it->second;
  }
  void Cancel() { cancelled_.store(true); }

 private:
  NodeStats stats_;
  std::atomic<bool> cancelled_{false};
  FakeClock clock_;
  NodeContext ctx_;
  std::shared_ptr<AckQueue> acks_ = std::make_shared<AckQueue>();
  std::unique_ptr<Sink> sink_;
  Status make_status_;
  std::vector<std::string> settled_;
};

SchemaPtr TestSchema() {
  return MakeSchema({{"id", TypeId::kInt64},
                     {"name", TypeId::kString},
                     {"value", TypeId::kFloat64},
                     {"at", TypeId::kTimestamp},
                     {"ok", TypeId::kBool}});
}

BatchPtr Rows(std::string_view json) {
  auto batch = BatchFromJson(TestSchema(), json);
  EXPECT_TRUE(batch.ok()) << batch.status().ToString();
  return batch.ok() ? *batch : nullptr;
}

/// Return `batch` with its "value" column (index 2) holding `values`: NaN and the infinities,
/// which BatchFromJson does not take.
BatchPtr WithValues(const BatchPtr& batch, const std::vector<double>& values) {
  ColumnBuilder builder(TypeId::kFloat64);
  for (double v : values) builder.AppendFloat64(v);
  std::vector<Column> columns;
  columns.reserve(static_cast<size_t>(batch->num_columns()));
  for (int c = 0; c < batch->num_columns(); ++c) columns.push_back(batch->column(c));
  columns[2] = builder.Finish();
  auto made = Batch::Make(batch->schema(), std::move(columns));
  EXPECT_TRUE(made.ok()) << made.status().ToString();
  return made.ok() ? *made : nullptr;
}

/// `count` rows with ids first_id, first_id + 1, ...
BatchPtr NumberedRows(int64_t first_id, int64_t count) {
  std::string json = "[";
  for (int64_t i = 0; i < count; ++i) {
    json += fmt::format("{}[{}, \"r{}\", {}, null, true]", i == 0 ? "" : ",", first_id + i,
                        first_id + i, static_cast<double>(first_id + i) / 4);
  }
  return Rows(json + "]");
}

TEST(WebhookSinkTest, PostsJsonArraysOfAtMostMaxBatchRowsAndAcksAfter2xx) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  SinkHarness h({{"url", receiver.Url("/hooks/T0/B1?token=abc")},
                 {"headers", {{"Authorization", "Bearer tok-123"}}},
                 {"max_batch_rows", 2}});
  ASSERT_OK(h.Open());
  // int64 beyond 2^53, NaN and the infinities, NULLs, timestamps, a quote: as the jsonl
  // encoder writes them.
  const double inf = std::numeric_limits<double>::infinity();
  ASSERT_OK(h.sink()->Write(WithValues(Rows(R"([
      [1, "a \"q\"", 0, "2026-01-02T03:04:05Z", true],
      [9007199254740993, null, 0, "2026-01-02T03:04:05.000006Z", false],
      [3, "c", 0, null, null],
      [4, "d", 0, null, true],
      [5, "e", 0, null, false]])"),
                                       {1.5, std::nan(""), inf, -inf, -0.25}),
                            h.Acks(7)));
  ASSERT_OK(h.sink()->Flush());

  const auto got = receiver.received();
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_EQ(got[0].body,
            R"([{"id":1,"name":"a \"q\"","value":1.5,"at":"2026-01-02T03:04:05Z","ok":true},)"
            R"({"id":9007199254740993,"name":null,"value":"NaN",)"
            R"("at":"2026-01-02T03:04:05.000006Z","ok":false}])");
  EXPECT_EQ(got[1].body, R"([{"id":3,"name":"c","value":"Infinity","at":null,"ok":null},)"
                         R"({"id":4,"name":"d","value":"-Infinity","at":null,"ok":true}])");
  EXPECT_EQ(got[2].body, R"([{"id":5,"name":"e","value":-0.25,"at":null,"ok":false}])");
  for (const Received& r : got) {
    EXPECT_EQ(r.path, "/hooks/T0/B1");
    EXPECT_EQ(r.content_type, "application/json");
    EXPECT_EQ(r.authorization, "Bearer tok-123");
    EXPECT_EQ(r.idempotency_key, IdempotencyKey(r.body));
    EXPECT_THAT(r.idempotency_key, SizeIs(64));
  }
  EXPECT_NE(got[0].idempotency_key, got[1].idempotency_key);
  EXPECT_THAT(h.Settled(), ElementsAre("7:delivered"));
  EXPECT_EQ(h.Counter("requests"), 3);
  EXPECT_EQ(h.Counter("retries"), 0);
  EXPECT_EQ(h.Counter("failures"), 0);
  EXPECT_EQ(h.Counter("rows_delivered"), 5);
}

TEST(WebhookSinkTest, IdempotencyKeyIsTheSha256OfTheBody) {
  EXPECT_EQ(IdempotencyKey(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(IdempotencyKey("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(WebhookSinkTest, RetriesUnavailableAnswersWithTheSameKeyAndBody) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Answer({503, 429, 500});
  SinkHarness h({{"url", receiver.Url("/hook")}, {"backoff", 1000}, {"max_attempts", 5}});
  ASSERT_OK(h.Open());
  ASSERT_OK(h.sink()->Write(NumberedRows(1, 3), h.Acks(0)));
  ASSERT_OK(h.sink()->Flush());
  const auto got = receiver.received();
  ASSERT_THAT(got, SizeIs(4));
  for (const Received& r : got) {
    EXPECT_EQ(r.body, got[0].body);
    EXPECT_EQ(r.idempotency_key, got[0].idempotency_key);
  }
  EXPECT_THAT(h.Settled(), ElementsAre("0:delivered"));
  EXPECT_EQ(h.Counter("requests"), 4);
  EXPECT_EQ(h.Counter("retries"), 3);
  EXPECT_EQ(h.Counter("failures"), 3);
  EXPECT_EQ(h.Counter("rows_delivered"), 3);
}

TEST(WebhookSinkTest, AnAnswerSlowerThanTheTimeoutIsRetried) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Delay(0, 2000);  // the first request is answered well past the 200 ms timeout
  SinkHarness h({{"url", receiver.Url("/hook")}, {"timeout", 200'000}, {"backoff", 0}});
  ASSERT_OK(h.Open());
  ASSERT_OK(h.sink()->Write(NumberedRows(10, 2), h.Acks(3)));
  ASSERT_OK(h.sink()->Flush());
  const auto got = receiver.received();
  ASSERT_THAT(got, SizeIs(2));
  EXPECT_EQ(got[1].idempotency_key, got[0].idempotency_key);
  EXPECT_THAT(h.Settled(), ElementsAre("3:delivered"));
  EXPECT_EQ(h.Counter("retries"), 1);
}

TEST(WebhookSinkTest, A400FailsTheBatchAndTheErrorShowsNoPathQueryOrUser) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Answer({400});
  const std::string url = fmt::format(
      "http://bot:pw-S3cret@127.0.0.1:{}/services/T0/XYZsecret?token=abc", receiver.port());
  SinkHarness h({{"url", url}, {"backoff", 0}});
  ASSERT_OK(h.Open());
  ASSERT_OK(h.sink()->Write(NumberedRows(1, 2), h.Acks(0)));
  const Status st = h.sink()->Flush();
  EXPECT_THAT(
      st, StatusIs(StatusCode::kInvalidArgument,
                   HasSubstr(fmt::format("HTTP 400 from http://127.0.0.1:{}/…", receiver.port()))));
  for (const char* secret : {"bot", "pw-S3cret", "services", "XYZsecret", "token", "abc"}) {
    EXPECT_THAT(st.message(), Not(HasSubstr(secret)));
  }
  EXPECT_THAT(receiver.received(), SizeIs(1));  // not retried
  EXPECT_EQ(h.Counter("failures"), 1);
  EXPECT_EQ(h.Counter("retries"), 0);
  EXPECT_THAT(h.Settled(), ElementsAre("0:abandoned"));
  // Every later batch fails at once, unsent.
  EXPECT_THAT(h.sink()->Write(NumberedRows(3, 1), h.Acks(1)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("HTTP 400")));
  EXPECT_THAT(h.sink()->OnTimer(0), StatusIs(StatusCode::kInvalidArgument, HasSubstr("HTTP 400")));
  EXPECT_THAT(receiver.received(), SizeIs(1));
}

TEST(WebhookSinkTest, ExhaustedRetriesFailTheBatchAndAbandonWhatWaits) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Hold();
  receiver.Answer({503, 503, 503});
  SinkHarness h({{"url", receiver.Url("/hook?key=Q1")},
                 {"backoff", 0},
                 {"max_attempts", 3},
                 {"max_batch_rows", 1},
                 {"queue", 3}});
  ASSERT_OK(h.Open());
  // Three requests queue up behind the held first one: its batch and the next are waiting.
  ASSERT_OK(h.sink()->Write(NumberedRows(1, 1), h.Acks(0)));
  ASSERT_OK(h.sink()->Write(NumberedRows(2, 2), h.Acks(1)));
  ASSERT_TRUE(receiver.WaitForRequests(1));
  receiver.Release();
  const Status st = h.sink()->Flush();
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable,
                           HasSubstr(fmt::format("giving up after 3 attempts: HTTP 503 from "
                                                 "http://127.0.0.1:{}/…",
                                                 receiver.port()))));
  EXPECT_THAT(st.message(), Not(HasSubstr("Q1")));
  const auto got = receiver.received();
  ASSERT_THAT(got, SizeIs(3));  // only the first request, three times
  EXPECT_EQ(got[2].body, got[0].body);
  EXPECT_THAT(h.Settled(), ElementsAre("0:abandoned", "1:abandoned"));
}

TEST(WebhookSinkTest, TheCircuitBreakerStopsSendingToAFailingServer) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Answer({502, 502, 502, 502, 502, 502});
  SinkHarness h({{"url", receiver.Url("/hook")},
                 {"backoff", 0},
                 {"max_attempts", 6},
                 {"breaker_failures", 2},
                 {"breaker_recovery", int64_t{3600} * 1'000'000}});
  ASSERT_OK(h.Open());
  ASSERT_OK(h.sink()->Write(NumberedRows(1, 1), h.Acks(0)));
  EXPECT_THAT(h.sink()->Flush(),
              StatusIs(StatusCode::kUnavailable,
                       HasSubstr("circuit breaker open after 2 consecutive failed requests")));
  EXPECT_THAT(receiver.received(), SizeIs(2));  // attempts 3..6 were refused by the breaker
  EXPECT_EQ(h.Counter("requests"), 2);
  EXPECT_THAT(h.Settled(), ElementsAre("0:abandoned"));
}

TEST(WebhookSinkTest, AConnectionRefusedIsRetriedThenFailsNamingOnlyTheHost) {
  const ::sluice::testing::RefusingPort refusing;
  const int port = refusing.port();
  ASSERT_GT(port, 0);
  SinkHarness h({{"url", fmt::format("http://127.0.0.1:{}/T0/secret-path", port)},
                 {"backoff", 0},
                 {"max_attempts", 2}});
  ASSERT_OK(h.Open());
  ASSERT_OK(h.sink()->Write(NumberedRows(1, 1), h.Acks(0)));
  const Status st = h.sink()->Flush();
  EXPECT_THAT(st, StatusIs(StatusCode::kUnavailable,
                           HasSubstr(fmt::format("POST http://127.0.0.1:{}/…", port))));
  EXPECT_THAT(st.message(), Not(HasSubstr("secret-path")));
  EXPECT_EQ(h.Counter("requests"), 2);
  EXPECT_EQ(h.Counter("retries"), 1);
  EXPECT_THAT(h.Settled(), ElementsAre("0:abandoned"));
}

TEST(WebhookSinkTest, WriteBlocksWhileTheQueueIsFull) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Hold();
  SinkHarness h({{"url", receiver.Url("/hook")}, {"max_batch_rows", 1}, {"queue", 1}});
  ASSERT_OK(h.Open());
  std::atomic<bool> returned{false};
  Status write_status;
  std::thread writer([&] {
    write_status = h.sink()->Write(NumberedRows(1, 3), h.Acks(0));
    returned.store(true);
  });
  ASSERT_TRUE(receiver.WaitForRequests(1));
  // The first request is held by the receiver and fills the queue of one: the second cannot
  // be queued, so Write cannot have returned.
  EXPECT_FALSE(returned.load());
  EXPECT_THAT(h.Settled(), SizeIs(0));
  receiver.Release();
  writer.join();
  ASSERT_OK(write_status);
  ASSERT_OK(h.sink()->Flush());
  const auto got = receiver.received();
  ASSERT_THAT(got, SizeIs(3));
  EXPECT_THAT(got[0].body, HasSubstr(R"("id":1,)"));
  EXPECT_THAT(got[1].body, HasSubstr(R"("id":2,)"));
  EXPECT_THAT(got[2].body, HasSubstr(R"("id":3,)"));
  EXPECT_THAT(h.Settled(), ElementsAre("0:delivered"));
}

TEST(WebhookSinkTest, CancellingUnblocksAWriteWaitingForRoom) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  receiver.Hold();
  SinkHarness h({{"url", receiver.Url("/hook")}, {"max_batch_rows", 1}, {"queue", 1}});
  ASSERT_OK(h.Open());
  Status write_status;
  std::thread writer([&] { write_status = h.sink()->Write(NumberedRows(1, 2), h.Acks(0)); });
  ASSERT_TRUE(receiver.WaitForRequests(1));
  h.Cancel();
  writer.join();
  // Either the waiting Write saw the flag first, or the held request was aborted first (the
  // sender's error then ends the wait).
  EXPECT_THAT(
      write_status,
      StatusIs(
          StatusCode::kCancelled,
          AnyOf(HasSubstr("cancelled while waiting for room in the queue"),
                HasSubstr(fmt::format("POST http://127.0.0.1:{}/…: abandoned", receiver.port())))));
  ASSERT_OK(h.sink()->Close());  // aborts the held request
  EXPECT_THAT(h.Settled(), ElementsAre("0:abandoned"));
}

TEST(WebhookSinkTest, ADryRunPostsNothing) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  SinkHarness h({{"url", receiver.Url("/hook")}}, /*dry_run=*/true);
  ASSERT_OK(h.Open());
  ASSERT_OK(h.sink()->Write(NumberedRows(1, 2), h.Acks(0)));
  ASSERT_OK(h.sink()->Flush());
  EXPECT_THAT(receiver.received(), SizeIs(0));
}

TEST(WebhookSinkTest, ConfigErrorsNeverQuoteSecrets) {
  struct Case {
    OptionJson options;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{{"url", "ftp://u:pw@files.example/T0/secret"}},
       "option 'url': expected an http:// or https:// URL, got ftp://files.example/…"},
      {{{"url", "hooks.example.com/T0/secret"}},
       "option 'url': expected an http:// or https:// URL, got <invalid URL>"},
      {{{"url", "http://bad host/T0/secret"}}, "option 'url': not a valid URL"},
      {{{"url", "https://h.example/T0/secret"}, {"headers", {{"X-Token", "tok\r\nEvil: 1"}}}},
       "the value of 'X-Token' holds a line break"},
      {{{"url", "https://h.example/T0/secret"}, {"headers", {{"X-Token", {{"a", "secret"}}}}}},
       "the value of 'X-Token' must be a string"},
      {{{"url", "https://h.example/T0/secret"}, {"headers", {{"Bad Name", "secret"}}}},
       "'Bad Name' is not an HTTP header name"},
      {{{"url", "https://h.example/T0/secret"}, {"headers", {{"idempotency-key", "secret"}}}},
       "'idempotency-key' is set by the sink"},
      {{{"url", "https://h.example/T0/secret"}, {"queue", 0}}, "option 'queue': must be positive"},
      {{{"url", "https://h.example/T0/secret"}, {"max_batch_rows", -1}},
       "option 'max_batch_rows': must be positive"},
      {{{"url", "https://h.example/T0/secret"}, {"timeout", 0}},
       "option 'timeout': must be positive"},
      {{{"url", "https://h.example/T0/secret"}, {"max_attempts", 0}},
       "option 'max_attempts': must be between 1 and 1000"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    auto made = MakeWebhookSink(NodeOptions::ForTest("hook", WithDefaults(c.options), "webhook"));
    EXPECT_THAT(made, StatusIs(StatusCode::kConfigError, HasSubstr(c.message)));
    EXPECT_THAT(made.status().message(), Not(HasSubstr("secret")));
    EXPECT_THAT(made.status().message(), Not(HasSubstr("pw")));
  }
}

}  // namespace
}  // namespace sluice::http
