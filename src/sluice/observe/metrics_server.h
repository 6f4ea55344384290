#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "sluice/core/result.h"

namespace httplib {
class Server;
}

namespace sluice::observe {

/// What the server answers with. Each callback runs on a server thread, once per request, and
/// must be thread-safe; an empty function makes its path answer 404. A callback that throws
/// yields a 500.
struct MetricsRoutes {
  /// Body of GET /metrics, served as "text/plain; version=0.0.4" (e.g. a bound
  /// MetricsRegistry::PrometheusText).
  std::function<std::string()> metrics_text;
  /// Body of GET /api/v1/run, served as "application/json" (the live run state).
  std::function<std::string()> run_json;
};

/// An HTTP server for scrapes (cpp-httplib, two worker threads). It listens on exactly the
/// address it is given: the caller decides the default, which should be loopback
/// (127.0.0.1:9464), because the endpoints are unauthenticated.
class MetricsServer {
 public:
  using Routes = MetricsRoutes;

  /// Bind `listen` ("host:port", IPv6 as "[::1]:port"; port 0 picks a free port) and serve
  /// `routes` on a background thread until Stop(). Return kInvalidArgument for a malformed
  /// address or port, kIOError when the address cannot be bound (port in use, unknown host).
  static Result<std::unique_ptr<MetricsServer>> Start(std::string_view listen, Routes routes);

  /// Stop the server and join its threads (calls Stop()).
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  /// Return the port actually bound (useful with port 0).
  int port() const { return port_; }
  /// Return the host the server was bound to, as given.
  const std::string& host() const { return host_; }

  /// Stop accepting requests and join the server thread. Idempotent; not thread-safe with
  /// itself (call it from the owner only).
  void Stop();

 private:
  MetricsServer(std::unique_ptr<httplib::Server> server, std::string host, int port);
  void WaitUntilServing();

  std::unique_ptr<httplib::Server> server_;
  std::string host_;
  int port_;
  std::thread thread_;
  std::atomic<bool> exited_{false};  // set by thread_ when the accept loop has returned
  bool stopped_ = false;
};

/// Split "host:port" into its parts, checking the port is a number in 0..65535. Brackets around
/// an IPv6 host are removed. Return kInvalidArgument naming `listen` and the expected form.
Result<std::pair<std::string, int>> ParseListenAddress(std::string_view listen);

}  // namespace sluice::observe
