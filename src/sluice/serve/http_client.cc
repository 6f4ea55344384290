#include "sluice/serve/http_client.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <fmt/format.h>

#include "sluice/io/compression.h"
#include "sluice/serve/http_wire.h"

namespace sluice::serve {

namespace {

// A reply beyond this is refused rather than held in memory (`sluice top` reads a run's state,
// a few KiB).
constexpr size_t kMaxReplyBytes = 64 << 20;

int64_t NowUs() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Wait up to `timeout_us` for `events` on `fd`; false on a timeout.
bool WaitFor(int fd, short events, int64_t timeout_us) {
  pollfd p{fd, events, 0};
  const int64_t deadline = NowUs() + timeout_us;
  while (true) {
    const int64_t left = deadline - NowUs();
    const int rc = poll(&p, 1, static_cast<int>(std::max<int64_t>(0, (left + 999) / 1000)));
    if (rc >= 0 || errno != EINTR) return rc > 0;
  }
}

// A socket connected to `host`:`port` within `timeout_us`, or why not.
Result<int> Connect(const std::string& host, int port, int64_t timeout_us) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* addresses = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &addresses);
  if (rc != 0) return Status::Unavailable("{}", gai_strerror(rc));
  int error = ECONNREFUSED;
  for (const addrinfo* a = addresses; a != nullptr; a = a->ai_next) {
    const int fd =
        ::socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) {
      error = errno;
      continue;
    }
    int result = ::connect(fd, a->ai_addr, a->ai_addrlen) == 0 ? 0 : errno;
    if (result == EINPROGRESS) {
      socklen_t len = sizeof(result);
      result = !WaitFor(fd, POLLOUT, timeout_us)                          ? ETIMEDOUT
               : getsockopt(fd, SOL_SOCKET, SO_ERROR, &result, &len) != 0 ? errno
                                                                          : result;
    }
    if (result == 0) {
      freeaddrinfo(addresses);
      return fd;
    }
    error = result;
    ::close(fd);
  }
  freeaddrinfo(addresses);
  return Status::Unavailable("{}", std::strerror(error));
}

// Decode a chunked body (RFC 9112 7.1), ignoring extensions and trailers.
bool DecodeChunked(std::string_view in, std::string* out) {
  while (true) {
    const size_t nl = in.find('\n');
    if (nl == std::string_view::npos) return false;
    const std::string_view line = in.substr(0, nl);
    in.remove_prefix(nl + 1);
    uint64_t size = 0;
    size_t digits = 0;
    for (char c : line) {
      const int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) break;
      if (++digits > 15) return false;
      size = size * 16 + static_cast<uint64_t>(d);
    }
    if (digits == 0) return false;
    if (size == 0) return true;
    if (in.size() < size) return false;
    out->append(in.substr(0, size));
    in.remove_prefix(size);
    if (in.starts_with("\r\n")) {
      in.remove_prefix(2);
    } else if (in.starts_with("\n")) {
      in.remove_prefix(1);
    } else {
      return false;
    }
  }
}

// Parse a whole reply (status line, headers, body as received) into `*reply`.
Status ParseReply(std::string_view bytes, size_t head_size, HttpReply* reply) {
  std::string_view head = bytes.substr(0, head_size);
  while (head.starts_with("\r\n") || head.starts_with("\n")) {
    head.remove_prefix(head.front() == '\r' ? 2 : 1);
  }
  const size_t eol = head.find('\n');
  const std::string_view status_line = head.substr(0, eol);
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (status_line.size() < 12 || !status_line.starts_with("HTTP/1.") || status_line[8] != ' ' ||
      !digit(status_line[9]) || !digit(status_line[10]) || !digit(status_line[11])) {
    return Status::IOError("not an HTTP/1.x reply: '{}'", status_line.substr(0, 80));
  }
  reply->status =
      (status_line[9] - '0') * 100 + (status_line[10] - '0') * 10 + (status_line[11] - '0');
  bool chunked = false;
  bool gzip = false;
  int64_t length = -1;
  head.remove_prefix(eol + 1);
  while (!head.empty()) {
    const size_t end = head.find('\n');
    std::string_view line = head.substr(0, end);
    head.remove_prefix(end == std::string_view::npos ? head.size() : end + 1);
    if (line.ends_with('\r')) line.remove_suffix(1);
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string_view name = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    if (EqualsNoCase(name, "Content-Type")) {
      reply->content_type = std::string(value);
    } else if (EqualsNoCase(name, "Transfer-Encoding")) {
      chunked = EqualsNoCase(value, "chunked");
    } else if (EqualsNoCase(name, "Content-Encoding")) {
      gzip = EqualsNoCase(value, "gzip") || EqualsNoCase(value, "x-gzip");
    } else if (EqualsNoCase(name, "Content-Length")) {
      length = std::strtoll(std::string(value).c_str(), nullptr, 10);
    }
  }
  std::string_view body = bytes.substr(head_size);
  std::string decoded;
  if (chunked) {
    if (!DecodeChunked(body, &decoded)) return Status::IOError("malformed chunked body");
    body = decoded;
  } else if (length >= 0) {
    if (body.size() < static_cast<size_t>(length)) {
      return Status::IOError("the connection closed after {} of {} body bytes", body.size(),
                             length);
    }
    body = body.substr(0, static_cast<size_t>(length));
  }
  if (gzip) {
    auto plain = io::Decompress(io::Codec::kGzip, body);
    if (!plain.ok()) return plain.status().WithContext("decompressing the gzip body");
    reply->body = std::move(*plain);
  } else {
    reply->body = std::string(body);
  }
  return Status::OK();
}

