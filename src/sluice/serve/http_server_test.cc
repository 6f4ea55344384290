#include "sluice/serve/http_server.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include "sluice/io/compression.h"
#include "sluice/serve/http_client.h"
#include "sluice/serve/raw_connection_testing.h"
#include "sluice/testing/matchers.h"

namespace sluice::serve {
namespace {

using ::sluice::serve::testing::RawConnection;
using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Route Text(std::string path, std::string body, std::string type = "text/plain; charset=utf-8") {
  auto shared = MakeBody(std::move(body));
  return {std::move(path), [shared, type](const Request&) {
            Response r;
            r.content_type = type;
            r.body = shared;
            return r;
          }};
}

HttpServerOptions Local() {
  HttpServerOptions o;
  o.listen = "127.0.0.1:0";
  return o;
}

TEST(HttpServerTest, ServesRoutesAndNotFound) {
  ASSERT_OK_AND_ASSIGN(
      auto server,
      HttpServer::Start(Local(),
                        {Text("/metrics", "x_total 42\n", "text/plain; version=0.0.4"),
                         Text("/api/v1/run", R"({"status":"running"})", "application/json")}));
  ASSERT_GT(server->port(), 0);
  EXPECT_EQ(server->host(), "127.0.0.1");
  httplib::Client client("127.0.0.1", server->port());
  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics) << httplib::to_string(metrics.error());
  EXPECT_EQ(metrics->status, 200);
  EXPECT_EQ(metrics->get_header_value("Content-Type"), "text/plain; version=0.0.4");
  EXPECT_EQ(metrics->body, "x_total 42\n");
  auto run = client.Get("/api/v1/run?verbose=1");
  ASSERT_TRUE(run);
  EXPECT_EQ(run->get_header_value("Content-Type"), "application/json");
  EXPECT_EQ(run->body, R"({"status":"running"})");
  auto missing = client.Get("/nope");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto head = client.Head("/metrics");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->get_header_value("Content-Length"), "11");
  EXPECT_EQ(head->body, "");
  auto post = client.Post("/metrics", "", "text/plain");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET, HEAD");
  EXPECT_EQ(server->stats().requests, 3);  // two GETs and the HEAD reached a handler
}

TEST(HttpServerTest, HandlersSeeThePathAndQueryAndAThrowingOneIs500) {
  std::vector<Route> routes;
  routes.push_back({"/echo", [](const Request& r) {
                      Response out;
                      out.body = MakeBody(std::string(r.method) + " " + std::string(r.path) + " " +
                                          std::string(r.query));
                      out.headers.push_back({"Cache-Control", "no-store"});
                      return out;
                    }});
  routes.push_back({"/boom", [](const Request&) -> Response {
                      throw std::runtime_error("run state unavailable");
                    }});
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(Local(), std::move(routes)));
  httplib::Client client("127.0.0.1", server->port());
  auto echo = client.Get("/echo?a=1&b=2");
  ASSERT_TRUE(echo);
  EXPECT_EQ(echo->body, "GET /echo a=1&b=2");
  EXPECT_EQ(echo->get_header_value("Cache-Control"), "no-store");
  auto boom = client.Get("/boom");
  ASSERT_TRUE(boom);
  EXPECT_EQ(boom->status, 500);
  EXPECT_THAT(boom->body, HasSubstr("run state unavailable"));
}

