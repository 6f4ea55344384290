#pragma once

// How the server takes connections, private to serve/. cpp-httplib's accept loop hands each
// connection to a TaskQueue; its ThreadPool queues without bound and its connection loop polls
// idle keep-alive connections every 10 ms. Here a ConnectionQueue runs connections on a fixed
// set of workers with a bounded queue, hands the overflow to one thread that answers 503, and
// BoundedServer replaces httplib's per-connection loop (process_and_close_socket) with one that
// enforces the time and size limits. A kept-alive connection between two requests holds no
// thread: it is parked in an epoll set and queued again when its next request arrives.

#include <sys/socket.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <httplib.h>

#include "sluice/serve/http_server.h"

namespace sluice::serve::internal {

/// How a thread runs the connections the queue gives it.
enum class ConnectionMode : uint8_t {
  kServe,   ///< Answer requests (a worker).
  kReject,  ///< Read one request's headers and answer 503 (the overflow thread).
  kClose,   ///< Close the connection unanswered (overload beyond that, or shutting down).
};

/// Return the mode of the connection being run on this thread (kServe outside the queue).
ConnectionMode CurrentMode();

/// The counters behind HttpServerStats.
struct Counters {
  std::atomic<int64_t> requests{0};
  std::atomic<int64_t> rejected_busy{0};
  std::atomic<int64_t> too_large{0};
  std::atomic<int64_t> dropped{0};
  std::atomic<int64_t> gzip_responses{0};
  std::atomic<int64_t> queued{0};     ///< Connections waiting for a worker now.
  std::atomic<bool> refusing{false};  ///< The overflow thread has a connection.
};

/// A TaskQueue of `workers` threads and at most `max_queued` waiting connections. Beyond that
/// a connection goes to the overflow thread (which answers 503) if it is free, else it is
/// closed on the accept thread. Idle kept-alive connections wait in an epoll set watched by
/// one more thread (Park), so 100 clients need not hold 100 workers nor reconnect.
class ConnectionQueue final : public httplib::TaskQueue {
 public:
  ConnectionQueue(int workers, int max_queued, Counters* counters);
  ~ConnectionQueue() override;

  /// Called by httplib's accept loop, once per accepted connection.
  void enqueue(std::function<void()> fn) override;
  /// Called by httplib when its accept loop ends: close what waits, join every thread.
  void shutdown() override;

  /// Hold the idle connection `fd` without a thread: when bytes of its next request arrive,
  /// enqueue `resume` as for a new connection; after `idle_us` without any, or at shutdown,
  /// close it. Called by a worker that just answered a request on `fd` and gives it up.
  void Park(int fd, int64_t idle_us, std::function<void()> resume);

 private:
  struct Parked {
    int64_t deadline_us;
    std::function<void()> resume;
  };
  void Worker();
  void Overflow();
  void Parker();
  void CountQueuedLocked();  // requires mu_

  const size_t max_queued_;
  Counters* counters_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd in the epoll set: readable once shutting down
  std::mutex park_mu_;
  std::unordered_map<int, Parked> parked_;  // guarded by park_mu_
  bool park_closed_ = false;                // guarded by park_mu_: Park closes at once
  std::thread parker_thread_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;          // workers wait here
  std::condition_variable overflow_cv_;      // the overflow thread waits here
  std::deque<std::function<void()>> queue_;  // guarded by mu_
  std::function<void()> overflow_job_;       // guarded by mu_: the next connection to refuse
  bool overflow_busy_ = false;               // guarded by mu_
  size_t idle_ = 0;                          // guarded by mu_: workers waiting for work
  bool shutdown_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
  std::thread overflow_thread_;
};

/// httplib::Server with our connection loop. The queue must outlive the server's accept loop.
class BoundedServer final : public httplib::Server {
 public:
  BoundedServer(const HttpServerOptions& options, Counters* /*counters*/) : options_(options) {}

  /// Set the queue that parks idle connections (made by new_task_queue).
  void set_queue(ConnectionQueue* queue) { queue_.store(queue); }
  /// Mark the request being handled on this thread as leaving unread bytes (a body never
  /// read): the connection is closed after the response, after draining what the client sent.
  static void CloseAfterResponse();
  /// Set the listening socket's backlog (httplib listens with 5: a burst of connections
  /// beyond it has its SYNs dropped and retried by the clients a second later). Call after
  /// binding, before serving.
  bool SetBacklog(int backlog);

 private:
  bool process_and_close_socket(socket_t sock) override;
  // Answer requests on `sock` until it is closed or parked; `served` were answered before.
  void Serve(socket_t sock, int served);

  const HttpServerOptions options_;
  std::atomic<ConnectionQueue*> queue_{nullptr};
};

}  // namespace sluice::serve::internal
