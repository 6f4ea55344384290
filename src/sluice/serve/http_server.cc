#include "sluice/serve/http_server.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "sluice/io/compression.h"
#include "sluice/serve/connections_internal.h"
#include "sluice/serve/http_wire.h"

namespace sluice::serve {

namespace {

constexpr std::string_view kExpectedForm = "expected host:port, e.g. 127.0.0.1:9464";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// A q-value of zero ("q=0", "q=0.000") refuses the coding.
bool QualityIsZero(std::string_view params) {
  while (!params.empty()) {
    const size_t semi = params.find(';');
    std::string_view p = Trim(params.substr(0, semi));
    params = semi == std::string_view::npos ? std::string_view() : params.substr(semi + 1);
    if (p.size() < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=') continue;
    p.remove_prefix(2);
    return !p.empty() && p.find_first_not_of("0.") == std::string_view::npos;
  }
  return false;
}

// Header names a handler may not set: the server's framing and content coding.
bool IsServerHeader(std::string_view name) {
  for (std::string_view own : {"Content-Type", "Content-Length", "Content-Encoding", "Vary",
                               "Connection", "Transfer-Encoding", "Keep-Alive"}) {
    if (EqualsNoCase(name, own)) return true;
  }
  return false;
}

// Bind and listen on `host`:`port`, trying each address the name resolves to.
Result<int> Listen(const std::string& host, int port, std::string_view listen, int backlog) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addresses);
  if (rc != 0) return Status::IOError("cannot listen on '{}': {}", listen, gai_strerror(rc));
  int error = EADDRNOTAVAIL;
  for (const addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    // SO_REUSEADDR allows a quick restart after TIME_WAIT; SO_REUSEPORT is not set, so a second
    // server cannot share a port already in use.
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    if (::bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, backlog) == 0) {
      freeaddrinfo(addresses);
      return fd;
    }
    error = errno;
    ::close(fd);
  }
  freeaddrinfo(addresses);
  return Status::IOError("cannot listen on '{}': {}", listen, std::strerror(error));
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return -1;
  if (addr.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
}

}  // namespace

const std::string& SharedBody::gzip() const {
  std::call_once(gzip_once_, [this] {
    auto compressed = io::Compress(io::Codec::kGzip, text_);
    if (compressed.ok()) gzip_ = std::move(*compressed);
  });
  return gzip_;
}

bool AcceptsGzip(std::string_view accept_encoding) {
  while (!accept_encoding.empty()) {
    const size_t comma = accept_encoding.find(',');
    const std::string_view item = accept_encoding.substr(0, comma);
    accept_encoding =
        comma == std::string_view::npos ? std::string_view() : accept_encoding.substr(comma + 1);
    const size_t semi = item.find(';');
    const std::string_view coding = Trim(item.substr(0, semi));
    const std::string_view params =
        semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
    if (EqualsNoCase(coding, "gzip") || EqualsNoCase(coding, "x-gzip") || coding == "*") {
      if (!QualityIsZero(params)) return true;
    }
  }
  return false;
}

bool IsCompressible(std::string_view content_type) {
  const std::string_view type = Trim(content_type.substr(0, content_type.find(';')));
  return type.substr(0, 5) == "text/" || type == "application/json" ||
         type == "application/javascript" || type == "image/svg+xml";
}

Result<std::pair<std::string, int>> ParseListenAddress(std::string_view listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string_view::npos) {
    return Status::Invalid("listen address '{}' has no port: {}", listen, kExpectedForm);
  }
  std::string_view host = listen.substr(0, colon);
  const std::string_view port_text = listen.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find_first_of("[]:") != std::string_view::npos) {
    return Status::Invalid("listen address '{}': write an IPv6 host in brackets, e.g. [::1]:9464",
                           listen);
  }
  if (host.empty()) {
    return Status::Invalid("listen address '{}' has no host: {}", listen, kExpectedForm);
  }
  bool digits = !port_text.empty() && port_text.size() <= 5;
  for (char c : port_text) digits = digits && c >= '0' && c <= '9';
  const int port = digits ? std::stoi(std::string(port_text)) : -1;
  if (port < 0 || port > 65535) {
    return Status::Invalid("listen address '{}': port '{}' is not a number in 0..65535 ({})",
                           listen, port_text, kExpectedForm);
  }
  return std::make_pair(std::string(host), port);
}

