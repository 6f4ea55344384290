#include "sluice/serve/http_client.h"

#include <httplib.h>

namespace sluice::serve {

Result<HttpReply> HttpGet(const std::string& host, int port, std::string_view path,
                          int64_t timeout_us) {
  httplib::Client client(host, port);
  const auto sec = static_cast<time_t>(timeout_us / 1'000'000);
  const auto usec = static_cast<time_t>(timeout_us % 1'000'000);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
  auto res = client.Get(std::string(path));
  if (!res) {
    return Status::Unavailable("GET http://{}:{}{}: {}", host, port, path,
                               httplib::to_string(res.error()));
  }
  HttpReply reply;
  reply.status = res->status;
  reply.content_type = res->get_header_value("Content-Type");
  reply.body = std::move(res->body);
  return reply;
}

}  // namespace sluice::serve
