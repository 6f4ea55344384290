#pragma once

// HTTP/1.1 as the server reads and writes it (RFC 9112): the request line and headers of a
// request, parsed from the bytes received, and the status line and headers of a response. No
// I/O here: connections.cc reads and writes the sockets, and the fuzzer (fuzz/http_fuzz.cc)
// feeds these functions any bytes.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::serve {

/// Largest request line and headers together, with the empty line that ends them.
inline constexpr size_t kMaxRequestHeadBytes = 64 * 1024;
/// Most header fields a request may have.
inline constexpr size_t kMaxRequestHeaders = 100;

/// One header field of a request: views into the bytes parsed.
struct HttpHeader {
  std::string_view name;
  std::string_view value;  ///< Without the whitespace around it.
};

/// The request line and headers of one request, as views into the bytes given to
/// ParseRequestHead (they live as long as those bytes).
struct RequestHead {
  std::string_view method;  ///< A token, case-sensitive ("GET").
  std::string_view target;  ///< As sent: "/path?query", "*" or "http://host/path?query".
  std::string_view path;    ///< The target's path, without the query ("/" for "http://host").
  std::string_view query;   ///< After '?', undecoded; "" for none.
  int minor_version = 1;    ///< 0 for HTTP/1.0, 1 for HTTP/1.1.
  std::vector<HttpHeader> headers;
  /// The body's length by Content-Length (0 without one); INT64_MAX when the number is too
  /// large to hold.
  int64_t content_length = 0;
  bool transfer_encoding = false;  ///< A Transfer-Encoding was sent (chunked, say).
  bool keep_alive = true;          ///< The client keeps the connection (by version, Connection).
  bool expect_continue = false;    ///< Expect: 100-continue.
  size_t size = 0;                 ///< Bytes of the head, through its empty line.

  /// Return the value of the first header named `name` (any case), "" when there is none.
  std::string_view Header(std::string_view name) const;
};

/// Why a request head was refused: the status to answer and a line saying why.
struct HeadError {
  int status = 0;           ///< 0: no error; else 400, 431 or 505.
  std::string_view reason;  ///< Static text, e.g. "malformed request line".
};

/// Find where a request head ends in bytes that arrive in pieces. Feed it the whole buffer each
/// time (the same bytes as before and maybe more); it resumes where it stopped, so a head
/// trickled a byte at a time costs linear time.
class HeadScanner {
 public:
  /// Return the head's size (through its empty line) once `bytes` hold all of it, else 0.
  /// Empty lines before the request line belong to the head (RFC 9112 2.2 ignores them).
  size_t Scan(std::string_view bytes);
  /// Forget the bytes seen, for the next request.
  void Reset() { *this = HeadScanner(); }

 private:
  size_t searched_ = 0;    // bytes already searched for '\n'
  size_t line_start_ = 0;  // where the line being scanned starts
  bool any_line_ = false;  // a non-empty line was seen
};

/// Parse `head`, a whole request head (as HeadScanner::Scan measures it) into `*out`. Lines end
/// in CRLF or LF. Return an error for a malformed request line or header (400: bad syntax,
/// obsolete line folding, a Content-Length that is not a number or disagrees with another one,
/// Content-Length and Transfer-Encoding together), an unsupported version (505) or too many or
/// too large headers (431).
HeadError ParseRequestHead(std::string_view head, RequestHead* out);

/// Return the reason phrase of `status` ("Not Found"); "Unknown" for a code not listed.
std::string_view ReasonPhrase(int status);

/// Append "HTTP/1.1 <status> <reason>\r\n" to `out`.
void AppendStatusLine(int status, std::string* out);

/// Append "<name>: <value>\r\n" to `out`.
void AppendHeader(std::string_view name, std::string_view value, std::string* out);

/// Return true when `name` and `value` are a valid header field (a token, and no CR, LF or
/// NUL in the value): what the server writes must not end its headers early.
bool IsValidHeaderField(std::string_view name, std::string_view value);

/// Return true when `a` and `b` are equal ignoring ASCII case.
bool EqualsNoCase(std::string_view a, std::string_view b);

}  // namespace sluice::serve