struct HttpServer::Impl {
  explicit Impl(const HttpServerOptions& o) : options(o) {}
  ~Impl() {
    if (listen_fd >= 0) ::close(listen_fd);
    if (wake_fd >= 0) ::close(wake_fd);
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // Route a request whose framing the connection loop checked, and answer it.
  void Dispatch(const RequestHead& head, internal::PreparedResponse* out);
  void WriteBody(const RequestHead& head, const Response& answer, internal::PreparedResponse* out);
  // Accept connections and queue them until wake_fd is readable.
  void AcceptLoop();

  HttpServerOptions options;
  internal::Counters counters;
  std::unordered_map<std::string, Handler> routes;
  int listen_fd = -1;
  int wake_fd = -1;  // an eventfd, readable once stopping
  std::unique_ptr<internal::ConnectionQueue> queue;
  std::unique_ptr<internal::ConnectionLoop> loop;  // uses `queue`
  std::thread thread;
};

void HttpServer::Impl::Dispatch(const RequestHead& head, internal::PreparedResponse* out) {
  auto route = routes.find(std::string(head.path));
  if (route == routes.end()) {
    out->SetText(404, "404 page not found\n");
    return;
  }
  if (head.method != "GET" && head.method != "HEAD") {
    out->SetText(405, "405 method not allowed: GET or HEAD\n");
    AppendHeader("Allow", "GET, HEAD", &out->headers);
    return;
  }
  counters.requests.fetch_add(1, std::memory_order_relaxed);
  Response answer;
  try {
    answer = route->second(Request{head.method, head.path, head.query});
  } catch (const std::exception& e) {
    out->SetText(500, std::string("500 internal error: ") + e.what() + "\n");
    return;
  } catch (...) {
    out->SetText(500, "500 internal error: the handler threw\n");
    return;
  }
  if (answer.status < 100 || answer.status > 599) {
    out->SetText(
        500, fmt::format("500 internal error: the handler answered status {}\n", answer.status));
    return;
  }
  WriteBody(head, answer, out);
}

void HttpServer::Impl::WriteBody(const RequestHead& head, const Response& answer,
                                 internal::PreparedResponse* out) {
  out->status = answer.status;
  out->shared = answer.body;
  const std::string* bytes = answer.body == nullptr ? nullptr : &answer.body->text();
  std::string& h = out->headers;
  AppendHeader("Content-Type", answer.content_type, &h);
  if (bytes != nullptr && !bytes->empty() && options.gzip && IsCompressible(answer.content_type)) {
    AppendHeader("Vary", "Accept-Encoding", &h);
    bool accepted = false;
    for (const HttpHeader& field : head.headers) {
      accepted =
          accepted || (EqualsNoCase(field.name, "Accept-Encoding") && AcceptsGzip(field.value));
    }
    if (bytes->size() >= options.gzip_min_bytes && accepted && !answer.body->gzip().empty()) {
      bytes = &answer.body->gzip();
      AppendHeader("Content-Encoding", "gzip", &h);
      counters.gzip_responses.fetch_add(1, std::memory_order_relaxed);
    }
  }
  for (const auto& [name, value] : answer.headers) {
    // A header that would break the response's framing is left out.
    if (!IsServerHeader(name) && IsValidHeaderField(name, value)) AppendHeader(name, value, &h);
  }
  // The shared bytes (or their gzip form) are sent as they are, not copied per request.
  out->body = bytes == nullptr ? std::string_view() : std::string_view(*bytes);
  AppendHeader("Content-Length", std::to_string(out->body.size()), &h);
}

void HttpServer::Impl::AcceptLoop() {
  std::array<pollfd, 2> fds{pollfd{listen_fd, POLLIN, 0}, pollfd{wake_fd, POLLIN, 0}};
  while (true) {
    const int n = poll(fds.data(), fds.size(), -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || fds[1].revents != 0) return;
    const int fd = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        // Out of descriptors or memory: the connection waits in the backlog; try again soon
        // (or stop, if woken) rather than spinning.
        pollfd wake{wake_fd, POLLIN, 0};
        poll(&wake, 1, 10);
      }
      continue;
    }
    // Responses go out in one sendmsg, but a large one in several: without TCP_NODELAY the
    // last part would wait for the client's delayed ACK (40 ms on Linux).
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    internal::ConnectionLoop* loop_ptr = loop.get();
    queue->Enqueue([loop_ptr, fd] { loop_ptr->Serve(fd, 0); });
  }
}

