#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "sluice/connectors/postgres/pg_connection.h"
#include "sluice/resilience/clock.h"

namespace sluice::pg {

/// How a PgPool opens, keeps and checks its connections.
struct PgPoolOptions {
  int min_size = 0;  ///< Idle connections kept open (opened by Make, never reaped).
  int max_size = 4;  ///< Connections open at once, leased or idle.
  int64_t max_idle_us = 300'000'000;        ///< Close idle connections beyond min_size after this.
  int64_t max_lifetime_us = 3'600'000'000;  ///< Close any connection this old on its return.
  /// Ping a connection that sat idle longer than this before handing it out (0: always).
  /// Every checkout also checks it locally (IsHealthy), which needs no round trip.
  int64_t health_check_idle_us = 1'000'000;
  int64_t connect_timeout_us = kDefaultConnectTimeoutUs;
  int64_t acquire_timeout_us = 30'000'000;  ///< Wait for a free slot at most this long.
  Clock* clock = nullptr;                   ///< Null: SystemClock(). For max_idle/max_lifetime.
  /// Run on each new connection before it is first handed out (session settings such as a
  /// statement timeout); an error closes it and fails that Acquire. Called on the acquiring
  /// thread, without the pool's lock.
  std::function<Status(PgConnection*)> on_connect;
};

/// Counters of a pool, for tests and the run summary.
struct PgPoolStats {
  int open = 0;           ///< Connections open (leased + idle) or being opened.
  int idle = 0;           ///< Connections waiting in the pool.
  int leased = 0;         ///< Connections handed out.
  int64_t connects = 0;   ///< Connections ever opened.
  int64_t reuses = 0;     ///< Checkouts served by an idle connection.
  int64_t discarded = 0;  ///< Connections closed as broken, expired or unhealthy.
};

class PgPool;

/// A connection borrowed from a PgPool; returns it on destruction. Move-only. Use it from one
/// thread at a time. A connection left inside a transaction or COPY, or broken, is closed
/// instead of being returned.
class PgLease {
 public:
  PgLease() = default;
  PgLease(PgLease&& other) noexcept = default;
  PgLease& operator=(PgLease&& other) noexcept;
  ~PgLease() { Release(); }

  PgConnection* get() const { return conn_.get(); }
  PgConnection* operator->() const { return conn_.get(); }
  PgConnection& operator*() const { return *conn_; }
  explicit operator bool() const { return conn_ != nullptr; }

  /// Close the connection instead of returning it (after an error that may have left it in an
  /// unknown state). The pool opens a new one when needed.
  void Discard();
  /// Return the connection to the pool now (same as destroying the lease).
  void Release();

 private:
  friend class PgPool;
  PgLease(std::shared_ptr<PgPool> pool, std::unique_ptr<PgConnection> conn, int64_t created_us)
      : pool_(std::move(pool)), conn_(std::move(conn)), created_us_(created_us) {}

  std::shared_ptr<PgPool> pool_;
  std::unique_ptr<PgConnection> conn_;
  int64_t created_us_ = 0;
};

/// A pool of connections to one DSN. Thread-safe: any thread may Acquire, and a lease may be
/// released on any thread. There is no background thread: idle and lifetime limits are applied
/// whenever a connection is acquired or returned. Leases keep the pool alive.
///
/// One pool per database: PgPool::ForDsn returns the pool every node using the same DSN in
/// this process shares (nodes hold it by shared_ptr; it closes when the last one lets go).
class PgPool : public std::enable_shared_from_this<PgPool> {
 public:
  /// Return a new pool for `dsn`, having opened min_size connections (so a bad DSN or an
  /// unreachable server fails here, within connect_timeout).
  static Result<std::shared_ptr<PgPool>> Make(std::string dsn, PgPoolOptions options);
  /// Return the process-wide pool for `dsn`, making it on first use. The first caller's
  /// options hold, except that max_size grows to the largest any caller asked for.
  static Result<std::shared_ptr<PgPool>> ForDsn(const std::string& dsn,
                                                const PgPoolOptions& options);

  ~PgPool();
  PgPool(const PgPool&) = delete;
  PgPool& operator=(const PgPool&) = delete;

  /// Borrow a healthy connection: an idle one (checked; pinged if it sat idle longer than
  /// health_check_idle_us; replaced if broken) or a new one while fewer than max_size are
  /// open; otherwise wait up to acquire_timeout_us (kTimeout) for one to come back.
  Result<PgLease> Acquire();

  PgPoolStats stats() const;
  const std::string& description() const { return description_; }

 private:
  friend class PgLease;
  struct Idle {
    std::unique_ptr<PgConnection> conn;
    int64_t created_us;
    int64_t returned_us;
  };

  PgPool(std::string dsn, PgPoolOptions options);
  void Return(std::unique_ptr<PgConnection> conn, int64_t created_us, bool discard);
  /// Move idle connections past max_idle_us (beyond min_size) or max_lifetime_us to `out`.
  void TakeExpiredLocked(int64_t now, std::vector<std::unique_ptr<PgConnection>>* out);
  void GrowMaxSize(int max_size);

  const std::string dsn_;
  const std::string description_;
  PgPoolOptions options_;  // max_size guarded by mu_
  Clock* clock_;

  mutable std::mutex mu_;
  std::condition_variable returned_;
  std::deque<Idle> idle_;  // guarded by mu_; most recently returned at the back
  PgPoolStats stats_;      // guarded by mu_
};

}  // namespace sluice::pg
