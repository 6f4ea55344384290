#pragma once

// Loopback ports for tests of clients that must fail to connect.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sluice::testing {

/// A loopback TCP port that refuses every connection for as long as this object lives: a socket
/// is bound to it and never listens, so the kernel answers each connection attempt with a reset,
/// and no other socket can take the port meanwhile. (A port bound, closed and then connected to
/// could be taken in between by another test's socket.)
class RefusingPort {
 public:
  RefusingPort() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~RefusingPort() {
    if (fd_ >= 0) close(fd_);
  }
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;

  /// The port, or 0 when no socket could be bound.
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

}  // namespace sluice::testing
