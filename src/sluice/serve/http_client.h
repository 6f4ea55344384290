#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice::serve {

/// What an HTTP GET answered.
struct HttpReply {
  int status = 0;
  std::string content_type;
  std::string body;  ///< Decompressed when the server sent gzip.
};

/// GET `path` from http://`host`:`port`, waiting at most `timeout_us` to connect and as long
/// for each read. Return kUnavailable when nothing answers (refused, timed out, cut), with the
/// address in the message; any HTTP status is a reply. For `sluice top` and tests; each call
/// opens its own connection.
Result<HttpReply> HttpGet(const std::string& host, int port, std::string_view path,
                          int64_t timeout_us = 5'000'000);

}  // namespace sluice::serve
