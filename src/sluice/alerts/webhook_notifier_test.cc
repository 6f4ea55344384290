#include "sluice/alerts/webhook_notifier.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <gtest/gtest.h>
#include <httplib.h>

#include "sluice/testing/matchers.h"
#include "sluice/testing/ports.h"

namespace sluice::alerts {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::SizeIs;

// Bounds for waits that end as soon as the awaited thing happens; they only matter when
// something is broken.
constexpr int64_t kFlushBoundUs = 30'000'000;

/// A real HTTP receiver on 127.0.0.1 and a port of its own, recording every POST to /hook and
/// answering 500 on /fail.
class Receiver {
 public:
  Receiver() {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      bodies_.push_back(req.body);
      content_types_.push_back(req.get_header_value("Content-Type"));
      res.status = 200;
    });
    server_.Post("/fail",
                 [](const httplib::Request&, httplib::Response& res) { res.status = 500; });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    // Bounded: the server is bound already, so this takes microseconds.
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }

  bool running() const { return port_ > 0 && server_.is_running(); }
  std::string Url(std::string_view path) const {
    return fmt::format("http://127.0.0.1:{}{}", port_, path);
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::vector<std::string> content_types() {
    std::lock_guard<std::mutex> lock(mu_);
    return content_types_;
  }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
  std::mutex mu_;
  std::vector<std::string> bodies_;
  std::vector<std::string> content_types_;
};

