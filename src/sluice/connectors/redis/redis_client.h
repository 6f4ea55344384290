#pragma once

// A hiredis connection with sluice's error model. Every failure is a Status whose message names
// the server by its redacted URL (never the password) and the command. The code says whether
// it is worth retrying: a lost connection (I/O error, EOF) is kUnavailable and a command that
// got no reply in time kTimeout, both retryable, and the connection is dropped so that the
// next call connects again; an error reply from the server (-WRONGTYPE, -NOGROUP, ...) is
// permanent and leaves the connection open, except the few that say the server will answer
// soon (-LOADING after a restart, -BUSY, ...: see ClassifyRedisError).

#include <hiredis/hiredis.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "sluice/connectors/redis/flat_reply.h"
#include "sluice/connectors/redis/redis_url.h"
#include "sluice/core/result.h"
#include "sluice/resilience/circuit_breaker.h"
#include "sluice/resilience/clock.h"
#include "sluice/resilience/retry_policy.h"

namespace sluice::redis {

/// A non-owning view of one reply or one element of an array reply. Valid while the
/// RedisReply that owns it lives.
class RedisValue {
 public:
  explicit RedisValue(const redisReply* reply) : reply_(reply) {}

  /// Return the hiredis type: REDIS_REPLY_STRING, _ARRAY, _INTEGER, _NIL, _STATUS or _ERROR.
  int type() const { return reply_->type; }
  bool is_nil() const { return reply_->type == REDIS_REPLY_NIL; }
  bool is_error() const { return reply_->type == REDIS_REPLY_ERROR; }
  bool is_array() const { return reply_->type == REDIS_REPLY_ARRAY; }
  /// Return the bytes of a string, status or error reply (binary-safe; empty for other types).
  std::string_view str() const {
    return reply_->str == nullptr ? std::string_view() : std::string_view(reply_->str, reply_->len);
  }
  /// Return the value of an integer reply (0 for other types).
  int64_t integer() const { return reply_->type == REDIS_REPLY_INTEGER ? reply_->integer : 0; }
  /// Return the number of elements of an array reply (0 for other types).
  size_t size() const { return reply_->type == REDIS_REPLY_ARRAY ? reply_->elements : 0; }
  /// Return element `i` of an array reply; `i` < size().
  RedisValue operator[](size_t i) const { return RedisValue(reply_->element[i]); }
  const redisReply* raw() const { return reply_; }

 private:
  const redisReply* reply_;
};

/// An owned reply (freeReplyObject exactly once, on destruction). Move-only; a moved-from or
/// default-constructed reply holds nothing and must not be read.
class RedisReply {
 public:
  RedisReply() = default;
  explicit RedisReply(redisReply* reply) : reply_(reply) {}

  bool has_value() const { return reply_ != nullptr; }
  RedisValue value() const { return RedisValue(reply_.get()); }
  int type() const { return value().type(); }
  bool is_nil() const { return value().is_nil(); }
  bool is_error() const { return value().is_error(); }
  bool is_array() const { return value().is_array(); }
  std::string_view str() const { return value().str(); }
  int64_t integer() const { return value().integer(); }
  size_t size() const { return value().size(); }
  RedisValue operator[](size_t i) const { return value()[i]; }

