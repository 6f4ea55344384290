#include "sluice/serve/http_wire.h"

#include <cstdint>
#include <limits>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace sluice::serve {
namespace {

using ::testing::HasSubstr;

// Parse a whole head; the test fails when it is not one.
RequestHead Parse(std::string_view bytes) {
  RequestHead head;
  const HeadError error = ParseRequestHead(bytes, &head);
  EXPECT_EQ(error.status, 0) << error.reason << " in: " << bytes;
  return head;
}

HeadError ErrorOf(std::string_view bytes) {
  RequestHead head;
  return ParseRequestHead(bytes, &head);
}

TEST(HttpWireTest, ParsesTheRequestLineHeadersAndQuery) {
  const std::string bytes =
      "GET /api/v1/run?verbose=1&x=%20 HTTP/1.1\r\nHost: localhost:9108\r\n"
      "Accept-Encoding:  gzip, br \r\nX-Empty:\r\n\r\n";
  const RequestHead head = Parse(bytes);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/api/v1/run?verbose=1&x=%20");
  EXPECT_EQ(head.path, "/api/v1/run");
  EXPECT_EQ(head.query, "verbose=1&x=%20");
  EXPECT_EQ(head.minor_version, 1);
  ASSERT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers[0].name, "Host");
  EXPECT_EQ(head.headers[0].value, "localhost:9108");
  EXPECT_EQ(head.Header("accept-ENCODING"), "gzip, br");
  EXPECT_EQ(head.Header("X-Empty"), "");
  EXPECT_EQ(head.Header("Missing"), "");
  EXPECT_EQ(head.content_length, 0);
  EXPECT_FALSE(head.transfer_encoding);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(head.size, bytes.size());
}