TEST(HttpServerTest, GzipWhenTheClientAcceptsIt) {
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "host_cpu_seconds_total{mode=\"user\"} " + std::to_string(i) + "\n";
  ASSERT_OK_AND_ASSIGN(
      auto server, HttpServer::Start(Local(), {Text("/metrics", text), Text("/small", "ok\n"),
                                               Text("/bin", text, "application/octet-stream")}));
  httplib::Client client("127.0.0.1", server->port());
  client.set_decompress(false);  // see the bytes as sent

  auto gz = client.Get("/metrics", {{"Accept-Encoding", "br, gzip;q=0.8, deflate"}});
  ASSERT_TRUE(gz);
  EXPECT_EQ(gz->get_header_value("Content-Encoding"), "gzip");
  EXPECT_EQ(gz->get_header_value("Vary"), "Accept-Encoding");
  EXPECT_LT(gz->body.size(), text.size() / 4);
  ASSERT_OK_AND_ASSIGN(std::string round_trip, io::Decompress(io::Codec::kGzip, gz->body));
  EXPECT_EQ(round_trip, text);
  EXPECT_EQ(gz->get_header_value("Content-Length"), std::to_string(gz->body.size()));

  // The second request gets the same (cached) bytes.
  auto again = client.Get("/metrics", {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, gz->body);

  for (const char* refused : {"", "identity", "gzip;q=0", "gzip; q=0.000, br", "deflate"}) {
    auto plain = client.Get("/metrics", {{"Accept-Encoding", refused}});
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->get_header_value("Content-Encoding"), "") << refused;
    EXPECT_EQ(plain->body, text) << refused;
  }
  auto small = client.Get("/small", {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(small);
  EXPECT_EQ(small->get_header_value("Content-Encoding"), "");
  EXPECT_EQ(small->body, "ok\n");
  auto binary = client.Get("/bin", {{"Accept-Encoding", "gzip"}});
  ASSERT_TRUE(binary);
  EXPECT_EQ(binary->get_header_value("Content-Encoding"), "");
  EXPECT_EQ(server->stats().gzip_responses, 2);
}

TEST(HttpServerTest, AcceptsGzipParsesTheHeader) {
  EXPECT_TRUE(AcceptsGzip("gzip"));
  EXPECT_TRUE(AcceptsGzip("gzip, deflate, br"));
  EXPECT_TRUE(AcceptsGzip("br;q=1.0, GZIP;q=0.5"));
  EXPECT_TRUE(AcceptsGzip("*"));
  EXPECT_TRUE(AcceptsGzip("x-gzip"));
  EXPECT_FALSE(AcceptsGzip(""));
  EXPECT_FALSE(AcceptsGzip("gzip;q=0"));
  EXPECT_FALSE(AcceptsGzip("gzip ; q=0.0"));
  EXPECT_FALSE(AcceptsGzip("gzipped, br"));
  EXPECT_TRUE(IsCompressible("text/html; charset=utf-8"));
  EXPECT_TRUE(IsCompressible("application/json"));
  EXPECT_FALSE(IsCompressible("image/png"));
}

TEST(HttpServerTest, ABodyOverTheLimitIs413AndTheAnswerArrives) {
  HttpServerOptions o = Local();
  o.max_request_bytes = 1024;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {Text("/metrics", "x 1\n")}));
  httplib::Client client("127.0.0.1", server->port());
  auto big = client.Post("/metrics", std::string(1 << 20, 'x'), "text/plain");
  ASSERT_TRUE(big) << httplib::to_string(big.error());
  EXPECT_EQ(big->status, 413);
  EXPECT_THAT(big->body, HasSubstr("at most 1024 bytes"));
  auto get_with_body = client.Get("/metrics", {{"Content-Length", "5000"}});
  ASSERT_TRUE(get_with_body);
  EXPECT_EQ(get_with_body->status, 413);
  // Within the limit, a body is skipped (the connection closed after the answer).
  auto small = client.Post("/metrics", std::string(100, 'x'), "text/plain");
  ASSERT_TRUE(small);
  EXPECT_EQ(small->status, 405);
  auto after = client.Get("/metrics");
  ASSERT_TRUE(after);
  EXPECT_EQ(after->status, 200);
  EXPECT_EQ(server->stats().too_large, 2);

  // Headers beyond 64 KiB: refused with 431, not read forever.
  RawConnection raw(server->port());
  ASSERT_TRUE(raw.connected());
  std::string request = "GET /metrics HTTP/1.1\r\nHost: x\r\n";
  for (int i = 0; i < 100; ++i)
    request += "X-Filler-" + std::to_string(i) + ": " + std::string(1000, 'y') + "\r\n";
  raw.Send(request);
  bool closed = false;
  const std::string reply = raw.ReadToEnd(&closed);
  EXPECT_TRUE(closed);
  EXPECT_THAT(reply, StartsWith("HTTP/1.1 431 Request Header Fields Too Large\r\n"));
  EXPECT_THAT(reply, HasSubstr("431 Request Header Fields Too Large: request line and headers "
                               "exceed 64 KiB\n"));
}