 private:
  struct Free {
    void operator()(redisReply* r) const { freeReplyObject(r); }
  };
  std::unique_ptr<redisReply, Free> reply_;
};

/// Return the code for an error reply `message` ("WRONGTYPE Operation against ..."), by its
/// first word: LOADING, BUSY, TRYAGAIN, MASTERDOWN and CLUSTERDOWN (the server will answer
/// again soon) are kUnavailable; NOAUTH, WRONGPASS and NOPERM kPermissionDenied; NOGROUP
/// kNotFound; anything else (WRONGTYPE, ERR, BUSYGROUP, ...) kInvalidArgument.
StatusCode ClassifyRedisError(std::string_view message);

/// How to reach a server and how long to wait for it.
struct RedisOptions {
  std::string url;                          ///< redis://[user][:password]@host[:port][/db]
  int64_t connect_timeout_us = 5'000'000;   ///< Per connection attempt.
  int64_t command_timeout_us = 10'000'000;  ///< Per reply read or request written; 0: none.
  std::string password;                     ///< When non-empty, used instead of the URL's.
  /// Retries of WithRetry. The defaults ride out a server restart or failover of up to about
  /// 30 s (waits of 0.1, 0.2, 0.4, 0.8, 1.6 s, then 2 s each; 20 attempts in all).
  RetryPolicy retry = {.initial_us = 100'000, .max_us = 2'000'000, .max_attempts = 20};
  /// The breaker of WithRetry: after 5 failed attempts in a row, attempts are refused at once
  /// (as kUnavailable) until one probe per recovery_timeout succeeds. Shorter than the
  /// backoff by then (1.6 s, 2 s), so that each of WithRetry's later attempts is a probe and
  /// a server that is back is found at the next one, not one refused wait later.
  CircuitBreakerOptions breaker = {.failure_threshold = 5, .recovery_timeout_us = 1'000'000};
};

/// One connection to a Redis server (RAII over redisContext*), reconnecting on demand.
///
/// Not thread-safe: one client per node instance, used from that instance's thread only.
/// After a connection-level failure the connection is dropped; the next Command or Append
/// connects again (AUTH, SELECT), so a caller only has to retry — WithRetry does that.
class RedisClient {
 public:
  ~RedisClient();
  RedisClient(const RedisClient&) = delete;
  RedisClient& operator=(const RedisClient&) = delete;

  /// Parse `options.url` and connect (one attempt, no retry). `clock` (not owned; outlives the
  /// client) times WithRetry's backoff and breaker; `cancelled` (may be null; outlives the
  /// client) ends WithRetry's waits early. Errors: a bad URL is kConfigError; an unreachable
  /// server kUnavailable or kTimeout; a wrong password kPermissionDenied; a db the server does
  /// not have kConfigError.
  static Result<std::unique_ptr<RedisClient>> Make(const RedisOptions& options,
                                                   Clock* clock = SystemClock(),
                                                   const std::atomic<bool>* cancelled = nullptr);

  /// Send one command (argv[0] is its name; every argument binary-safe) and return its reply.
  /// Connects first when the connection was dropped. An error reply becomes a Status (see
  /// ClassifyRedisError) naming the command; nil, arrays etc. are returned as they are. Must
  /// not be called while appended commands await their replies (kInternal); an empty `argv` is
  /// kInvalidArgument.
  Result<RedisReply> Command(const std::vector<std::string_view>& argv);

  /// Queue one command for a pipeline, without sending it yet (connects first when needed).
  /// Its reply is read by Replies() or Reply(). The arguments are copied.
  Status Append(const std::vector<std::string_view>& argv);
  /// Send every appended command and read the replies of the first `n` (in order; n <= the
  /// number appended and not yet read). Error replies are returned in place as replies, so
  /// one failed command does not hide the others' results (see ReplyError). On a
  /// connection-level failure the connection is dropped with every command still awaiting a
  /// reply: the caller appends them again.
  Result<std::vector<RedisReply>> Replies(size_t n);
  /// Send every appended command and read the reply of the next one, as Replies(1) does: for
  /// callers that keep what was answered before a connection-level failure (every command
  /// from this one on is then dropped unanswered, and may or may not have run).
  Result<RedisReply> Reply();
  /// Read the reply of the next appended command into `out` as a flat list of tokens, with no
  /// allocation per element (for large replies: stream reads). Otherwise as Reply(): an error
  /// reply is returned in place (FlatReply::error), a connection-level failure drops the
  /// connection with every command awaiting a reply.
  Status ReplyFlat(FlatReply* out);
  /// Send every appended command now, without reading a reply (read them later with Reply or
  /// Replies): for commands whose answer can wait while the caller goes on (XACK). On a
  /// connection-level failure the connection is dropped with every command awaiting a reply.
  Status Send();
  /// Return the number of appended commands whose replies have not been read.
  size_t pending() const { return pending_names_.size() - pending_read_; }

