#pragma once

// Redis connection URLs: parsing, and the redacted form every message and log line uses.

#include <string>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice::redis {

inline constexpr int kDefaultRedisPort = 6379;

/// The parts of a `redis://[user][:password]@host[:port][/db]` URL, percent-decoded.
struct RedisUrl {
  std::string host;
  int port = kDefaultRedisPort;
  int db = 0;
  std::string user;      ///< Empty: the default user (AUTH with the password alone).
  std::string password;  ///< Empty: no AUTH. Never put this in a message; see RedactUrl.
};

/// Parse `url` of the form `redis://[user][:password]@host[:port][/db]` (an IPv6 host in
/// brackets; user and password may be percent-encoded). Port defaults to 6379 and db to 0.
/// Anything else is kConfigError naming the redacted URL and what is wrong: another scheme
/// (`rediss://`: no TLS in hiredis 0.14; `unix://`), an empty host, a port that is not a
/// number in 1..65535, a db that is not a non-negative number, a query string or a bad
/// percent escape.
Result<RedisUrl> ParseRedisUrl(std::string_view url);

/// Return `url` with its password replaced by "***" (`redis://user:***@host:6379/0`). Works
/// on text that does not parse too, masking whatever lies between the userinfo's ':' and the
/// last '@' before the path, so a malformed URL never leaks its password either.
std::string RedactUrl(std::string_view url);

}  // namespace sluice::redis
