#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "sluice/serve/connections_internal.h"

namespace sluice::serve::internal {

namespace {

thread_local ConnectionMode t_mode = ConnectionMode::kServe;
thread_local bool t_close_after = false;

// Request line and headers together; a request beyond it is answered 400.
constexpr size_t kMaxHeaderBytes = 64 * 1024;
// The overflow thread waits at most this long for the request it refuses.
constexpr int64_t kRejectReadTimeoutUs = 1'000'000;
// After a response that left a body unread: how long and how much to drain before closing, so
// that the client reads the response instead of a connection reset.
constexpr int64_t kLingerUs = 500'000;
constexpr size_t kLingerBytes = 1 << 20;
// A write this small (httplib writes a response's status line and headers in one) is held and
// sent with the next one, the body: one segment and one syscall instead of two.
constexpr size_t kCoalesceBytes = 4096;
// How often the parker looks for parked connections past their keep-alive timeout.
constexpr int kParkSweepMs = 100;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int PollMs(int64_t us) {
  if (us <= 0) return 0;
  return static_cast<int>(std::min<int64_t>((us + 999) / 1000, 1 << 30));
}

// Set a thread-local for the duration of one call.
class ModeScope {
 public:
  explicit ModeScope(ConnectionMode mode) : saved_(t_mode) { t_mode = mode; }
  ~ModeScope() { t_mode = saved_; }
  ModeScope(const ModeScope&) = delete;
  ModeScope& operator=(const ModeScope&) = delete;

 private:
  ConnectionMode saved_;
};

void AddressOf(int fd, bool peer, std::string& ip, int& port) {
  sockaddr_storage addr{};
  socklen_t len = sizeof(addr);
  const int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len)
                      : getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  if (rc != 0) return;
  char text[INET6_ADDRSTRLEN] = {0};
  if (addr.ss_family == AF_INET) {
    const auto* a = reinterpret_cast<const sockaddr_in*>(&addr);
    inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    port = ntohs(a->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&addr);
    inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    port = ntohs(a->sin6_port);
  }
  ip = text;
}

/// A connection as httplib reads and writes it: buffered reads that stop at the request's
/// deadline and byte budget, writes that wait at most the write timeout for the client.
class SocketStream final : public httplib::Stream {
 public:
  SocketStream(int fd, int64_t write_timeout_us) : fd_(fd), write_timeout_us_(write_timeout_us) {}

  /// Start reading one request: it must arrive by `deadline_us` and within `budget` bytes.
  void StartRequest(int64_t deadline_us, size_t budget) {
    deadline_us_ = deadline_us;
    budget_ = budget;
  }
  /// Return true when bytes of a next request are already buffered (pipelining).
  bool buffered() const { return pos_ < end_; }
  /// Return true once a read or write failed: a timeout, a request over its budget, an error.
  /// The connection is then closed, whatever httplib answered.
  bool failed() const { return failed_; }

  bool is_readable() const override {
    if (buffered()) return true;
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, PollMs(deadline_us_ - NowUs())) > 0;
  }
  bool is_writable() const override {
    pollfd p{fd_, POLLOUT, 0};
    return poll(&p, 1, PollMs(write_timeout_us_)) > 0 && (p.revents & (POLLERR | POLLHUP)) == 0;
  }
  ssize_t read(char* ptr, size_t size) override {
    if (budget_ == 0) {  // the request is too large: httplib answers 400
      failed_ = true;
      return -1;
    }
    size = std::min(size, budget_);
    // Read first and poll only when nothing is there: a parked connection comes back with its
    // request already arrived.
    while (!buffered()) {
      const ssize_t n = ::recv(fd_, buf_.data(), buf_.size(), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) {
        if (!is_readable()) {
          failed_ = true;  // the request's deadline passed
          return -1;
        }
        continue;
      }
      if (n <= 0) {
        failed_ = n < 0;
        return n;
      }
      pos_ = 0;
      end_ = static_cast<size_t>(n);
    }
    const size_t n = std::min(size, end_ - pos_);
    std::memcpy(ptr, buf_.data() + pos_, n);
    pos_ += n;
    budget_ -= n;
    return static_cast<ssize_t>(n);
  }
  // Send what the socket takes now (httplib calls again for the rest), after waiting at most
  // the write timeout for room: a blocking send of a large body would wait for all of it. A
  // small first write (the headers) is held for the next (the body) or Flush().
  ssize_t write(const char* ptr, size_t size) override {
    if (held_.empty() && size <= kCoalesceBytes) {
      held_.assign(ptr, size);
      return static_cast<ssize_t>(size);
    }
    while (true) {
      std::array<iovec, 2> iov{iovec{held_.data(), held_.size()},
                               iovec{const_cast<char*>(ptr), size}};
      msghdr msg{};
      msg.msg_iov = held_.empty() ? &iov[1] : iov.data();
      msg.msg_iovlen = held_.empty() ? 1 : 2;
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        const size_t sent = static_cast<size_t>(n);
        if (sent < held_.size()) {  // httplib calls again with the same bytes
          held_.erase(0, sent);
          return 0;
        }
        const size_t of_this = sent - held_.size();
        held_.clear();
        return static_cast<ssize_t>(of_this);
      }
      if (errno == EAGAIN && !is_writable()) {  // no room: wait for the client, bounded
        failed_ = true;
        return -1;
      }
      if (errno != EAGAIN && errno != EINTR) {
        failed_ = true;
        return -1;
      }
    }
  }
  /// Send what write() still holds; false (and failed()) when the client does not take it
  /// within the write timeout.
  bool Flush() {
    while (!held_.empty()) {
      if (!is_writable()) {
        failed_ = true;
        return false;
      }
      const ssize_t n = ::send(fd_, held_.data(), held_.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        held_.erase(0, static_cast<size_t>(n));
      } else if (errno != EAGAIN && errno != EINTR) {
        failed_ = true;
        return false;
      }
    }
    return true;
  }
  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    AddressOf(fd_, true, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    AddressOf(fd_, false, ip, port);
  }
  socket_t socket() const override { return fd_; }

 private:
  int fd_;
  int64_t write_timeout_us_;
  int64_t deadline_us_ = 0;
  size_t budget_ = 0;
  std::array<char, 4096> buf_{};
  size_t pos_ = 0, end_ = 0;
  std::string held_;  // a small write not sent yet
  bool failed_ = false;
};