  /// Return the Status for `reply` when it is an error reply to `command`, else OK.
  Status ReplyError(const RedisReply& reply, std::string_view command) const;
  Status ReplyError(const FlatReply& reply, std::string_view command) const;

  /// Call `op` (returning Status or Result<T>) until it succeeds, through RetryPolicy and the
  /// client's CircuitBreaker: a retryable failure (the connection was lost or timed out, and
  /// dropped) sleeps the backoff and tries again, connecting anew. `op` must be safe to run
  /// again: idempotent commands, or pipelines that append everything anew (a command whose
  /// reply was lost may have run). Error replies are not retried, except those
  /// ClassifyRedisError calls kUnavailable (-LOADING, -BUSY, ...).
  template <class F>
  auto WithRetry(F&& op) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    return Retry(
        options_.retry, clock_,
        [&]() -> R {
          if (!breaker_.Allow()) {
            return R(Status::Unavailable("{}: circuit breaker open after {} failures in a row",
                                         where_, breaker_.consecutive_failures()));
          }
          R result = op();
          if (retry_internal::StatusOf(result).IsRetryable()) {
            breaker_.RecordFailure();
          } else {
            breaker_.RecordSuccess();  // OK or an error reply: the server answers
          }
          return result;
        },
        &retry_stats_, cancelled_);
  }

  /// Send PING (one attempt): OK when the server answers PONG.
  Status Ping();

  /// Return true while a connection is open (it may still turn out to be dead on use).
  bool connected() const { return context_ != nullptr; }
  /// Return the URL with its password masked, for messages.
  const std::string& where() const { return where_; }
  /// Return how many connections were opened, the first included.
  int64_t connects() const { return connects_; }
  /// Return how many of them replaced a connection that was lost or timed out (each is
  /// logged as a warning: "<url>: reconnected <n> ms after: <what was lost>").
  int64_t reconnects() const { return reconnects_; }
  const RetryStats& retry_stats() const { return retry_stats_; }
  const CircuitBreaker& breaker() const { return breaker_; }

 private:
  RedisClient(RedisOptions options, RedisUrl url, Clock* clock, const std::atomic<bool>* cancelled);
  Status Connect();
  void Disconnect();
  Status EnsureConnected();
  /// Return the Status for the failure now recorded in context_ during `command`, and drop
  /// the connection.
  Status ConnectionError(std::string_view command, int saved_errno);
  /// Run one command on the open connection during connection set-up (AUTH, SELECT).
  Status SetupCommand(const std::vector<std::string_view>& argv, std::string_view shown);
  void FillArgv(const std::vector<std::string_view>& argv);
  /// Read the reply of the next appended command (pending() > 0).
  Result<RedisReply> ReadReply();

  const RedisOptions options_;
  const RedisUrl url_;
  const std::string where_;  // RedactUrl(options_.url)
  Clock* const clock_;
  const std::atomic<bool>* const cancelled_;
  CircuitBreaker breaker_;
  RetryStats retry_stats_;
  redisContext* context_ = nullptr;
  int64_t connects_ = 0;
  int64_t reconnects_ = 0;
  // Why and when (clock_) the last connection was dropped (a ConnectionError's message);
  // cleared on reconnect.
  std::string lost_;
  int64_t lost_at_us_ = 0;
  // Names of the appended commands (for messages), and how many of them Replies has read.
  std::vector<std::string> pending_names_;
  size_t pending_read_ = 0;
  // Scratch arrays for hiredis's argv calls, reused between calls.
  std::vector<const char*> argv_;
  std::vector<size_t> argv_len_;
};

}  // namespace sluice::redis