// A handler that holds the worker until released, and says when it started.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  int entered = 0;
  bool open = false;
  Route Blocking(std::string path) {
    return {std::move(path), [this](const Request&) {
              std::unique_lock<std::mutex> lock(mu);
              ++entered;
              cv.notify_all();
              cv.wait(lock, [this] { return open; });
              Response r;
              r.body = MakeBody("released\n");
              return r;
            }};
  }
  void WaitEntered(int n) {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return entered >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

// Wait (bounded) until `done` holds; the test fails on its own if it never does.
template <typename F>
bool Eventually(F done) {
  for (int i = 0; i < 10000 && !done(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return done();
}

TEST(HttpServerTest, OverTheConcurrencyBoundIs503NotAGrowingQueue) {
  HttpServerOptions o = Local();
  o.workers = 1;
  o.max_queued = 1;
  Gate gate;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {gate.Blocking("/slow")}));
  const int port = server->port();
  auto get = [port] { return HttpGet("127.0.0.1", port, "/slow", 20'000'000); };

  auto first = std::async(std::launch::async, get);  // takes the only worker
  gate.WaitEntered(1);
  auto second = std::async(std::launch::async, get);  // waits in the queue
  ASSERT_TRUE(Eventually([&] { return server->stats().queued == 1; }));
  // The bound is reached: the next connection is refused at once.
  ASSERT_OK_AND_ASSIGN(HttpReply third, get());
  EXPECT_EQ(third.status, 503);
  EXPECT_THAT(third.body, HasSubstr("busy"));
  EXPECT_EQ(server->stats().rejected_busy, 1);
  // While the overflow thread waits for a silent client's request, further connections are
  // closed unanswered.
  ASSERT_TRUE(Eventually([&] { return !server->stats().refusing; }));
  RawConnection silent(port);
  ASSERT_TRUE(silent.connected());
  ASSERT_TRUE(Eventually([&] { return server->stats().refusing; }));
  EXPECT_THAT(get(), StatusIs(StatusCode::kUnavailable, HasSubstr("/slow")));
  EXPECT_EQ(server->stats().dropped, 1);
  ASSERT_TRUE(silent.Send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n"));
  bool closed = false;
  EXPECT_THAT(silent.ReadToEnd(&closed), StartsWith("HTTP/1.1 503 Service Unavailable\r\n"));
  EXPECT_TRUE(closed);
  EXPECT_EQ(server->stats().rejected_busy, 2);

  gate.Open();
  ASSERT_OK_AND_ASSIGN(HttpReply r1, first.get());
  ASSERT_OK_AND_ASSIGN(HttpReply r2, second.get());
  EXPECT_EQ(r1.status, 200);
  EXPECT_EQ(r2.status, 200);
  EXPECT_EQ(r2.body, "released\n");
  EXPECT_EQ(server->stats().queued, 0);
}

TEST(HttpServerTest, IdleKeptAliveConnectionsHoldNoWorker) {
  HttpServerOptions o = Local();
  o.workers = 1;
  o.keep_alive_timeout_us = 60'000'000;  // longer than any test
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {Text("/x", "x\n")}));
  RawConnection a(server->port());
  RawConnection b(server->port());
  ASSERT_TRUE(a.connected());
  ASSERT_TRUE(b.connected());
  // Two kept-alive clients take turns on the one worker, each on its own connection, and
  // neither is told to close: between requests a connection waits without the worker.
  for (int round = 0; round < 3; ++round) {
    for (RawConnection* c : {&a, &b}) {
      ASSERT_TRUE(c->Send("GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"));
      const std::string reply = c->ReadUntil("\r\n\r\nx\n");
      EXPECT_TRUE(reply.starts_with("HTTP/1.1 200")) << "round " << round << ": " << reply;
      EXPECT_TRUE(reply.ends_with("\r\n\r\nx\n")) << "round " << round << ": " << reply;
      EXPECT_EQ(reply.find("Connection: close"), std::string::npos) << reply;
    }
  }
  // A third client, with both connections idle.
  ASSERT_OK_AND_ASSIGN(HttpReply other, HttpGet("127.0.0.1", server->port(), "/x", 20'000'000));
  EXPECT_EQ(other.status, 200);
}

