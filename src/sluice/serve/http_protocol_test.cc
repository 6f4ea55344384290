// The server's HTTP/1.1 as a client sees it on the wire: pipelining, requests in pieces,
// HTTP/1.0, keep-alive and close, bodies, and the answers to requests it refuses.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/serve/http_server.h"
#include "sluice/serve/raw_connection_testing.h"
#include "sluice/testing/matchers.h"

namespace sluice::serve {
namespace {

using ::sluice::serve::testing::RawConnection;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Route Text(std::string path, std::string body) {
  auto shared = MakeBody(std::move(body));
  return {std::move(path), [shared](const Request&) {
            Response r;
            r.body = shared;
            return r;
          }};
}

// The exact bytes of a 200 for the body "a\n" of Text("/a", "a\n"), with `connection` as the
// value of a Connection header ("" for none).
std::string OkA(std::string_view connection = "") {
  std::string out =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nVary: Accept-Encoding\r\n"
      "Content-Length: 2\r\n";
  if (!connection.empty()) out += "Connection: " + std::string(connection) + "\r\n";
  return out + "\r\na\n";
}

class HttpProtocolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HttpServerOptions o;
    o.listen = "127.0.0.1:0";
    o.keep_alive_max_requests = 1000;
    std::vector<Route> routes = {Text("/a", "a\n"), Text("/b", "bb\n")};
    routes.push_back({"/headers", [](const Request&) {
                        Response r;
                        r.body = MakeBody("h\n");
                        r.headers = {{"X-Ok", "1"},
                                     {"content-length", "999"},
                                     {"X-Bad", "a\r\nInjected: 1"},
                                     {"Bad Name", "x"}};
                        return r;
                      }});
    ASSERT_OK_AND_ASSIGN(server_, HttpServer::Start(o, std::move(routes)));
  }

  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpProtocolTest, PipelinedRequestsAreAnsweredInOrder) {
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(
      c.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /a?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  bool closed = false;
  EXPECT_EQ(c.ReadToEnd(&closed),
            OkA() +
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                "Vary: Accept-Encoding\r\nContent-Length: 3\r\n\r\n" +
                OkA("close"));
  EXPECT_TRUE(closed);
  EXPECT_EQ(server_->stats().requests, 3);
}

TEST_F(HttpProtocolTest, ARequestSplitAtAnyByteIsAnswered) {
  const std::string request = "GET /a HTTP/1.1\r\nHost: localhost\r\n\r\n";
  RawConnection c(server_->port());
  ASSERT_TRUE(c.connected());
  c.NoDelay();
  for (size_t split = 1; split < request.size(); ++split) {
    ASSERT_TRUE(c.Send(std::string_view(request).substr(0, split)));
    ASSERT_TRUE(c.Send(std::string_view(request).substr(split)));
    ASSERT_EQ(c.ReadUntil("\r\n\r\na\n"), OkA()) << "split at " << split;
  }
}

TEST_F(HttpProtocolTest, Http10ClosesUnlessAskedToKeepAlive) {
  {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.Send("GET /a HTTP/1.0\r\n\r\n"));
    bool closed = false;
    EXPECT_EQ(c.ReadToEnd(&closed), OkA("close"));
    EXPECT_TRUE(closed);
  }
  RawConnection c(server_->port());
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(c.Send("GET /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"));
    EXPECT_EQ(c.ReadUntil("\r\n\r\na\n"), OkA("keep-alive")) << i;
  }
}

TEST_F(HttpProtocolTest, ConnectionCloseAndTheLastRequestCloseTheConnection) {
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send(
      "GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  bool closed = false;
  EXPECT_EQ(c.ReadToEnd(&closed), OkA("close"));  // the pipelined second one is not answered
  EXPECT_TRUE(closed);

  HttpServerOptions o;
  o.keep_alive_max_requests = 2;
  ASSERT_OK_AND_ASSIGN(auto two, HttpServer::Start(o, {Text("/a", "a\n")}));
  RawConnection d(two->port());
  ASSERT_TRUE(
      d.Send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"
             "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(d.ReadToEnd(&closed), OkA() + OkA("close"));
  EXPECT_TRUE(closed);
}

TEST_F(HttpProtocolTest, ABodyWithinTheLimitIsReadAndTheConnectionKept) {
  RawConnection c(server_->port());
  ASSERT_TRUE(
      c.Send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /a "
             "HTTP/1.1\r\nHost: x\r\n\r\n"));
  const std::string replies = c.ReadUntil("\r\n\r\na\n");
  EXPECT_THAT(replies, StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
  EXPECT_THAT(replies, HasSubstr("Allow: GET, HEAD\r\n"));
  EXPECT_THAT(replies, HasSubstr("\r\n\r\n405 method not allowed: GET or HEAD\n" + OkA()));
  EXPECT_EQ(replies.find("Connection: close"), std::string::npos) << replies;

  // Expect: 100-continue is answered before the body is read.
  ASSERT_TRUE(
      c.Send("POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n"));
  EXPECT_EQ(c.ReadUntil("\r\n\r\n"), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_TRUE(c.Send("abcGET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_THAT(c.ReadUntil("\r\n\r\na\n"), StartsWith("HTTP/1.1 405 Method Not Allowed\r\n"));
}

TEST_F(HttpProtocolTest, RefusedRequestsAreAnsweredAndClosed) {
  struct Case {
    std::string request;
    std::string reply;
  };
  const std::vector<Case> cases = {
      {"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
       "HTTP/1.1 411 Length Required\r\n"},
      {"GET /a\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"GET /a HTTP/2.0\r\n\r\n", "HTTP/1.1 505 HTTP Version Not Supported\r\n"},
      {"GET /a HTTP/1.1\r\nContent-Length: x\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"GET /a HTTP/1.1\r\n folded: x\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},
      {"GET /a HTTP/1.1\r\nAccept: */*\r\n\r\n", "HTTP/1.1 400 Bad Request\r\n"},  // no Host
  };
  for (const Case& test : cases) {
    RawConnection c(server_->port());
    ASSERT_TRUE(c.Send(test.request));
    bool closed = false;
    const std::string reply = c.ReadToEnd(&closed);
    EXPECT_THAT(reply, StartsWith(test.reply)) << test.request;
    EXPECT_THAT(reply, HasSubstr("Connection: close\r\n")) << test.request;
    EXPECT_TRUE(closed) << test.request;
  }
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  bool closed = false;
  EXPECT_THAT(c.ReadToEnd(&closed),
              HasSubstr("\r\n\r\n411 length required: a request body must come with a "
                        "Content-Length (chunked bodies are not read)\n"));
  EXPECT_EQ(server_->stats().requests, 0);
}

TEST_F(HttpProtocolTest, HandlerHeadersCannotBreakTheFraming) {
  RawConnection c(server_->port());
  ASSERT_TRUE(c.Send("GET /headers HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_EQ(c.ReadUntil("\r\n\r\nh\n"),
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Vary: Accept-Encoding\r\nX-Ok: 1\r\nContent-Length: 2\r\n\r\nh\n");
}

}  // namespace
}  // namespace sluice::serve
