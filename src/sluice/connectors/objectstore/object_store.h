#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/result.h"
#include "sluice/io/sha256.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/clock.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice {

/// What a store knows about one object.
struct ObjectInfo {
  std::string key;
  int64_t size = 0;
  std::string etag;  ///< Opaque; its shape differs between stores (do not verify with it).
};

/// A flat namespace of objects (an S3 bucket, a local directory). Keys are relative paths
/// ("a/b/c.jsonl.gz"): no leading '/', no empty, "." or ".." segments (see ValidateObjectKey).
/// Implementations are thread-safe: one store is shared by a node's threads.
class ObjectStore {
 public:
  virtual ~ObjectStore() = default;
  /// Store `data` under `key`, replacing any object there; readers see the old object or the
  /// new one, never a part (S3 uploads above the store's multipart threshold in parallel parts).
  virtual Status Put(const std::string& key, std::string_view data) = 0;
  /// Return the size and ETag of the object at `key`; NotFound if there is none.
  virtual Result<ObjectInfo> Head(const std::string& key) = 0;
  /// Stream the object at `key` to `sink` in chunks, in order, each byte exactly once (memory
  /// stays constant whatever the object size). A non-OK Status from `sink` stops the transfer
  /// and is returned as is. NotFound if there is no object.
  virtual Status Get(const std::string& key,
                     const std::function<Status(std::string_view)>& sink) = 0;
  /// Return every object whose key starts with `prefix`, sorted by key.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;
  /// Remove the object at `key`; removing an absent object is OK (as in S3).
  virtual Status Delete(const std::string& key) = 0;
  /// Return where the store points, for messages: "s3://bucket" or "file:///dir". Never holds
  /// credentials.
  virtual std::string Describe() const = 0;

  /// Return how many requests were retried after a retryable failure, in total.
  virtual int64_t retries() const { return 0; }
  /// Return how many times the store's circuit breaker opened, in total.
  virtual int64_t breaker_trips() const { return 0; }
  /// Return true while the store's circuit breaker is open (requests fail fast).
  virtual bool breaker_open() const { return false; }
};

/// A parsed object store URL: `s3://bucket[/prefix]`, `file:///dir` or a plain directory path.
struct ObjectStoreUrl {
  enum class Scheme : uint8_t { kS3, kLocal };
  Scheme scheme = Scheme::kLocal;
  std::string bucket;  ///< S3: the bucket; empty for a local store.
  std::string root;    ///< Local: the directory; empty for S3.
  /// S3: the key prefix after the bucket, without leading or trailing '/' (may be empty); the
  /// store addresses the whole bucket, so callers prepend it to their keys (JoinKey).
  std::string prefix;
};

/// Parse `url`. An s3 URL needs a bucket; `file://` must be followed by an absolute path.
/// Errors are InvalidArgument naming the URL.
Result<ObjectStoreUrl> ParseObjectStoreUrl(std::string_view url);

/// Return `prefix` + "/" + `key`, or `key` when the prefix is empty (slashes not doubled).
std::string JoinKey(std::string_view prefix, std::string_view key);

/// Return an InvalidArgument error unless `key` is a valid object key: non-empty, at most 1024
/// bytes, no NUL, no leading or trailing '/', no empty, "." or ".." segment.
Status ValidateObjectKey(std::string_view key);

/// Everything needed to open a store. The S3 fields are ignored by a local store.
struct ObjectStoreOptions {
  /// `s3://bucket[/prefix]`, `file:///dir` or a directory path.
  std::string url;

  /// S3 endpoint, e.g. "http://127.0.0.1:9000"; empty means AWS
  /// (https://s3.<region>.amazonaws.com).
  std::string endpoint;
  /// Signing region; empty: $AWS_REGION, then $AWS_DEFAULT_REGION, then us-east-1.
  std::string region;
  /// Path-style URLs (endpoint/bucket/key, what s3rver and MinIO want) rather than
  /// virtual-hosted ones (bucket.endpoint/key).
  bool path_style = true;
  /// Credentials; empty: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN.
  /// Never logged nor put in error messages.
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;

  /// Objects larger than this are uploaded in parts (S3 multipart upload).
  int64_t multipart_threshold = int64_t{10} << 20;
  /// Size of each part but the last (S3 wants at least 5 MiB, at most 10 000 parts: larger
  /// objects get larger parts).
  int64_t part_size = int64_t{8} << 20;
  /// Parts uploaded at once.
  int upload_parallelism = 4;

  /// Time allowed to establish a connection.
  int64_t connect_timeout_us = 10'000'000;
  /// A request that moves no byte for this long is abandoned (kTimeout, retried).
  int64_t low_speed_time_us = 30'000'000;

  /// Retries of each request: 1 s doubling to 30 s, 0-10 % jitter, 5 attempts in total.
  /// The retry budget is not used: the circuit breaker protects a struggling server.
  RetryPolicy retry = DefaultRetryPolicy();
  /// Opens after 5 consecutive failed requests; probes after 60 s.
  CircuitBreakerOptions breaker;
  /// The clock retries sleep on (null: SystemClock()). Not owned.
  Clock* clock = nullptr;
  /// When set (not owned), retries stop waiting and transfers abort once it becomes true.
  const std::atomic<bool>* cancelled = nullptr;

  /// Return the default retry policy described above.
  static RetryPolicy DefaultRetryPolicy() {
    RetryPolicy p;
    p.initial_us = 1'000'000;
    p.max_us = 30'000'000;
    p.multiplier = 2.0;
    p.jitter = 0.1;
    p.max_attempts = 5;
    p.use_budget = false;
    return p;
  }
};

/// Open the store `options.url` points at: an S3 client, or a local directory (created by the
/// first Put). InvalidArgument for a bad URL, ConfigError for missing S3 credentials.
Result<std::unique_ptr<ObjectStore>> MakeObjectStore(const ObjectStoreOptions& options);

}  // namespace sluice
