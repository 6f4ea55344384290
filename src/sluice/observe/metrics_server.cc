#include "sluice/observe/metrics_server.h"

#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>

#include <httplib.h>

namespace sluice::observe {

namespace {

constexpr std::string_view kExpectedForm = "expected host:port, e.g. 127.0.0.1:9464";
constexpr int kWorkerThreads = 2;

// Wraps a body callback as a handler that turns exceptions into a 500.
httplib::Server::Handler Serve(std::function<std::string()> body, std::string content_type) {
  return [body = std::move(body), content_type = std::move(content_type)](const httplib::Request&,
                                                                          httplib::Response& res) {
    try {
      res.set_content(body(), content_type.c_str());
    } catch (const std::exception& e) {
      res.status = 500;
      res.set_content(std::string("internal error: ") + e.what() + "\n", "text/plain");
    }
  };
}

}  // namespace

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

Result<std::unique_ptr<MetricsServer>> MetricsServer::Start(std::string_view listen,
                                                            Routes routes) {
  SLUICE_ASSIGN_OR_RETURN(auto address, ParseListenAddress(listen));
  auto server = std::make_unique<httplib::Server>();
  // httplib sets SO_REUSEPORT by default, which would let a second server share a port that is
  // already in use; SO_REUSEADDR alone still allows a quick restart after TIME_WAIT.
  server->set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server->new_task_queue = [] { return new httplib::ThreadPool(kWorkerThreads); };
  if (routes.metrics_text) {
    server->Get("/metrics",
                Serve(std::move(routes.metrics_text), "text/plain; version=0.0.4; charset=utf-8"));
  }
  if (routes.run_json) {
    server->Get("/api/v1/run", Serve(std::move(routes.run_json), "application/json"));
  }
  server->set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (res.status == 404) res.set_content("404 page not found\n", "text/plain");
  });

  errno = 0;
  int port = address.second;
  bool bound = false;
  if (port == 0) {
    port = server->bind_to_any_port(address.first);
    bound = port > 0;
  } else {
    bound = server->bind_to_port(address.first, port);
  }
  if (!bound) {
    const int error = errno;
    return Status::IOError(
        "cannot listen on '{}': {}", listen,
        error != 0 ? std::strerror(error) : "address in use, not local, or host unknown");
  }
  std::unique_ptr<MetricsServer> result(
      new MetricsServer(std::move(server), std::move(address.first), port));
  return result;
}

MetricsServer::MetricsServer(std::unique_ptr<httplib::Server> server, std::string host, int port)
    : server_(std::move(server)), host_(std::move(host)), port_(port) {
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    exited_.store(true);
  });
  WaitUntilServing();
}

void MetricsServer::WaitUntilServing() {
  // The socket already accepts connections (they queue in the backlog), but httplib's stop()
  // is a no-op until the accept loop runs, so Stop() right after Start() would hang the join.
  while (!server_->is_running() && !exited_.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

MetricsServer::~MetricsServer() { Stop(); }

void MetricsServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  WaitUntilServing();
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace sluice::observe