TEST(HttpServerTest, AnIdleConnectionIsClosedAfterTheKeepAliveTimeout) {
  HttpServerOptions o = Local();
  o.keep_alive_timeout_us = 100'000;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {Text("/x", "x\n")}));
  RawConnection c(server->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("GET /x HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  EXPECT_TRUE(c.ReadUntil("\r\n\r\nx\n").starts_with("HTTP/1.1 200"));
  bool closed = false;
  EXPECT_EQ(c.ReadToEnd(&closed), "");
  EXPECT_TRUE(closed);  // by the server, well before the 10 s read bound
}

TEST(HttpServerTest, ASlowRequestIsCutAtTheReadTimeout) {
  HttpServerOptions o = Local();
  o.workers = 1;
  o.read_timeout_us = 200'000;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {Text("/x", "x\n")}));
  {
    // Connects and says nothing.
    RawConnection silent(server->port());
    ASSERT_TRUE(silent.connected());
    bool closed = false;
    EXPECT_EQ(silent.ReadToEnd(&closed), "");
    EXPECT_TRUE(closed);
  }
  {
    // Trickles a request a byte at a time, each well within the timeout: the deadline is for the
    // whole request, so the connection is closed before the request is complete.
    RawConnection slow(server->port());
    ASSERT_TRUE(slow.connected());
    const std::string request =
        "GET /x HTTP/1.1\r\nHost: localhost\r\nX-Padding: " + std::string(200, 'p') + "\r\n\r\n";
    bool cut = false;
    for (char c : request) {
      if (!slow.Send(std::string_view(&c, 1))) {
        cut = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    bool closed = false;
    const std::string reply = slow.ReadToEnd(&closed);
    EXPECT_TRUE(closed);
    EXPECT_TRUE(cut || !reply.starts_with("HTTP/1.1 200")) << reply;
  }
  // The worker is free again.
  ASSERT_OK_AND_ASSIGN(HttpReply ok, HttpGet("127.0.0.1", server->port(), "/x"));
  EXPECT_EQ(ok.status, 200);
}

TEST(HttpServerTest, AClientThatDoesNotReadIsCutAtTheWriteTimeout) {
  HttpServerOptions o = Local();
  o.workers = 1;
  o.write_timeout_us = 200'000;
  o.gzip = false;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {Text("/big", std::string(64 << 20, 'b')),
                                                          Text("/x", "x\n")}));
  RawConnection stuck(server->port());
  ASSERT_TRUE(stuck.connected());
  ASSERT_TRUE(stuck.Send("GET /big HTTP/1.1\r\nHost: localhost\r\n\r\n"));
  // `stuck` never reads: the only worker blocks writing until the write timeout frees it.
  ASSERT_OK_AND_ASSIGN(HttpReply ok, HttpGet("127.0.0.1", server->port(), "/x", 20'000'000));
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.body, "x\n");
}

TEST(HttpServerTest, StopIsIdempotentClosesThePortAndIdleConnections) {
  HttpServerOptions o = Local();
  o.keep_alive_timeout_us = 60'000'000;
  ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(o, {Text("/x", "x\n")}));
  const int port = server->port();
  httplib::Client idle("127.0.0.1", port);
  idle.set_keep_alive(true);
  ASSERT_TRUE(idle.Get("/x"));
  server->Stop();  // closes the idle connection rather than waiting out its keep-alive
  server->Stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(2);
  EXPECT_FALSE(client.Get("/x"));
  HttpServerOptions again = Local();
  again.listen = "127.0.0.1:" + std::to_string(port);
  ASSERT_OK_AND_ASSIGN(auto second, HttpServer::Start(again, {Text("/x", "x\n")}));
  EXPECT_EQ(second->port(), port);
}

TEST(HttpServerTest, StopRightAfterStartDoesNotHang) {
  for (int i = 0; i < 20; ++i) {
    ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(Local(), {}));
  }
}

TEST(HttpServerTest, APortInUseIsAClearError) {
  ASSERT_OK_AND_ASSIGN(auto first, HttpServer::Start(Local(), {}));
  HttpServerOptions o = Local();
  o.listen = "127.0.0.1:" + std::to_string(first->port());
  EXPECT_THAT(HttpServer::Start(o, {}),
              StatusIs(StatusCode::kIOError,
                       HasSubstr("cannot listen on '" + o.listen + "': Address already in use")));
}

TEST(HttpServerTest, RejectsBadOptions) {
  for (const std::string listen :
       {"", "localhost", "127.0.0.1:", ":9464", "127.0.0.1:abc", "127.0.0.1:70000", "127.0.0.1:-1",
        "127.0.0.1:+80", "127.0.0.1:9464x", "127.0.0.1:123456"}) {
    HttpServerOptions o;
    o.listen = listen;
    EXPECT_THAT(
        HttpServer::Start(o, {}),
        StatusIs(StatusCode::kInvalidArgument,
                 ::testing::AllOf(HasSubstr("'" + listen + "'"), HasSubstr("expected host:port"))))
        << listen;
  }
  HttpServerOptions v6;
  v6.listen = "::1:9464";
  EXPECT_THAT(HttpServer::Start(v6, {}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("[::1]:9464")));
  HttpServerOptions workers = Local();
  workers.workers = 0;
  EXPECT_THAT(HttpServer::Start(workers, {}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("workers")));
  EXPECT_THAT(HttpServer::Start(Local(), {Text("/x", ""), Text("/x", "")}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'/x' is routed twice")));
}

TEST(ParseListenAddressTest, SplitsHostAndPort) {
  ASSERT_OK_AND_ASSIGN(auto v4, ParseListenAddress("127.0.0.1:9464"));
  EXPECT_EQ(v4, std::make_pair(std::string("127.0.0.1"), 9464));
  ASSERT_OK_AND_ASSIGN(auto v6, ParseListenAddress("[::1]:0"));
  EXPECT_EQ(v6, std::make_pair(std::string("::1"), 0));
  ASSERT_OK_AND_ASSIGN(auto name, ParseListenAddress("localhost:65535"));
  EXPECT_EQ(name, std::make_pair(std::string("localhost"), 65535));
}

TEST(HttpGetTest, NothingListeningIsUnavailable) {
  int port = 0;
  {
    ASSERT_OK_AND_ASSIGN(auto server, HttpServer::Start(Local(), {}));
    port = server->port();
  }
  EXPECT_THAT(HttpGet("127.0.0.1", port, "/x", 2'000'000),
              StatusIs(StatusCode::kUnavailable, HasSubstr("127.0.0.1:" + std::to_string(port))));
}

}  // namespace
}  // namespace sluice::serve
