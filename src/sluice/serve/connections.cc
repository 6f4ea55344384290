#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "sluice/serve/connections_internal.h"

namespace sluice::serve::internal {

namespace {

thread_local ConnectionMode t_mode = ConnectionMode::kServe;

// The overflow thread waits at most this long for the request it refuses.
constexpr int64_t kRejectReadTimeoutUs = 1'000'000;
// After a response that left a body unread: how long and how much to drain before closing, so
// that the client reads the response instead of a connection reset.
constexpr int64_t kLingerUs = 500'000;
constexpr size_t kLingerBytes = 1 << 20;
// Bytes asked of the socket per read: a request line and headers usually arrive in one.
constexpr size_t kReadChunk = 4096;
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

/// One connection's bytes: reads buffered and bounded by a deadline, responses written with a
/// bounded wait for the client to take each part.
class Connection {
 public:
  Connection(int fd, int64_t write_timeout_us) : fd_(fd), write_timeout_us_(write_timeout_us) {}

  /// How reading a request head ended.
  enum class Read : uint8_t {
    kHead,     ///< A head was read and parsed.
    kEnd,      ///< The client closed the connection between requests.
    kFailed,   ///< The deadline passed, the connection failed or closed within a request.
    kInvalid,  ///< The head is malformed or too large (the HeadError says why).
  };

  /// Return true when bytes of a next request are already buffered (pipelining).
  bool buffered() const { return buf_.size() > start_; }

  /// Read the next request's head by `deadline_us` and parse it into `*head`, whose views stay
  /// valid until the next call. The previous request's head is dropped from the buffer.
  Read ReadHead(int64_t deadline_us, RequestHead* head, HeadError* error) {
    buf_.erase(0, start_);
    start_ = 0;
    scanner_.Reset();
    while (true) {
      const size_t size = scanner_.Scan(buf_);
      if (size > kMaxRequestHeadBytes || (size == 0 && buf_.size() >= kMaxRequestHeadBytes)) {
        *error = {431, "request line and headers exceed 64 KiB"};
        return Read::kInvalid;
      }
      if (size > 0) {
        start_ = size;
        *error = ParseRequestHead(std::string_view(buf_).substr(0, size), head);
        return error->status == 0 ? Read::kHead : Read::kInvalid;
      }
      if (!Fill(deadline_us)) return buf_.empty() && eof_ ? Read::kEnd : Read::kFailed;
    }
  }

  /// Read and drop the `length` bytes of a body by `deadline_us`, leaving the bytes after it
  /// (a pipelined request) buffered. Return false when they do not all arrive in time.
  bool SkipBody(int64_t length, int64_t deadline_us) {
    auto left = static_cast<size_t>(length);
    const size_t from_buffer = std::min(left, buf_.size() - start_);
    buf_.erase(start_, from_buffer);  // the head before `start_` stays where it is
    left -= from_buffer;
    std::array<char, kReadChunk> sink{};
    while (left > 0) {
      const ssize_t n = ::recv(fd_, sink.data(), std::min(left, sink.size()), MSG_DONTWAIT);
      if (n > 0) {
        left -= static_cast<size_t>(n);
      } else if (n == 0 || (errno != EINTR && (errno != EAGAIN || !WaitReadable(deadline_us)))) {
        return false;
      }
    }
    return true;
  }

  /// Send `head` then `body` in as few sendmsg calls as the socket allows (one, unless the
  /// client reads slowly), waiting at most the write timeout each time the socket is full.
  /// Return false when the client does not take a part in time or the connection failed.
  bool Write(std::string_view head, std::string_view body) {
    const size_t total = head.size() + body.size();
    size_t sent = 0;
    while (sent < total) {
      std::array<iovec, 2> iov{};
      size_t count = 0;
      if (sent < head.size()) {
        iov[count++] = {const_cast<char*>(head.data() + sent), head.size() - sent};
      }
      const size_t body_sent = sent > head.size() ? sent - head.size() : 0;
      if (body_sent < body.size()) {
        iov[count++] = {const_cast<char*>(body.data() + body_sent), body.size() - body_sent};
      }
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = count;
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n >= 0) {
        sent += static_cast<size_t>(n);
      } else if (errno != EINTR && (errno != EAGAIN || !WaitWritable())) {
        return false;
      }
    }
    return true;
  }

 private:
  // Append what the socket has to the buffer, waiting until `deadline_us` for something.
  // False at the deadline, on an error or at the end of the stream (eof_).
  bool Fill(int64_t deadline_us) {
    const size_t old = buf_.size();
    buf_.resize(old + kReadChunk);
    while (true) {
      // Read first and poll only when nothing is there: a parked connection comes back with its
      // request already arrived.
      const ssize_t n = ::recv(fd_, buf_.data() + old, kReadChunk, MSG_DONTWAIT);
      if (n > 0) {
        buf_.resize(old + static_cast<size_t>(n));
        return true;
      }
      if (n < 0 && (errno == EINTR || (errno == EAGAIN && WaitReadable(deadline_us)))) continue;
      eof_ = n == 0;
      buf_.resize(old);
      return false;
    }
  }
  bool WaitReadable(int64_t deadline_us) const {
    pollfd p{fd_, POLLIN, 0};
    return poll(&p, 1, PollMs(deadline_us - NowUs())) > 0;
  }
  bool WaitWritable() const {
    pollfd p{fd_, POLLOUT, 0};
    return poll(&p, 1, PollMs(write_timeout_us_)) > 0 && (p.revents & (POLLERR | POLLHUP)) == 0;
  }