TEST(HttpWireTest, AcceptsBareLineFeedsLeadingEmptyLinesAndAbsoluteTargets) {
  const RequestHead lf = Parse("\r\n\nHEAD /metrics HTTP/1.0\nHost: x\n\n");
  EXPECT_EQ(lf.method, "HEAD");
  EXPECT_EQ(lf.path, "/metrics");
  EXPECT_EQ(lf.minor_version, 0);
  EXPECT_EQ(lf.Header("Host"), "x");
  const RequestHead absolute =
      Parse("GET http://host:9108/metrics?a=1 HTTP/1.1\r\nHost: host:9108\r\n\r\n");
  EXPECT_EQ(absolute.path, "/metrics");
  EXPECT_EQ(absolute.query, "a=1");
  const RequestHead bare = Parse("GET HTTPS://host?b=2 HTTP/1.1\r\nHost: host\r\n\r\n");
  EXPECT_EQ(bare.path, "/");
  EXPECT_EQ(bare.query, "b=2");
  const RequestHead star = Parse("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(star.path, "*");
}

TEST(HttpWireTest, KeepAliveFollowsTheVersionAndConnection) {
  EXPECT_TRUE(Parse("GET / HTTP/1.1\r\nHost: x\r\n\r\n").keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, CLOSE\r\n\r\n").keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\n\r\n").keep_alive);
  EXPECT_TRUE(Parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
  EXPECT_FALSE(Parse("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n").keep_alive);
}

TEST(HttpWireTest, ReadsBodyFraming) {
  const RequestHead post = Parse(
      "POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 42\r\ncontent-length: 42\r\n"
      "Expect: 100-continue\r\n\r\n");
  EXPECT_EQ(post.content_length, 42);
  EXPECT_TRUE(post.expect_continue);
  EXPECT_EQ(Parse("POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")
                .content_length,
            std::numeric_limits<int64_t>::max());
  const RequestHead chunked =
      Parse("POST /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  EXPECT_TRUE(chunked.transfer_encoding);
  EXPECT_EQ(chunked.content_length, 0);
}

TEST(HttpWireTest, RefusesMalformedHeadsWithTheirStatus) {
  struct Case {
    std::string bytes;
    int status;
    std::string reason;
  };
  const std::vector<Case> cases = {
      {"GET /\r\n\r\n", 400, "malformed request line"},
      {"GET\r\n\r\n", 400, "malformed request line"},
      {"GET  / HTTP/1.1\r\n\r\n", 400, "malformed HTTP version"},
      {"GET / HTTP/1.1 \r\n\r\n", 400, "malformed HTTP version"},
      {"GET / http/1.1\r\n\r\n", 400, "malformed HTTP version"},
      {"GET / HTTP/1.10\r\n\r\n", 400, "malformed HTTP version"},
      {"G(T / HTTP/1.1\r\n\r\n", 400, "malformed request method"},
      {" GET / HTTP/1.1\r\n\r\n", 400, "malformed request method"},
      {"GET / HTTP/2.0\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"},
      {"GET / HTTP/1.2\r\n\r\n", 505, "HTTP/1.0 and HTTP/1.1"},
      {"GET metrics HTTP/1.1\r\n\r\n", 400, "malformed request target"},
      {"GET /a\x01 HTTP/1.1\r\n\r\n", 400, "malformed request target"},
      {"GET /\xff HTTP/1.1\r\n\r\n", 400, "malformed request target"},
      {"GET http:///x HTTP/1.1\r\n\r\n", 400, "malformed request target"},
      {"GET /\r HTTP/1.1\r\n\r\n", 400, "malformed request target"},
      {"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "obsolete line folding"},
      {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", 400, "malformed header field"},
      {"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400, "malformed header field"},
      {"GET / HTTP/1.1\r\n: x\r\n\r\n", 400, "malformed header field"},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400, "invalid character"},
      {std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26), 400, "invalid character"},
      {"GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n", 400, "malformed Content-Length"},
      {"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400, "malformed Content-Length"},
      {"GET / HTTP/1.1\r\nContent-Length: \r\n\r\n", 400, "malformed Content-Length"},
      {"GET / HTTP/1.1\r\nContent-Length: 1, 1\r\n\r\n", 400, "malformed Content-Length"},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400, "conflicting"},
      {"GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
       "both Content-Length and Transfer-Encoding"},
      {"GET / HTTP/1.1\r\nHost: x\r\n", 400, "incomplete request head"},
      {"\r\n\r\n", 400, "incomplete request head"},
  };
  for (const Case& c : cases) {
    const HeadError error = ErrorOf(c.bytes);
    EXPECT_EQ(error.status, c.status) << c.bytes;
    EXPECT_THAT(std::string(error.reason), HasSubstr(c.reason)) << c.bytes;
  }
}

TEST(HttpWireTest, LimitsTheHeadersNumberAndSize) {
  std::string many = "GET / HTTP/1.1\r\nHost: x\r\n";
  for (size_t i = 1; i < kMaxRequestHeaders; ++i) many += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(Parse(many + "\r\n").headers.size(), kMaxRequestHeaders);
  const HeadError too_many = ErrorOf(many + "X-last: v\r\n\r\n");
  EXPECT_EQ(too_many.status, 431);
  EXPECT_THAT(std::string(too_many.reason), HasSubstr("more than 100 header fields"));

  const std::string line = "GET / HTTP/1.1\r\nHost: x\r\n";
  const std::string fits =
      line + "X: " + std::string(kMaxRequestHeadBytes - line.size() - 7, 'v') + "\r\n\r\n";
  ASSERT_EQ(fits.size(), kMaxRequestHeadBytes);
  EXPECT_EQ(Parse(fits).size, kMaxRequestHeadBytes);
  const HeadError too_large =
      ErrorOf(line + "X: " + std::string(kMaxRequestHeadBytes, 'v') + "\r\n\r\n");
  EXPECT_EQ(too_large.status, 431);
  EXPECT_THAT(std::string(too_large.reason), HasSubstr("64 KiB"));
}

// RFC 9112 3.2: an HTTP/1.1 request needs exactly one Host (HTTP/1.0 may have none), whose
// value is a host and optional port; an empty Host value is allowed (an authority-less target).
TEST(HttpWireTest, HostIsRequiredOnceInHttp11) {
  const HeadError none = ErrorOf("GET /metrics HTTP/1.1\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(none.status, 400);
  EXPECT_THAT(std::string(none.reason), HasSubstr("without a Host header field"));
  const HeadError twice = ErrorOf("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n");
  EXPECT_EQ(twice.status, 400);
  EXPECT_THAT(std::string(twice.reason), HasSubstr("more than one Host"));
  EXPECT_EQ(ErrorOf("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n").status, 400);
  EXPECT_EQ(Parse("GET / HTTP/1.0\r\n\r\n").path, "/");
  EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHOST:\r\n\r\n").path, "/");
  // Its value is uri-host [":" port].
  for (const std::string host : {"localhost:9108", "127.0.0.1", "[::1]:9108", "[fe80::1%25]",
                                 "exa%41mple.com", "a.b-c_d~!$&'()*+,;=", "h:"}) {
    EXPECT_EQ(Parse("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n").path, "/") << host;
  }
  for (const std::string host :
       {"a b", "x/y", "a:b", "a:1:2", "[::1", "[]", "[::1]x", "u@h", "%zz", "%4", "h?q", "h#f"}) {
    const HeadError e = ErrorOf("GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n");
    EXPECT_EQ(e.status, 400) << host;
    EXPECT_THAT(std::string(e.reason), HasSubstr("malformed Host")) << host;
  }
}

TEST(HttpWireTest, ScannerFindsTheHeadSplitAtEveryByte) {
  const std::string head = "\r\nGET /x?y HTTP/1.1\r\nHost: a\nX-Long: " + std::string(300, 'z') +
                           "\r\nConnection: close\r\n\r\n";
  const std::string bytes = head + "GET /next HTTP/1.1\r\n\r\n";  // pipelined
  // Byte by byte: nothing until the head's last byte.
  HeadScanner trickled;
  for (size_t i = 1; i <= bytes.size(); ++i) {
    const size_t found = trickled.Scan(std::string_view(bytes).substr(0, i));
    if (i < head.size()) {
      ASSERT_EQ(found, 0u) << "at " << i;
    } else {
      ASSERT_EQ(found, head.size()) << "at " << i;
      break;
    }
  }
  // In two pieces, split at every byte.
  for (size_t split = 0; split <= bytes.size(); ++split) {
    HeadScanner scanner;
    const size_t first = scanner.Scan(std::string_view(bytes).substr(0, split));
    const size_t found = first > 0 ? first : scanner.Scan(bytes);
    ASSERT_EQ(found, head.size()) << "split at " << split;
    const RequestHead parsed = Parse(std::string_view(bytes).substr(0, found));
    EXPECT_EQ(parsed.path, "/x");
    EXPECT_FALSE(parsed.keep_alive);
  }
}

TEST(HttpWireTest, PipelinedHeadsParseOneAfterAnother) {
  const std::string bytes =
      "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
      "HEAD /b?q HTTP/1.1\r\nHost: x\r\n\r\n"
      "GET /c HTTP/1.0\r\n\r\n";
  std::string_view rest = bytes;
  std::vector<std::string> seen;
  while (!rest.empty()) {
    HeadScanner scanner;
    const size_t size = scanner.Scan(rest);
    ASSERT_GT(size, 0u);
    const RequestHead head = Parse(rest.substr(0, size));
    EXPECT_EQ(head.size, size);
    seen.push_back(std::string(head.method) + " " + std::string(head.path) + " " +
                   std::to_string(head.keep_alive));
    rest.remove_prefix(size);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"GET /a 1", "HEAD /b 1", "GET /c 0"}));
  HeadScanner empty_lines;
  EXPECT_EQ(empty_lines.Scan("\r\n\r\n\n"), 0u);  // empty lines alone are not a head
}

TEST(HttpWireTest, WritesStatusLinesAndHeaders) {
  std::string out;
  AppendStatusLine(503, &out);
  AppendHeader("Retry-After", "1", &out);
  AppendStatusLine(299, &out);
  EXPECT_EQ(out, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nHTTP/1.1 299 Unknown\r\n");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_TRUE(IsValidHeaderField("Cache-Control", "no-store"));
  EXPECT_FALSE(IsValidHeaderField("Bad Name", "x"));
  EXPECT_FALSE(IsValidHeaderField("X", "a\r\nInjected: 1"));
  EXPECT_TRUE(EqualsNoCase("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(EqualsNoCase("gzip", "gzipped"));
}

}  // namespace
}  // namespace sluice::serve
