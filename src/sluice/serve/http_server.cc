#include "sluice/serve/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <thread>
#include <unordered_map>

#include "sluice/io/compression.h"
#include "sluice/serve/connections_internal.h"

namespace sluice::serve {

namespace {

constexpr std::string_view kExpectedForm = "expected host:port, e.g. 127.0.0.1:9464";

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
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

void Send(httplib::Response& res, int status, std::string_view text) {
  res.status = status;
  res.set_content(std::string(text), "text/plain; charset=utf-8");
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
  explicit Impl(const HttpServerOptions& o) : options(o), server(o, &counters) {}

  // Answer every request here, before httplib's own routing (which would read bodies and
  // compress with brotli at its slowest setting for browsers).
  httplib::Server::HandlerResponse Dispatch(const httplib::Request& req, httplib::Response& res);
  void WriteBody(const httplib::Request& req, const Response& answer, httplib::Response& res);

  HttpServerOptions options;
  internal::Counters counters;
  std::unordered_map<std::string, Handler> routes;
  internal::BoundedServer server;
  std::thread thread;
  std::atomic<bool> exited{false};  // set by `thread` when the accept loop has returned
};

httplib::Server::HandlerResponse HttpServer::Impl::Dispatch(const httplib::Request& req,
                                                            httplib::Response& res) {
  using HR = httplib::Server::HandlerResponse;
  if (internal::CurrentMode() == internal::ConnectionMode::kReject) {
    counters.rejected_busy.fetch_add(1, std::memory_order_relaxed);
    res.set_header("Retry-After", "1");  // Connection: close comes with every refusal
    Send(res, 503, "503 busy: every worker is answering a request and the queue is full\n");
    return HR::Handled;
  }
  // Bodies are never read: one announced beyond the limit is refused; any other is skipped by
  // closing the connection after the answer.
  const std::string length_text = req.get_header_value("Content-Length");
  const bool chunked = req.has_header("Transfer-Encoding");
  if (!length_text.empty() || chunked) {
    char* end = nullptr;
    errno = 0;
    const unsigned long long length = std::strtoull(length_text.c_str(), &end, 10);
    const bool too_large = !length_text.empty() &&
                           (errno != 0 || *end != '\0' ||
                            length > static_cast<unsigned long long>(options.max_request_bytes));
    if (chunked || length > 0 || too_large) {
      internal::BoundedServer::CloseAfterResponse();
      res.set_header("Connection", "close");
    }
    if (too_large) {
      counters.too_large.fetch_add(1, std::memory_order_relaxed);
      Send(res, 413,
           fmt::format("413 request too large: at most {} bytes\n", options.max_request_bytes));
      return HR::Handled;
    }
  }
  auto route = routes.find(req.path);
  if (route == routes.end()) {
    Send(res, 404, "404 page not found\n");
    return HR::Handled;
  }
  if (req.method != "GET" && req.method != "HEAD") {
    res.set_header("Allow", "GET, HEAD");
    Send(res, 405, "405 method not allowed: GET or HEAD\n");
    return HR::Handled;
  }
  counters.requests.fetch_add(1, std::memory_order_relaxed);
  Response answer;
  try {
    const size_t q = req.target.find('?');
    Request request{
        req.method, req.path,
        q == std::string::npos ? std::string_view() : std::string_view(req.target).substr(q + 1)};
    answer = route->second(request);
  } catch (const std::exception& e) {
    Send(res, 500, std::string("500 internal error: ") + e.what() + "\n");
    return HR::Handled;
  }
  WriteBody(req, answer, res);
  return HR::Handled;
}

void HttpServer::Impl::WriteBody(const httplib::Request& req, const Response& answer,
                                 httplib::Response& res) {
  res.status = answer.status;
  for (const auto& [name, value] : answer.headers) res.set_header(name, value);
  if (answer.body == nullptr || answer.body->text().empty()) {
    res.set_content("", answer.content_type);
    return;
  }
  BodyPtr body = answer.body;
  const std::string* bytes = &body->text();
  if (options.gzip && IsCompressible(answer.content_type)) {
    res.set_header("Vary", "Accept-Encoding");
    if (bytes->size() >= options.gzip_min_bytes &&
        AcceptsGzip(req.get_header_value("Accept-Encoding")) && !body->gzip().empty()) {
      bytes = &body->gzip();
      res.set_header("Content-Encoding", "gzip");
      counters.gzip_responses.fetch_add(1, std::memory_order_relaxed);
    }
  }
  // A provider of known length: httplib sends it as it is (it compresses only `res.body`), and
  // the shared bytes are not copied per request.
  res.set_content_provider(bytes->size(), answer.content_type,
                           [body, bytes](size_t offset, size_t length, httplib::DataSink& sink) {
                             return sink.write(bytes->data() + offset, length);
                           });
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
  Impl* raw = impl.get();
  httplib::Server& server = impl->server;
  // httplib sets SO_REUSEPORT by default, which would let a second server share a port that is
  // already in use; SO_REUSEADDR alone still allows a quick restart after TIME_WAIT.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.new_task_queue = [raw] {
    auto* queue = new internal::ConnectionQueue(raw->options.workers, raw->options.max_queued,
                                                &raw->counters);
    raw->server.set_queue(queue);
    return queue;
  };
  server.set_payload_max_length(static_cast<size_t>(options.max_request_bytes));
  // Socket-level backstops of the same limits (httplib sets them on each connection).
  server.set_read_timeout(options.read_timeout_us / 1'000'000, options.read_timeout_us % 1'000'000);
  server.set_write_timeout(options.write_timeout_us / 1'000'000,
                           options.write_timeout_us % 1'000'000);
  server.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    return raw->Dispatch(req, res);
  });

  errno = 0;
  int port = address.second;
  bool bound = false;
  if (port == 0) {
    port = server.bind_to_any_port(address.first);
    bound = port > 0;
  } else {
    bound = server.bind_to_port(address.first, port);
  }
  if (!bound) {
    const int error = errno;
    return Status::IOError(
        "cannot listen on '{}': {}", options.listen,
        error != 0 ? std::strerror(error) : "address in use, not local, or host unknown");
  }
  // Connections the kernel holds before the accept loop takes them: about the queue's size.
  const int backlog = std::clamp(options.workers + options.max_queued, 64, SOMAXCONN);
  if (!impl->server.SetBacklog(backlog)) {
    return Status::IOError("cannot listen on '{}': {}", options.listen, std::strerror(errno));
  }
  impl->thread = std::thread([raw] {
    raw->server.listen_after_bind();
    raw->exited.store(true);
  });
  // The socket already accepts connections (they wait in the backlog), but httplib's stop() is
  // a no-op until the accept loop runs, so a Stop() right after Start() would hang the join.
  while (!server.is_running() && !impl->exited.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return std::unique_ptr<HttpServer>(
      new HttpServer(std::move(impl), std::move(address.first), port));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl, std::string host, int port)
    : impl_(std::move(impl)), host_(std::move(host)), port_(port) {}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  impl_->server.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
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