Result<std::unique_ptr<HttpServer>> HttpServer::Start(HttpServerOptions options,
                                                      std::vector<Route> routes) {
  SLUICE_ASSIGN_OR_RETURN(auto address, ParseListenAddress(options.listen));
  if (options.workers < 1 || options.workers > 256) {
    return Status::Invalid("HTTP server: workers must be between 1 and 256, got {}",
                           options.workers);
  }
  if (options.max_queued < 0 || options.max_queued > 100000) {
    return Status::Invalid("HTTP server: max_queued must be between 0 and 100000, got {}",
                           options.max_queued);
  }
  if (options.max_request_bytes < 0 || options.read_timeout_us <= 0 ||
      options.write_timeout_us <= 0 || options.keep_alive_timeout_us < 0 ||
      options.keep_alive_max_requests < 1) {
    return Status::Invalid(
        "HTTP server: limits must be positive (max_request_bytes, timeouts, keep-alive)");
  }
  auto impl = std::make_unique<Impl>(options);
  for (auto& r : routes) {
    if (!impl->routes.emplace(r.path, std::move(r.handler)).second) {
      return Status::Invalid("HTTP server: path '{}' is routed twice", r.path);
    }
  }
  // Connections the kernel holds before the accept loop takes them: about the queue's size.
  const int backlog = std::clamp(options.workers + options.max_queued, 64, SOMAXCONN);
  SLUICE_ASSIGN_OR_RETURN(impl->listen_fd,
                          Listen(address.first, address.second, options.listen, backlog));
  const int port = BoundPort(impl->listen_fd);
  impl->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (port < 0 || impl->wake_fd < 0) {
    return Status::IOError("cannot listen on '{}': {}", options.listen, std::strerror(errno));
  }
  Impl* raw = impl.get();
  impl->queue = std::make_unique<internal::ConnectionQueue>(options.workers, options.max_queued,
                                                            &impl->counters);
  impl->loop = std::make_unique<internal::ConnectionLoop>(
      options, &impl->counters, impl->queue.get(),
      [raw](const RequestHead& head, internal::PreparedResponse* out) {
        raw->Dispatch(head, out);
      });
  impl->thread = std::thread([raw] { raw->AcceptLoop(); });
  return std::unique_ptr<HttpServer>(
      new HttpServer(std::move(impl), std::move(address.first), port));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl, std::string host, int port)
    : impl_(std::move(impl)), host_(std::move(host)), port_(port) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  // Requests being answered finish (with Connection: close); the accept loop ends, the port
  // closes, then the queue closes parked and waiting connections and joins its threads.
  impl_->loop->Stop();
  const uint64_t one = 1;
  if (::write(impl_->wake_fd, &one, sizeof(one)) != sizeof(one)) {
    // An eventfd write fails only when its counter would overflow: it is readable anyway.
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  ::close(impl_->listen_fd);
  impl_->listen_fd = -1;
  impl_->queue->Shutdown();
}

HttpServerStats HttpServer::stats() const {
  const internal::Counters& c = impl_->counters;
  HttpServerStats s;
  s.requests = c.requests.load(std::memory_order_relaxed);
  s.rejected_busy = c.rejected_busy.load(std::memory_order_relaxed);
  s.too_large = c.too_large.load(std::memory_order_relaxed);
  s.dropped = c.dropped.load(std::memory_order_relaxed);
  s.gzip_responses = c.gzip_responses.load(std::memory_order_relaxed);
  s.queued = c.queued.load(std::memory_order_relaxed);
  s.refusing = c.refusing.load(std::memory_order_relaxed);
  return s;
}

}  // namespace sluice::serve
