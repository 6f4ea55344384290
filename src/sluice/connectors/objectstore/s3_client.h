#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/connectors/objectstore/object_store.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice {

/// Settings of an S3Client; see ObjectStoreOptions for the meaning of the shared fields.
struct S3Options {
  std::string bucket;
  std::string endpoint;  ///< Empty: https://s3.<region>.amazonaws.com.
  std::string region;    ///< Empty: $AWS_REGION, $AWS_DEFAULT_REGION, then us-east-1.
  bool path_style = true;
  std::string access_key_id;      ///< Empty: $AWS_ACCESS_KEY_ID.
  std::string secret_access_key;  ///< Empty: $AWS_SECRET_ACCESS_KEY.
  std::string session_token;      ///< Empty: $AWS_SESSION_TOKEN (may stay empty).
  int64_t multipart_threshold = int64_t{10} << 20;
  int64_t part_size = int64_t{8} << 20;
  int upload_parallelism = 4;
  int64_t connect_timeout_us = 10'000'000;
  int64_t low_speed_time_us = 30'000'000;
  RetryPolicy retry = ObjectStoreOptions::DefaultRetryPolicy();
  CircuitBreakerOptions breaker;
  Clock* clock = nullptr;  ///< Null: SystemClock().
  const std::atomic<bool>* cancelled = nullptr;
  /// curl CONNECT_TO entries ("host:port:connect-host:connect-port"): reach a host name at
  /// another address, e.g. virtual-hosted bucket names on a local server in tests.
  std::vector<std::string> connect_to;
};

/// An S3 (or S3-compatible) bucket over libcurl, signed with curl's built-in SigV4.
///
/// Every request goes through Retry() with the store's RetryPolicy and one CircuitBreaker per
/// store: server errors (5xx, 429, SlowDown), timeouts and connection failures are retried;
/// while the breaker is open requests fail at once with kUnavailable. Errors are one line
/// naming the operation, the object (s3://bucket/key) and S3's error code:
///   403 -> kPermissionDenied; 404 (NoSuchBucket, NoSuchKey) -> kNotFound; other 4xx ->
///   kInvalidArgument; 5xx, 429, connection failures -> kUnavailable; timeouts -> kTimeout.
/// Credentials never appear in messages or logs. Thread-safe: curl handles are pooled, and
/// every counter is atomic.
class S3Client final : public ObjectStore {
 public:
  /// Return a client for `options.bucket`. ConfigError when no credentials are given or found
  /// in the environment; InvalidArgument for a bad endpoint or part size. Connects lazily.
  static Result<std::unique_ptr<S3Client>> Make(S3Options options);
  ~S3Client() override;

  /// Store `data` with one PUT, or above multipart_threshold with a multipart upload whose
  /// parts go up upload_parallelism at a time (each retried on its own); a failed multipart
  /// upload is aborted so that no parts linger.
  Status Put(const std::string& key, std::string_view data) override;
  Result<ObjectInfo> Head(const std::string& key) override;
  /// Stream the object; a transfer that breaks is resumed with a Range request from the first
  /// byte not yet delivered, so `sink` sees each byte once.
  Status Get(const std::string& key, const std::function<Status(std::string_view)>& sink) override;
  /// ListObjects (version 1, paged by marker: s3rver cannot page version 2, and every
  /// S3-compatible server supports version 1), following pages to the end.
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Status Delete(const std::string& key) override;
  std::string Describe() const override;

  int64_t retries() const override;
  int64_t breaker_trips() const override;
  bool breaker_open() const override;
  /// Return the number of HTTP requests attempted (retries included).
  int64_t requests() const;
  /// Return the state of the circuit breaker.
  CircuitBreaker::State breaker_state() const;
  /// Return the settings in use, with credentials and region resolved (do not print them).
  const S3Options& options() const;

 private:
  class Impl;
  explicit S3Client(std::unique_ptr<Impl> impl);
  Status PutMultipart(const std::string& key, std::string_view data);

  std::unique_ptr<Impl> impl_;
};

/// Pieces of the S3 client exposed for unit tests.
namespace s3 {

/// The <Code> and <Message> of an S3 error document (empty when absent).
struct S3Error {
  std::string code;
  std::string message;
};

/// Parse an S3 <Error> XML document; missing elements are empty.
S3Error ParseError(std::string_view xml);

/// Map an HTTP response with a non-2xx `http_status` (and its body, possibly empty) to a
/// Status whose message reads "S3 <operation> <target>: HTTP <status> <Code>: <Message>".
Status StatusFromHttp(std::string_view operation, std::string_view target, long http_status,
                      std::string_view body);

/// Map a libcurl error `curl_code` (a CURLcode) to a Status naming the operation and target;
/// `detail` is curl's error buffer.
Status StatusFromCurl(std::string_view operation, std::string_view target, int curl_code,
                      std::string_view detail);

/// One page of a ListObjects (version 1 or 2) answer.
struct ListPage {
  std::vector<ObjectInfo> objects;
  bool truncated = false;
  /// Where the next page starts: <NextMarker> (v1) or <NextContinuationToken> (v2); empty when
  /// the answer has neither (a v1 answer without a delimiter: continue after the last key).
  std::string next_marker;
};

/// Parse a ListObjects <ListBucketResult> document (version 1 or 2).
Result<ListPage> ParseListObjects(std::string_view xml);

/// Return the text of the first <tag>...</tag> element of `xml`, entities decoded, or "".
std::string XmlText(std::string_view xml, std::string_view tag);

/// Percent-encode `s` as SigV4 wants (RFC 3986 unreserved characters kept), keeping '/' when
/// `keep_slash`.
std::string UriEncode(std::string_view s, bool keep_slash);

}  // namespace s3

}  // namespace sluice
