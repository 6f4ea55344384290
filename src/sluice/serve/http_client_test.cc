#include "sluice/serve/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "sluice/serve/http_server.h"
#include "sluice/testing/matchers.h"

namespace sluice::serve {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

/// A server of one connection that answers any request with `reply` and closes; it keeps the
/// request it read.
class CannedServer {
 public:
  explicit CannedServer(std::string reply) : reply_(std::move(reply)) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(listen_fd_, 1);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      const int fd = ::accept(listen_fd_, nullptr, nullptr);
      timeval tv{10, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
      char buf[4096];
      while (request_.find("\r\n\r\n") == std::string::npos) {
        const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) break;
        request_.append(buf, static_cast<size_t>(n));
      }
      ::send(fd, reply_.data(), reply_.size(), MSG_NOSIGNAL);
      ::close(fd);
    });
  }
  ~CannedServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  CannedServer(const CannedServer&) = delete;
  CannedServer& operator=(const CannedServer&) = delete;

  int port() const { return port_; }
  /// Return the request read (call after the reply arrived).
  const std::string& request() {
    thread_.join();
    return request_;
  }

 private:
  std::string reply_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::string request_;
  std::thread thread_;
};

TEST(HttpGetTest, SendsAGetAndReadsAChunkedReply) {
  CannedServer server(
      "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
      "Transfer-Encoding: "
      "chunked\r\n\r\n4;ext=1\r\n{\"a\"\r\nA\r\n:123456789\r\n1\r\n}\r\n0\r\n\r\n");
  ASSERT_OK_AND_ASSIGN(HttpReply reply, HttpGet("127.0.0.1", server.port(), "/api/v1/run?x=1"));
  EXPECT_EQ(reply.status, 202);
  EXPECT_EQ(reply.content_type, "application/json");
  EXPECT_EQ(reply.body, "{\"a\":123456789}");
  EXPECT_EQ(server.request(),
            "GET /api/v1/run?x=1 HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(server.port()) +
                "\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n");
}

TEST(HttpGetTest, AReplyCutShortIsAnError) {
  CannedServer cut("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
  EXPECT_THAT(HttpGet("127.0.0.1", cut.port(), "/x"),
              StatusIs(StatusCode::kIOError, HasSubstr("closed after 3 of 10 body bytes")));
  CannedServer garbage("SSH-2.0-OpenSSH_9.2\r\n\r\n");
  EXPECT_THAT(HttpGet("127.0.0.1", garbage.port(), "/x"),
              StatusIs(StatusCode::kIOError, HasSubstr("not an HTTP/1.x reply: 'SSH-2.0")));
  CannedServer silent("");
  EXPECT_THAT(HttpGet("127.0.0.1", silent.port(), "/x"),
              StatusIs(StatusCode::kUnavailable, HasSubstr("closed before a complete reply")));
}

TEST(HttpGetTest, DecompressesAGzipReplyFromTheServer) {
  std::string text;
  for (int i = 0; i < 500; ++i) text += "line " + std::to_string(i) + "\n";
  auto body = MakeBody(text);
  ASSERT_OK_AND_ASSIGN(auto server,
                       HttpServer::Start(HttpServerOptions{}, {{"/t", [body](const Request&) {
                                                                  Response r;
                                                                  r.body = body;
                                                                  return r;
                                                                }}}));
  ASSERT_OK_AND_ASSIGN(HttpReply reply, HttpGet("127.0.0.1", server->port(), "/t"));
  EXPECT_EQ(reply.status, 200);
  EXPECT_EQ(reply.content_type, "text/plain; charset=utf-8");
  EXPECT_EQ(reply.body, text);
  EXPECT_EQ(server->stats().gzip_responses, 1);
}

}  // namespace
}  // namespace sluice::serve
