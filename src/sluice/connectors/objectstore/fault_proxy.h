#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "sluice/core/result.h"

namespace sluice::testing {

/// A FAULT-INJECTING HTTP proxy for tests (a fake in the sense of STYLE.md: it wraps the real
/// server). It listens on an ephemeral loopback port and forwards each HTTP/1.1 request to an
/// upstream server (s3rver), one request per connection, unless told to misbehave: answer the
/// next N requests with an error status and an S3 error document, hold them without an answer
/// (a stalled server), or cut the answer short (a broken connection). Requests with chunked bodies
/// are not supported. Thread-safe.
class FaultProxy {
 public:
  /// Start a proxy in front of `upstream` ("http://127.0.0.1:9000"). Loopback only.
  static Result<std::unique_ptr<FaultProxy>> Start(const std::string& upstream);
  /// Stop accepting, end stalled requests, and join every thread.
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  /// Return "http://127.0.0.1:<port>", the endpoint clients should use.
  std::string endpoint() const;
  int port() const { return port_; }

  /// Answer the next `n` requests whose request line contains `match` (any request when empty)
  /// with HTTP `status` and an S3 <Error> whose <Code> is `code`, without forwarding them.
  void FailNext(int n, int status = 500, const std::string& code = "InternalError",
                const std::string& match = "");
  /// Hold the next `n` requests whose request line contains `match` for `micros`, answer
  /// nothing, then close the connection.
  void StallNext(int n, int64_t micros, const std::string& match = "");
  /// Forward the next `n` requests whose request line contains `match`, but relay only the
  /// first `bytes` bytes of each answer (headers included), then close: a broken download.
  void CutNext(int n, int64_t bytes, const std::string& match = "");
  /// Forget the faults not yet used.
  void ClearFaults();

  /// Return the number of requests received (forwarded or not).
  int64_t requests() const { return requests_.load(); }
  /// Return the number of requests answered with an injected error or stalled.
  int64_t faults() const { return faults_.load(); }

 private:
  struct Rule {
    std::string match;
    int remaining = 0;
    bool stall = false;
    int status = 500;
    std::string code;
    int64_t stall_us = 0;
    int64_t cut_after = -1;  // >= 0: forward, relaying only this many bytes of the answer
  };

  FaultProxy(int listen_fd, int port, std::string upstream_host, int upstream_port);
  void AcceptLoop();
  void Handle(int client_fd);
  // Returns the rule to apply to `request_line` (consuming one use), or false.
  bool TakeRule(const std::string& request_line, Rule* out);

  const int listen_fd_;
  const int port_;
  const std::string upstream_host_;
  const int upstream_port_;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> requests_{0};
  std::atomic<int64_t> faults_{0};
  std::mutex mu_;
  std::vector<Rule> rules_;           // guarded by mu_
  std::vector<std::thread> workers_;  // guarded by mu_
  std::thread acceptor_;
};

}  // namespace sluice::testing