// Close after draining what the client still sends (bounded), so that it sees the response.
void LingeringClose(int fd) {
  ::shutdown(fd, SHUT_WR);
  const int64_t deadline = NowUs() + kLingerUs;
  char sink[4096];
  size_t drained = 0;
  while (drained < kLingerBytes) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, PollMs(deadline - NowUs())) <= 0) break;
    const ssize_t n = ::recv(fd, sink, sizeof(sink), 0);
    if (n <= 0) break;
    drained += static_cast<size_t>(n);
  }
  ::close(fd);
}

}  // namespace

ConnectionMode CurrentMode() { return t_mode; }

ConnectionQueue::ConnectionQueue(int workers, int max_queued, Counters* counters)
    : max_queued_(static_cast<size_t>(max_queued)), counters_(counters) {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (epoll_fd_ >= 0 && wake_fd_ >= 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = wake_fd_;
    epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_fd_, &ev);
    parker_thread_ = std::thread([this] { Parker(); });
  } else {
    park_closed_ = true;  // without epoll, connections close between requests
  }
  for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Worker(); });
  overflow_thread_ = std::thread([this] { Overflow(); });
}

ConnectionQueue::~ConnectionQueue() {
  shutdown();
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void ConnectionQueue::Park(int fd, int64_t idle_us, std::function<void()> resume) {
  std::lock_guard<std::mutex> lock(park_mu_);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.fd = fd;
  // A connection parked before stays in the set, disarmed (EPOLLONESHOT), until it is closed:
  // re-arm it; a new one (or a number reused after a close) is added.
  if (park_closed_ || (epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev) != 0 &&
                       epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0)) {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
    return;
  }
  parked_[fd] = Parked{NowUs() + idle_us, std::move(resume)};
}

void ConnectionQueue::Parker() {
  std::array<epoll_event, 64> events{};
  std::vector<std::function<void()>> ready;
  while (true) {
    const int n =
        epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), kParkSweepMs);
    if (n < 0 && errno != EINTR) break;
    {
      std::lock_guard<std::mutex> lock(park_mu_);
      if (park_closed_) break;
      for (int i = 0; i < n; ++i) {
        const int fd = events[static_cast<size_t>(i)].data.fd;
        auto it = parked_.find(fd);
        if (fd == wake_fd_ || it == parked_.end()) continue;
        // Disarmed by EPOLLONESHOT: it stays in the set until a worker parks it again.
        ready.push_back(std::move(it->second.resume));
        parked_.erase(it);
      }
      const int64_t now = NowUs();
      for (auto it = parked_.begin(); it != parked_.end();) {
        if (it->second.deadline_us > now) {
          ++it;
          continue;
        }
        epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->first, nullptr);
        ::shutdown(it->first, SHUT_RDWR);
        ::close(it->first);
        it = parked_.erase(it);
      }
    }
    // Readable (a request, or the client closing): a worker reads which.
    for (auto& job : ready) enqueue(std::move(job));
    ready.clear();
  }
}

void ConnectionQueue::enqueue(std::function<void()> fn) {
  std::unique_lock<std::mutex> lock(mu_);
  if (!shutdown_ && queue_.size() < idle_ + max_queued_) {
    queue_.push_back(std::move(fn));
    CountQueuedLocked();
    lock.unlock();
    work_cv_.notify_one();
    return;
  }
  if (!shutdown_ && !overflow_busy_) {
    overflow_busy_ = true;
    counters_->refusing.store(true, std::memory_order_relaxed);
    overflow_job_ = std::move(fn);
    lock.unlock();
    overflow_cv_.notify_one();
    return;
  }
  lock.unlock();
  counters_->dropped.fetch_add(1, std::memory_order_relaxed);
  ModeScope scope(ConnectionMode::kClose);
  fn();
}

