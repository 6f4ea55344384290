#pragma once

// The one HTTP server of sluice: the run's /metrics and /api/v1/run (`sluice run
// --metrics-listen`) and the host agent's endpoints (`sluice agent`). It answers GET and HEAD
// on exact paths with bodies the handlers share between requests, and keeps every resource a
// client could grow bounded: a fixed number of worker threads, a bounded queue of connections
// waiting for one (beyond it: 503), a bound on request size (beyond it: 413), and time limits
// on reading a request, writing a response and idling between requests. All of it is ours,
// on plain sockets: HTTP/1.1 parsing and writing (http_wire.h), how connections are queued,
// read and closed (connections.cc), the accept loop (http_server.cc).

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "sluice/core/result.h"

namespace sluice::serve {

/// A response body shared, without copying, by every request that sends it, with its gzip form
/// made on first demand and kept. Thread-safe; immutable but for that cache.
class SharedBody {
 public:
  explicit SharedBody(std::string text) : text_(std::move(text)) {}
  SharedBody(const SharedBody&) = delete;
  SharedBody& operator=(const SharedBody&) = delete;

  /// Return the body as given.
  const std::string& text() const { return text_; }
  /// Return the body as one gzip member, compressing it on the first call (the calls after it,
  /// from any thread, wait for that one and share its result). Empty if compression failed.
  const std::string& gzip() const;

 private:
  std::string text_;
  mutable std::once_flag gzip_once_;
  mutable std::string gzip_;  // written once, under gzip_once_
};

using BodyPtr = std::shared_ptr<const SharedBody>;

/// Return a shared body holding `text`.
inline BodyPtr MakeBody(std::string text) { return std::make_shared<SharedBody>(std::move(text)); }

/// What a handler is told about the request.
struct Request {
  std::string_view method;  ///< "GET" or "HEAD" (a HEAD gets the headers of the GET).
  std::string_view path;    ///< Without the query string.
  std::string_view query;   ///< After '?', undecoded; "" for none.
};

/// What a handler answers.
struct Response {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  BodyPtr body;  ///< Null: an empty body.
  /// More headers ("Cache-Control", ...). Content-Type, Content-Length, Content-Encoding and
  /// Vary are the server's.
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Answer one request. Called on a worker thread, for every request to its path, possibly on
/// several threads at once: handlers must be thread-safe. A handler that throws yields a 500.
using Handler = std::function<Response(const Request&)>;

/// One path the server answers (exact match, e.g. "/metrics"), with its handler.
struct Route {
  std::string path;
  Handler handler;
};

/// Limits and behaviour of a server. The defaults suit a scrape endpoint on one host.
struct HttpServerOptions {
  /// "host:port" to listen on (IPv6 as "[::1]:port"; port 0 picks a free port). The caller
  /// decides the default, which should be loopback: the endpoints are unauthenticated.
  std::string listen = "127.0.0.1:0";
  /// Threads answering requests: at most this many requests are handled at once (1-256).
  int workers = 2;
  /// Connections accepted and waiting for a worker (0-100000). One more is answered 503 with
  /// Retry-After by a single extra thread (which reads at most the request's headers, for at
  /// most a second); when that thread is busy too, further connections are closed unanswered.
  int max_queued = 16;
  /// Largest request body, by its Content-Length: a larger one is answered 413 without being
  /// read (and the connection closed); a smaller one is read and dropped (only GET and HEAD
  /// are served). A chunked body is answered 411. Request line and headers together are
  /// limited to 64 KiB (a larger request is answered 431).
  int64_t max_request_bytes = 16 * 1024;
  /// Time a client has to send a whole request (line, headers, body) once its first byte
  /// arrived, and to send the first request after connecting: beyond it the connection is
  /// closed.
  int64_t read_timeout_us = 5'000'000;
  /// Longest wait for the client to take each part of a response: beyond it the connection is
  /// closed.
  int64_t write_timeout_us = 5'000'000;
  /// Longest wait for a next request on a kept-alive connection. An idle connection holds no
  /// worker: it waits in an epoll set and is queued again when its next request arrives.
  int64_t keep_alive_timeout_us = 5'000'000;
  /// Requests on one connection before it is closed (Connection: close on the last one).
  int keep_alive_max_requests = 100;
  /// Compress bodies of textual types as gzip for clients that accept it (Accept-Encoding:
  /// gzip, with a q above 0). Bodies below `gzip_min_bytes` are sent as they are.
  bool gzip = true;
  size_t gzip_min_bytes = 1024;
};

/// Counts of what the server did, since Start. Relaxed counters: read them at any time.
struct HttpServerStats {
  int64_t requests = 0;        ///< Requests answered by a handler (any status).
  int64_t rejected_busy = 0;   ///< Answered 503: every worker busy and the queue full.
  int64_t too_large = 0;       ///< Answered 413.
  int64_t dropped = 0;         ///< Connections closed unanswered (the 503 thread was busy).
  int64_t gzip_responses = 0;  ///< Responses sent gzip-compressed.
  int64_t queued = 0;          ///< Connections waiting for a worker right now.
  bool refusing = false;       ///< The overflow thread is answering a connection 503 now.
};

/// Split "host:port" into its parts, checking the port is a number in 0..65535. Brackets around
/// an IPv6 host are removed. Return kInvalidArgument naming `listen` and the expected form.
Result<std::pair<std::string, int>> ParseListenAddress(std::string_view listen);

/// An HTTP/1.1 server on a background thread. Start returns once it accepts connections.
class HttpServer {
 public:
  /// Check `options`, bind its address and serve `routes` until Stop(). Return
  /// kInvalidArgument for a malformed address or option, kIOError when the address cannot be
  /// bound (port in use, unknown host).
  static Result<std::unique_ptr<HttpServer>> Start(HttpServerOptions options,
                                                   std::vector<Route> routes);

  /// Stop the server (calls Stop()).
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  /// Return the port actually bound (useful with port 0).
  int port() const { return port_; }
  /// Return the host the server was bound to, as given.
  const std::string& host() const { return host_; }
  /// Return what the server did so far.
  HttpServerStats stats() const;

  /// Stop accepting connections, close idle ones, let requests in progress finish and join
  /// every thread. Idempotent; call it from the owner only.
  void Stop();

 private:
  struct Impl;  // http_server.cc
  HttpServer(std::unique_ptr<Impl> impl, std::string host, int port);

  std::unique_ptr<Impl> impl_;
  std::string host_;
  int port_;
  bool stopped_ = false;
};

/// Return true when `accept_encoding` (an Accept-Encoding header) accepts gzip: it names gzip
/// (or x-gzip, or *) without q=0.
bool AcceptsGzip(std::string_view accept_encoding);

/// Return true for content types worth compressing: text/*, JSON, JavaScript, SVG.
bool IsCompressible(std::string_view content_type);

}  // namespace sluice::serve