// The first Content-Length of a head, or -1.
int64_t ContentLength(std::string_view head) {
  size_t pos = 0;
  while (true) {
    const size_t nl = head.find('\n', pos);
    if (nl == std::string_view::npos) return -1;
    pos = nl + 1;
    const std::string_view rest = head.substr(pos);
    constexpr std::string_view kName = "content-length:";
    if (rest.size() > kName.size() && EqualsNoCase(rest.substr(0, kName.size()), kName)) {
      return std::strtoll(std::string(rest.substr(kName.size(), 24)).c_str(), nullptr, 10);
    }
  }
}

}  // namespace

Result<HttpReply> HttpGet(const std::string& host, int port, std::string_view path,
                          int64_t timeout_us) {
  const bool v6 = host.find(':') != std::string::npos;
  const std::string authority =
      v6 ? fmt::format("[{}]:{}", host, port) : fmt::format("{}:{}", host, port);
  const std::string where = fmt::format("GET http://{}{}", authority, path);
  auto connected = Connect(host, port, timeout_us);
  if (!connected.ok()) return connected.status().WithContext("{}", where);
  const int fd = *connected;
  const std::string request = fmt::format(
      "GET {} HTTP/1.1\r\nHost: {}\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
      path.empty() ? std::string_view("/") : path, authority);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN && WaitFor(fd, POLLOUT, timeout_us)) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return Status::Unavailable("{}: sending the request: {}", where, std::strerror(error));
    }
    sent += static_cast<size_t>(n);
  }
  // Read until the server closes the connection, or the body by Content-Length is complete.
  std::string bytes;
  HeadScanner scanner;
  size_t head_size = 0;
  int64_t length = -1;
  char buf[16384];
  while (true) {
    if (head_size > 0 && length >= 0 && bytes.size() - head_size >= static_cast<size_t>(length)) {
      break;
    }
    const ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      bytes.append(buf, static_cast<size_t>(n));
      if (bytes.size() > kMaxReplyBytes) {
        ::close(fd);
        return Status::IOError("{}: the reply exceeds {} bytes", where, kMaxReplyBytes);
      }
      if (head_size == 0 && (head_size = scanner.Scan(bytes)) > 0) {
        length = ContentLength(std::string_view(bytes).substr(0, head_size));
      }
      continue;
    }
    if (n == 0) break;
    if (errno == EINTR) continue;
    const int error = errno == EAGAIN ? (WaitFor(fd, POLLIN, timeout_us) ? 0 : ETIMEDOUT) : errno;
    if (error == 0) continue;
    ::close(fd);
    return Status::Unavailable("{}: reading the reply: {}", where, std::strerror(error));
  }
  ::close(fd);
  if (head_size == 0) {
    return Status::Unavailable("{}: the connection closed before a complete reply ({} bytes)",
                               where, bytes.size());
  }
  HttpReply reply;
  SLUICE_RETURN_NOT_OK(ParseReply(bytes, head_size, &reply).WithContext("{}", where));
  return reply;
}

}  // namespace sluice::serve
