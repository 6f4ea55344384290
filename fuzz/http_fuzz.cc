// Fuzzes the server's request parsing (serve/http_wire.h): for any bytes, the first byte says
// where to split them in two reads. HeadScanner fed the two pieces must find the same head as
// fed the whole; ParseRequestHead must accept a head the scanner found with the same size or
// refuse it with 400, 431 or 505; an accepted head's views lie within the input, and writing it
// again in canonical form (CRLF, one space, "name: value") must parse to the same request.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/serve/http_wire.h"

namespace {

using sluice::serve::HeadScanner;
using sluice::serve::kMaxRequestHeadBytes;
using sluice::serve::kMaxRequestHeaders;
using sluice::serve::ParseRequestHead;
using sluice::serve::RequestHead;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Within(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void CheckSame(const RequestHead& a, const RequestHead& b) {
  Check(a.method == b.method && a.target == b.target && a.path == b.path && a.query == b.query);
  Check(a.minor_version == b.minor_version && a.content_length == b.content_length);
  Check(a.transfer_encoding == b.transfer_encoding && a.keep_alive == b.keep_alive);
  Check(a.expect_continue == b.expect_continue && a.headers.size() == b.headers.size());
  for (size_t i = 0; i < a.headers.size(); ++i) {
    Check(a.headers[i].name == b.headers[i].name && a.headers[i].value == b.headers[i].value);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t split = std::min<size_t>(data[0], input.size());

  HeadScanner whole;
  const size_t head_size = whole.Scan(input);
  HeadScanner pieces;
  size_t found = pieces.Scan(input.substr(0, split));
  if (found == 0) found = pieces.Scan(input);
  Check(found == head_size);
  Check(head_size <= input.size());

  // Whatever the bytes, parsing them as a head must not fail otherwise than by its result.
  RequestHead any;
  const auto any_error = ParseRequestHead(input, &any);
  Check(any_error.status == 0 || any_error.status == 400 || any_error.status == 431 ||
        any_error.status == 505);
  if (head_size == 0) {
    Check(any_error.status != 0);  // no complete head in the input
    return 0;
  }

  const std::string_view head_bytes = input.substr(0, head_size);
  RequestHead head;
  const auto error = ParseRequestHead(head_bytes, &head);
  Check(error.status == 0 || error.status == 400 || error.status == 431 || error.status == 505);
  Check(error.status == any_error.status);  // the bytes after the head do not matter
  if (error.status != 0) {
    Check(!error.reason.empty());
    return 0;
  }
  CheckSame(head, any);
  Check(head.size == head_size && head.size <= kMaxRequestHeadBytes);
  Check(!head.method.empty() && !head.target.empty() && !head.path.empty());
  Check(head.minor_version == 0 || head.minor_version == 1);
  Check(head.headers.size() <= kMaxRequestHeaders && head.content_length >= 0);
  Check(!(head.transfer_encoding && !head.Header("Content-Length").empty()));
  Check(Within(head.method, head_bytes) && Within(head.target, head_bytes));
  Check(Within(head.query, head_bytes));
  for (const auto& h : head.headers) {
    Check(Within(h.name, head_bytes) && Within(h.value, head_bytes));
    Check(sluice::serve::IsValidHeaderField(h.name, h.value));
  }

  std::string canonical = std::string(head.method) + " " + std::string(head.target) + " HTTP/1." +
                          std::to_string(head.minor_version) + "\r\n";
  for (const auto& h : head.headers) {
    canonical += std::string(h.name) + ": " + std::string(h.value) + "\r\n";
  }
  canonical += "\r\n";
  if (canonical.size() > kMaxRequestHeadBytes) return 0;
  HeadScanner again;
  Check(again.Scan(canonical) == canonical.size());
  RequestHead reparsed;
  Check(ParseRequestHead(canonical, &reparsed).status == 0);
  CheckSame(head, reparsed);
  Check(reparsed.size == canonical.size());
  return 0;
}
