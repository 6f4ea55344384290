#include "sluice/connectors/objectstore/fault_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace sluice::testing {

namespace {

constexpr size_t kMaxHead = 64 << 10;
constexpr int kPollMs = 50;

// Waits until `fd` is readable; false once `stopping` is set or on error.
bool WaitReadable(int fd, const std::atomic<bool>& stopping) {
  while (!stopping.load()) {
    pollfd p{fd, POLLIN, 0};
    const int rc = ::poll(&p, 1, kPollMs);
    if (rc > 0) return true;
    if (rc < 0 && errno != EINTR) return false;
  }
  return false;
}

bool SendAll(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 429:
      return "Too Many Requests";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

}  // namespace

Result<std::unique_ptr<FaultProxy>> FaultProxy::Start(const std::string& upstream) {
  std::string rest = upstream;
  if (rest.starts_with("http://")) rest = rest.substr(7);
  while (rest.ends_with('/')) rest.pop_back();
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos) {
    return Status::Invalid("FaultProxy: upstream '{}' must be http://host:port", upstream);
  }
  const std::string host = rest.substr(0, colon);
  const int upstream_port = std::atoi(rest.substr(colon + 1).c_str());
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError("FaultProxy: socket: {}", std::strerror(errno));
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || ::listen(fd, 64) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::IOError("FaultProxy: listening on loopback: {}", std::strerror(err));
  }
  return std::unique_ptr<FaultProxy>(new FaultProxy(fd, ntohs(addr.sin_port), host, upstream_port));
}

FaultProxy::FaultProxy(int listen_fd, int port, std::string upstream_host, int upstream_port)
    : listen_fd_(listen_fd),
      port_(port),
      upstream_host_(std::move(upstream_host)),
      upstream_port_(upstream_port),
      acceptor_([this] { AcceptLoop(); }) {}

FaultProxy::~FaultProxy() {
  stopping_.store(true);
  acceptor_.join();
  std::vector<std::thread> workers;
  {
    std::lock_guard<std::mutex> lock(mu_);
    workers.swap(workers_);
  }
  for (auto& t : workers) t.join();
  ::close(listen_fd_);
}

std::string FaultProxy::endpoint() const { return fmt::format("http://127.0.0.1:{}", port_); }

void FaultProxy::FailNext(int n, int status, const std::string& code, const std::string& match) {
  std::lock_guard<std::mutex> lock(mu_);
  Rule r;
  r.match = match;
  r.remaining = n;
  r.status = status;
  r.code = code;
  rules_.push_back(std::move(r));
}

void FaultProxy::StallNext(int n, int64_t micros, const std::string& match) {
  std::lock_guard<std::mutex> lock(mu_);
  Rule r;
  r.match = match;
  r.remaining = n;
  r.stall = true;
  r.stall_us = micros;
  rules_.push_back(std::move(r));
}

void FaultProxy::CutNext(int n, int64_t bytes, const std::string& match) {
  std::lock_guard<std::mutex> lock(mu_);
  Rule r;
  r.match = match;
  r.remaining = n;
  r.cut_after = bytes;
  rules_.push_back(std::move(r));
}

void FaultProxy::ClearFaults() {
  std::lock_guard<std::mutex> lock(mu_);
  rules_.clear();
}

bool FaultProxy::TakeRule(const std::string& request_line, Rule* out) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Rule& r : rules_) {
    if (r.remaining <= 0) continue;
    if (!r.match.empty() && request_line.find(r.match) == std::string::npos) continue;
    --r.remaining;
    *out = r;
    return true;
  }
  return false;
}

void FaultProxy::AcceptLoop() {
  while (WaitReadable(listen_fd_, stopping_)) {
    const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    std::lock_guard<std::mutex> lock(mu_);
    workers_.emplace_back([this, client] {
      Handle(client);
      ::close(client);
    });
  }
}

void FaultProxy::Handle(int client) {
  // Read the request head, then its body (Content-Length only).
  std::string data;
  size_t head_end = std::string::npos;
  char buf[64 << 10];
  while (head_end == std::string::npos) {
    if (data.size() > kMaxHead || !WaitReadable(client, stopping_)) return;
    const ssize_t n = ::recv(client, buf, sizeof(buf), 0);
    if (n <= 0) return;
    data.append(buf, static_cast<size_t>(n));
    head_end = data.find("\r\n\r\n");
  }
  const std::string head = data.substr(0, head_end + 2);  // through the last header's CRLF
  std::string body = data.substr(head_end + 4);
  const std::string request_line = head.substr(0, head.find("\r\n"));
  size_t content_length = 0;
  std::string forwarded_head = request_line + "\r\n";
  for (size_t at = request_line.size() + 2; at < head.size();) {
    const size_t eol = head.find("\r\n", at);
    const std::string line = head.substr(at, eol - at);
    at = eol + 2;
    const size_t colon = line.find(':');
    const std::string name = Lower(line.substr(0, colon));
    if (name == "content-length")
      content_length = std::strtoull(line.c_str() + colon + 1, nullptr, 10);
    if (name == "transfer-encoding") {
      SendAll(client,
              "HTTP/1.1 501 Not Implemented\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
      return;
    }
    if (name == "connection" || name == "keep-alive") continue;
    forwarded_head += line + "\r\n";
  }
  forwarded_head += "Connection: close\r\n\r\n";
  while (body.size() < content_length) {
    if (!WaitReadable(client, stopping_)) return;
    const ssize_t n = ::recv(client, buf, sizeof(buf), 0);
    if (n <= 0) return;
    body.append(buf, static_cast<size_t>(n));
  }
  requests_.fetch_add(1);

  Rule rule;
  const bool faulty = TakeRule(request_line, &rule);
  if (faulty) faults_.fetch_add(1);
  if (faulty && rule.cut_after < 0) {
    if (rule.stall) {
      const auto until =
          std::chrono::steady_clock::now() + std::chrono::microseconds(rule.stall_us);
      while (!stopping_.load() && std::chrono::steady_clock::now() < until) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      return;
    }
    const std::string doc = fmt::format(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>injected by "
        "FaultProxy</Message></Error>",
        rule.code);
    const bool head_request = request_line.starts_with("HEAD ");
    SendAll(client, fmt::format("HTTP/1.1 {} {}\r\nContent-Type: application/xml\r\n"
                                "Content-Length: {}\r\nConnection: close\r\n\r\n{}",
                                rule.status, ReasonPhrase(rule.status), doc.size(),
                                head_request ? "" : doc));
    return;
  }

  // Forward, then relay the answer until the upstream closes.
  const int up = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (up < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(upstream_port_));
  ::inet_pton(AF_INET, upstream_host_ == "localhost" ? "127.0.0.1" : upstream_host_.c_str(),
              &addr.sin_addr);
  if (::connect(up, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      !SendAll(up, forwarded_head) || !SendAll(up, body)) {
    ::close(up);
    SendAll(client, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    return;
  }
  int64_t budget = faulty ? rule.cut_after : INT64_MAX;
  while (budget > 0 && WaitReadable(up, stopping_)) {
    const ssize_t n = ::recv(up, buf, sizeof(buf), 0);
    if (n <= 0) break;
    const auto relay = static_cast<size_t>(std::min<int64_t>(n, budget));
    if (!SendAll(client, std::string_view(buf, relay))) break;
    budget -= static_cast<int64_t>(relay);
  }
  ::close(up);
}

}  // namespace sluice::testing