  int fd_;
  int64_t write_timeout_us_;
  std::string buf_;   // bytes read: the current request's head, then what came after it
  size_t start_ = 0;  // where the bytes after the current head start
  HeadScanner scanner_;
  bool eof_ = false;
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
  Shutdown();
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
    for (auto& job : ready) Enqueue(std::move(job));
    ready.clear();
  }
}

void ConnectionQueue::Enqueue(std::function<void()> fn) {
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

void ConnectionQueue::Shutdown() {
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

void PreparedResponse::SetText(int code, std::string message) {
  status = code;
  text = std::move(message);
  body = text;
  headers.clear();
  AppendHeader("Content-Type", "text/plain; charset=utf-8", &headers);
  AppendHeader("Content-Length", std::to_string(text.size()), &headers);
}

void ConnectionLoop::Serve(int fd, int served) {
  const ConnectionMode mode = t_mode;
  if (mode == ConnectionMode::kClose) {
    ::close(fd);
    return;
  }
  const int64_t read_timeout = mode == ConnectionMode::kReject
                                   ? std::min(options_.read_timeout_us, kRejectReadTimeoutUs)
                                   : options_.read_timeout_us;
  Connection connection(fd, options_.write_timeout_us);
  RequestHead head;
  bool linger = false;
  for (bool first = true; running_.load(); ++served, first = false) {
    if (!connection.buffered() && !first && mode == ConnectionMode::kServe && queue_ != nullptr) {
      // Between two requests the connection holds no worker: it waits in the queue's epoll set
      // and comes back as a job when its next request arrives. (A connection with a pipelined
      // request buffered is served on: the buffer lives in this call.)
      queue_->Park(fd, options_.keep_alive_timeout_us, [this, fd, served] { Serve(fd, served); });
      return;
    }
    // A new connection, or a parked one that came back readable: its request must arrive
    // within the read timeout (a deadline for the whole request, not per read).
    const int64_t deadline = NowUs() + read_timeout;
    HeadError error;
    const Connection::Read read = connection.ReadHead(deadline, &head, &error);
    if (read == Connection::Read::kEnd || read == Connection::Read::kFailed) break;
    const bool valid = read == Connection::Read::kHead;
    // Bytes of this request may be left unread: close only after draining them, so that the
    // client reads the answer rather than a connection reset.
    bool unread = !valid;
    PreparedResponse response;
    if (!valid) {
      response.SetText(error.status, fmt::format("{} {}: {}\n", error.status,
                                                 ReasonPhrase(error.status), error.reason));
      response.close = true;
    } else if (mode == ConnectionMode::kReject) {
      counters_->rejected_busy.fetch_add(1, std::memory_order_relaxed);
      response.SetText(503,
                       "503 busy: every worker is answering a request and the queue is full\n");
      AppendHeader("Retry-After", "1", &response.headers);
      response.close = true;
      unread = head.content_length > 0 || head.transfer_encoding;
    } else if (head.transfer_encoding) {
      response.SetText(411,
                       "411 length required: a request body must come with a Content-Length "
                       "(chunked bodies are not read)\n");
      response.close = unread = true;
    } else if (head.content_length > options_.max_request_bytes) {
      counters_->too_large.fetch_add(1, std::memory_order_relaxed);
      response.SetText(413, fmt::format("413 request too large: at most {} bytes\n",
                                        options_.max_request_bytes));
      response.close = unread = true;
    } else {
      if (head.content_length > 0) {
        // Bodies within the limit are read and dropped: no route takes one.
        if (head.expect_continue && head.minor_version == 1 &&
            !connection.Write("HTTP/1.1 100 Continue\r\n\r\n", {})) {
          break;
        }
        if (!connection.SkipBody(head.content_length, deadline)) break;
      }
      dispatch_(head, &response);
    }
    const bool keep = valid && head.keep_alive && !response.close && running_.load() &&
                      mode == ConnectionMode::kServe &&
                      served + 1 < options_.keep_alive_max_requests;
    std::string wire;
    wire.reserve(response.headers.size() + 64);
    AppendStatusLine(response.status, &wire);
    wire += response.headers;
    if (!keep) {
      AppendHeader("Connection", "close", &wire);
    } else if (head.minor_version == 0) {
      AppendHeader("Connection", "keep-alive", &wire);
    }
    wire += "\r\n";
    const bool head_only = valid && head.method == "HEAD";
    if (!connection.Write(wire, head_only ? std::string_view() : response.body)) break;
    if (!keep) {
      linger = unread;
      break;
    }
  }
  if (linger) {
    LingeringClose(fd);
  } else {
    ::shutdown(fd, SHUT_RDWR);
    ::close(fd);
  }
}

}  // namespace sluice::serve::internal