void ConnectionQueue::Worker() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    ++idle_;
    work_cv_.wait(lock, [this] { return !queue_.empty() || shutdown_; });
    --idle_;
    if (queue_.empty()) return;  // shut down, nothing left
    std::function<void()> job = std::move(queue_.front());
    queue_.pop_front();
    CountQueuedLocked();
    const ConnectionMode mode = shutdown_ ? ConnectionMode::kClose : ConnectionMode::kServe;
    lock.unlock();
    {
      ModeScope scope(mode);
      job();
    }
    job = nullptr;
    lock.lock();
  }
}

void ConnectionQueue::Overflow() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    overflow_cv_.wait(lock, [this] { return overflow_job_ != nullptr || shutdown_; });
    if (overflow_job_ == nullptr) return;
    std::function<void()> job = std::move(overflow_job_);
    overflow_job_ = nullptr;
    const ConnectionMode mode = shutdown_ ? ConnectionMode::kClose : ConnectionMode::kReject;
    lock.unlock();
    {
      ModeScope scope(mode);
      job();
    }
    job = nullptr;
    lock.lock();
    overflow_busy_ = false;
    counters_->refusing.store(false, std::memory_order_relaxed);
  }
}

void ConnectionQueue::shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return;
    shutdown_ = true;
  }
  {
    // Parked connections close at once, and connections parked from now on as well.
    std::lock_guard<std::mutex> lock(park_mu_);
    park_closed_ = true;
    for (auto& [fd, parked] : parked_) {
      ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
    }
    parked_.clear();
    uint64_t one = 1;
    if (wake_fd_ >= 0) [[maybe_unused]]
      ssize_t n = ::write(wake_fd_, &one, sizeof(one));
  }
  if (parker_thread_.joinable()) parker_thread_.join();
  work_cv_.notify_all();
  overflow_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
  if (overflow_thread_.joinable()) overflow_thread_.join();
}

void ConnectionQueue::CountQueuedLocked() {
  counters_->queued.store(static_cast<int64_t>(queue_.size() > idle_ ? queue_.size() - idle_ : 0),
                          std::memory_order_relaxed);
}

void BoundedServer::CloseAfterResponse() { t_close_after = true; }

bool BoundedServer::SetBacklog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }

bool BoundedServer::process_and_close_socket(socket_t sock) {
  // Headers and body go out in separate writes: without TCP_NODELAY the body would wait for
  // the client's delayed ACK of the headers (40 ms on Linux).
  int one = 1;
  setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  Serve(sock, 0);
  return true;
}

void BoundedServer::Serve(socket_t sock, int served) {
  const ConnectionMode mode = t_mode;
  if (mode == ConnectionMode::kClose) {
    ::close(sock);
    return;
  }
  ConnectionQueue* queue = queue_.load();
  const int64_t read_timeout = mode == ConnectionMode::kReject
                                   ? std::min(options_.read_timeout_us, kRejectReadTimeoutUs)
                                   : options_.read_timeout_us;
  SocketStream stream(sock, options_.write_timeout_us);
  bool linger = false;
  for (bool first = true; svr_sock_ != INVALID_SOCKET; ++served, first = false) {
    if (!stream.buffered()) {
      if (!first && mode == ConnectionMode::kServe && queue != nullptr) {
        // Between two requests the connection holds no worker: it waits in the queue's epoll
        // set and comes back as a job when its next request arrives. (A connection with a
        // pipelined request buffered is served on: the buffer lives in this call.)
        queue->Park(sock, options_.keep_alive_timeout_us,
                    [this, sock, served] { Serve(sock, served); });
        return;
      }
      // Otherwise a new connection, or a parked one that came back readable: its request
      // must arrive within the read timeout (SocketStream::read waits for it).
    }
    stream.StartRequest(NowUs() + read_timeout,
                        kMaxHeaderBytes + static_cast<size_t>(options_.max_request_bytes));
    const bool last = mode == ConnectionMode::kReject ||
                      served + 1 >= options_.keep_alive_max_requests || svr_sock_ == INVALID_SOCKET;
    bool closed_by_client = false;
    t_close_after = false;
    bool ok = process_request(stream, last, closed_by_client, nullptr);
    ok = stream.Flush() && ok;  // whatever it answered, a 400 as well
    linger = t_close_after;
    if (!ok || last || closed_by_client || t_close_after || stream.failed()) break;
  }
  t_close_after = false;
  if (linger) {
    LingeringClose(sock);
  } else {
    ::shutdown(sock, SHUT_RDWR);
    ::close(sock);
  }
}

}  // namespace sluice::serve::internal
