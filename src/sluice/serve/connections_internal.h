#pragma once

// How the server takes connections, private to serve/. The accept loop (http_server.cc) hands
// each connection to a ConnectionQueue, which runs connections on a fixed set of workers with a
// bounded queue and hands the overflow to one thread that answers 503. ConnectionLoop reads
// requests (http_wire.h parses them), enforces the time and size limits and writes responses.
// A kept-alive connection between two requests holds no thread: it is parked in an epoll set
// and queued again when its next request arrives.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sluice/serve/http_server.h"
#include "sluice/serve/http_wire.h"

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

/// A queue of `workers` threads and at most `max_queued` waiting connections. Beyond that
/// a connection goes to the overflow thread (which answers 503) if it is free, else it is
/// closed on the accept thread. Idle kept-alive connections wait in an epoll set watched by
/// one more thread (Park), so 100 clients need not hold 100 workers nor reconnect.
class ConnectionQueue final {
 public:
  ConnectionQueue(int workers, int max_queued, Counters* counters);
  ~ConnectionQueue();
  ConnectionQueue(const ConnectionQueue&) = delete;
  ConnectionQueue& operator=(const ConnectionQueue&) = delete;

  /// Run `fn` (which serves one connection) on a worker, on the overflow thread (mode kReject)
  /// or right here (mode kClose). Called by the accept loop, once per accepted connection.
  void Enqueue(std::function<void()> fn);
  /// Close what waits and join every thread; called when the accept loop has ended.
  /// Idempotent.
  void Shutdown();

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

/// A response ready to be written: the status, the header lines the server and the handler
/// chose (each ending in CRLF; Connection and the empty line are added when it is written)
/// and the body, owned by `shared` or by `text`.
struct PreparedResponse {
  int status = 200;
  std::string headers;
  BodyPtr shared;    ///< Owns `body` when it is a shared body (or its gzip form).
  std::string text;  ///< Owns `body` when it was made for this response.
  std::string_view body;
  bool close = false;  ///< Close the connection after this response.

  /// Make this a text/plain response of `text`, with its Content-Length.
  void SetText(int status, std::string text);
};

/// Answer one request whose head was read and whose body (if any) was skipped.
using Dispatcher = std::function<void(const RequestHead&, PreparedResponse*)>;

/// Serve the requests of one connection after another: read a head within the read timeout,
/// refuse what the limits forbid (431, 413, 411, 503 on the overflow thread), skip a body
/// within the limit, let `dispatch` answer, write the response within the write timeout, and
/// between requests park the connection in `queue`.
class ConnectionLoop {
 public:
  ConnectionLoop(const HttpServerOptions& options, Counters* counters, ConnectionQueue* queue,
                 Dispatcher dispatch)
      : options_(options), counters_(counters), queue_(queue), dispatch_(std::move(dispatch)) {}

  /// Serve `fd` until it is closed or parked (it then comes back here when readable); `served`
  /// requests were answered on it before. Closes or parks `fd` before returning. Runs in the
  /// mode of its thread (CurrentMode()).
  void Serve(int fd, int served);
  /// Answer the requests being read, then close their connections: called when stopping.
  void Stop() { running_.store(false); }

 private:
  const HttpServerOptions options_;
  Counters* counters_;
  ConnectionQueue* queue_;
  Dispatcher dispatch_;
  std::atomic<bool> running_{true};
};

}  // namespace sluice::serve::internal