/// A TCP socket on 127.0.0.1 that listens but never accepts: connections complete (the kernel's
/// backlog) and then nothing is ever answered.
class SilentListener {
 public:
  SilentListener() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 && listen(fd_, 16) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~SilentListener() { close(fd_); }
  bool ok() const { return port_ > 0; }
  std::string Url() const { return fmt::format("http://127.0.0.1:{}/hook", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

AlertEvent FiredEvent(std::string webhook) {
  AlertEvent e;
  e.kind = AlertEvent::Kind::kFired;
  e.name = "slow_batches";
  e.metric = "batch_latency_p95_s";
  e.node = "archive";
  e.op = AlertOp::kAbove;
  e.value = 2.5;
  e.threshold = 2;
  e.fired_at_us = 31'000'000;
  e.message =
      "alert 'slow_batches' firing: batch_latency_p95_s of node 'archive' is 2.5, "
      "above 2 for 30s";
  e.webhook = std::move(webhook);
  return e;
}

TEST(WebhookNotifierTest, PostsTheEventAsJsonToARealReceiver) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  WebhookNotifier notifier(WebhookOptions{.pipeline = "archive_orders", .run_id = "r-42"});
  AlertEvent fired = FiredEvent(receiver.Url("/hook"));
  notifier.Notify(fired);
  AlertEvent resolved = fired;
  resolved.kind = AlertEvent::Kind::kResolved;
  resolved.value = 1.25;
  resolved.resolved_at_us = 40'000'000;
  resolved.message = "resolved";
  notifier.Notify(resolved);
  ASSERT_TRUE(notifier.Flush(kFlushBoundUs));
  EXPECT_EQ(notifier.delivered(), 2);
  EXPECT_EQ(notifier.failed(), 0);

  const auto bodies = receiver.bodies();
  ASSERT_THAT(bodies, SizeIs(2));
  EXPECT_THAT(receiver.content_types(), ElementsAre("application/json", "application/json"));
  nlohmann::json first = nlohmann::json::parse(bodies[0]);
  ASSERT_TRUE(first.contains("timestamp"));
  EXPECT_THAT(first["timestamp"].get<std::string>(), HasSubstr("T"));
  first.erase("timestamp");
  EXPECT_EQ(first, nlohmann::json::parse(R"({
      "name": "slow_batches", "state": "firing", "metric": "batch_latency_p95_s",
      "node": "archive", "op": "above", "value": 2.5, "threshold": 2.0,
      "fired_at_us": 31000000, "resolved_at_us": null,
      "message": "alert 'slow_batches' firing: batch_latency_p95_s of node 'archive' is 2.5, above 2 for 30s",
      "pipeline": "archive_orders", "run_id": "r-42"})"));
  const nlohmann::json second = nlohmann::json::parse(bodies[1]);
  EXPECT_EQ(second["state"], "resolved");
  EXPECT_EQ(second["value"], 1.25);
  EXPECT_EQ(second["resolved_at_us"], 40'000'000);
}

TEST(WebhookNotifierTest, EventsWithoutAWebhookAreNotSent) {
  WebhookNotifier notifier;
  AlertEvent e = FiredEvent("");
  e.webhook.reset();
  notifier.Notify(e);
  EXPECT_TRUE(notifier.Flush(0));
  EXPECT_EQ(notifier.delivered() + notifier.failed(), 0);
}

TEST(WebhookNotifierTest, AnErrorStatusIsCountedAsAFailure) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  WebhookNotifier notifier;
  notifier.Notify(FiredEvent(receiver.Url("/fail")));
  ASSERT_TRUE(notifier.Flush(kFlushBoundUs));
  EXPECT_EQ(notifier.failed(), 1);
  EXPECT_EQ(notifier.delivered(), 0);
}

TEST(WebhookNotifierTest, AClosedPortFailsWithoutBlockingTheCaller) {
  WebhookNotifier notifier;
  const ::sluice::testing::RefusingPort refusing;
  const int port = refusing.port();
  ASSERT_GT(port, 0);
  const std::string url = fmt::format("http://127.0.0.1:{}/hook", port);
  notifier.Notify(FiredEvent(url));  // returns at once: the post happens on another thread
  notifier.Notify(FiredEvent(url));
  ASSERT_TRUE(notifier.Flush(kFlushBoundUs));
  EXPECT_EQ(notifier.failed(), 2);
  EXPECT_EQ(notifier.delivered(), 0);
}

TEST(WebhookNotifierTest, AReceiverThatNeverAnswersTimesOut) {
  SilentListener silent;
  ASSERT_TRUE(silent.ok());
  WebhookNotifier notifier(
      WebhookOptions{.connect_timeout_us = 200'000, .total_timeout_us = 300'000});
  notifier.Notify(FiredEvent(silent.Url()));
  ASSERT_TRUE(notifier.Flush(kFlushBoundUs));
  EXPECT_EQ(notifier.failed(), 1);
}

TEST(WebhookNotifierTest, DestroyingAbortsTheRequestInFlightAndDropsTheQueue) {
  SilentListener silent;
  ASSERT_TRUE(silent.ok());
  // Timeouts far beyond the test's patience: only the abort can end the request.
  auto notifier = std::make_unique<WebhookNotifier>(WebhookOptions{
      .connect_timeout_us = 600'000'000, .total_timeout_us = 600'000'000, .max_queue = 1});
  for (int i = 0; i < 3; ++i) notifier->Notify(FiredEvent(silent.Url()));
  EXPECT_GE(notifier->dropped(), 1);
  EXPECT_FALSE(notifier->Flush(0));
  notifier.reset();
}

// Webhook URLs are secrets: what a failure logs shows the scheme and host, never the user-info,
// the path or the query.
TEST(WebhookNotifierTest, FailuresLogNoPathQueryOrPassword) {
  Receiver receiver;
  ASSERT_TRUE(receiver.running());
  const ::sluice::testing::RefusingPort refusing;
  const int closed = refusing.port();
  ASSERT_GT(closed, 0);
  const std::string answered_500 =
      receiver.Url("/fail?token=Q1secret").insert(7, "hookuser:pw-S3cret@");
  const std::string refused = fmt::format(
      "http://hookuser:pw-S3cret@127.0.0.1:{}/services/T0/B1/XYZsecret?token=abc", closed);
  ::testing::internal::CaptureStderr();
  {
    WebhookNotifier notifier;
    notifier.Notify(FiredEvent(answered_500));
    notifier.Notify(FiredEvent(refused));
    ASSERT_TRUE(notifier.Flush(kFlushBoundUs));
    EXPECT_EQ(notifier.failed(), 2);
  }
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr(fmt::format("HTTP 500 from {}", http::RedactUrl(answered_500))));
  EXPECT_THAT(log, HasSubstr(fmt::format("http://127.0.0.1:{}/…", closed)));
  for (const char* secret :
       {"hookuser", "pw-S3cret", "/fail", "Q1secret", "services", "XYZsecret", "token", "abc"}) {
    EXPECT_THAT(log, Not(HasSubstr(secret))) << log;
  }
}

}  // namespace
}  // namespace sluice::alerts
