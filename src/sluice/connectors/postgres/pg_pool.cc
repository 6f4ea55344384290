#include "sluice/connectors/postgres/pg_pool.h"

#include <chrono>
#include <map>

namespace sluice::pg {

PgLease& PgLease::operator=(PgLease&& other) noexcept {
  if (this != &other) {
    Release();
    pool_ = std::move(other.pool_);
    conn_ = std::move(other.conn_);
    created_us_ = other.created_us_;
  }
  return *this;
}

void PgLease::Discard() {
  if (conn_ == nullptr) return;
  pool_->Return(std::move(conn_), created_us_, /*discard=*/true);
  pool_.reset();
}

void PgLease::Release() {
  if (conn_ == nullptr) return;
  pool_->Return(std::move(conn_), created_us_, /*discard=*/false);
  pool_.reset();
}

PgPool::PgPool(std::string dsn, PgPoolOptions options)
    : dsn_(std::move(dsn)),
      description_(DescribeDsn(dsn_)),
      options_(options),
      clock_(options.clock != nullptr ? options.clock : SystemClock()) {
  if (options_.max_size < 1) options_.max_size = 1;
  if (options_.min_size > options_.max_size) options_.min_size = options_.max_size;
}

PgPool::~PgPool() = default;

Result<std::shared_ptr<PgPool>> PgPool::Make(std::string dsn, PgPoolOptions options) {
  std::shared_ptr<PgPool> pool(new PgPool(std::move(dsn), options));
  std::vector<PgLease> warm;
  for (int i = 0; i < pool->options_.min_size; ++i) {
    SLUICE_ASSIGN_OR_RETURN(PgLease lease, pool->Acquire());
    warm.push_back(std::move(lease));
  }
  return pool;  // `warm` returns its connections to the pool as it goes out of scope
}

Result<std::shared_ptr<PgPool>> PgPool::ForDsn(const std::string& dsn,
                                               const PgPoolOptions& options) {
  static std::mutex registry_mu;
  static std::map<std::string, std::weak_ptr<PgPool>> registry;  // guarded by registry_mu
  {
    std::lock_guard<std::mutex> lock(registry_mu);
    if (auto pool = registry[dsn].lock()) {
      pool->GrowMaxSize(options.max_size);
      return pool;
    }
  }
  // Connect outside the registry lock: a slow server must not hold up other databases.
  SLUICE_ASSIGN_OR_RETURN(std::shared_ptr<PgPool> made, Make(dsn, options));
  std::lock_guard<std::mutex> lock(registry_mu);
  if (auto pool = registry[dsn].lock()) {  // another thread won the race: use its pool
    pool->GrowMaxSize(options.max_size);
    return pool;
  }
  registry[dsn] = made;
  return made;
}

void PgPool::GrowMaxSize(int max_size) {
  std::lock_guard<std::mutex> lock(mu_);
  if (max_size > options_.max_size) {
    options_.max_size = max_size;
    returned_.notify_all();
  }
}

void PgPool::TakeExpiredLocked(int64_t now, std::vector<std::unique_ptr<PgConnection>>* out) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    const bool too_old = now - it->created_us >= options_.max_lifetime_us;
    const bool idle_too_long =
        now - it->returned_us >= options_.max_idle_us && stats_.open > options_.min_size;
    if (too_old || idle_too_long) {
      out->push_back(std::move(it->conn));
      it = idle_.erase(it);
      --stats_.idle;
      --stats_.open;
      ++stats_.discarded;
    } else {
      ++it;
    }
  }
}

Result<PgLease> PgPool::Acquire() {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::microseconds(options_.acquire_timeout_us);
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    const int64_t now = clock_->NowMicros();
    std::vector<std::unique_ptr<PgConnection>> expired;
    TakeExpiredLocked(now, &expired);
    if (!idle_.empty()) {
      Idle idle = std::move(idle_.back());
      idle_.pop_back();
      --stats_.idle;
      ++stats_.leased;
      lock.unlock();
      expired.clear();
      bool healthy = idle.conn->IsHealthy();
      if (healthy && now - idle.returned_us >= options_.health_check_idle_us) {
        healthy = idle.conn->Ping().ok();
      }
      if (healthy) {
        lock.lock();
        ++stats_.reuses;
        return PgLease(shared_from_this(), std::move(idle.conn), idle.created_us);
      }
      idle.conn.reset();
      lock.lock();
      --stats_.leased;
      --stats_.open;
      ++stats_.discarded;
      continue;
    }
    if (stats_.open < options_.max_size) {
      ++stats_.open;
      ++stats_.leased;
      lock.unlock();
      expired.clear();
      auto conn = PgConnection::Connect(dsn_, options_.connect_timeout_us);
      if (conn.ok() && options_.on_connect) {
        if (Status set = options_.on_connect(conn->get()); !set.ok()) conn = std::move(set);
      }
      lock.lock();
      if (!conn.ok()) {
        --stats_.open;
        --stats_.leased;
        returned_.notify_one();
        return conn.status();
      }
      ++stats_.connects;
      return PgLease(shared_from_this(), std::move(conn).ValueOrDie(), clock_->NowMicros());
    }
    if (returned_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        stats_.open >= options_.max_size) {
      return Status::Timeout("PostgreSQL at {}: all {} pooled connections stayed busy for {} ms",
                             description_, options_.max_size, options_.acquire_timeout_us / 1000);
    }
  }
}

void PgPool::Return(std::unique_ptr<PgConnection> conn, int64_t created_us, bool discard) {
  const int64_t now = clock_->NowMicros();
  // IsHealthy may read from the socket: outside the lock.
  const bool keep = !discard && now - created_us < options_.max_lifetime_us && conn->IsHealthy();
  {
    std::lock_guard<std::mutex> lock(mu_);
    --stats_.leased;
    if (keep) {
      idle_.push_back(Idle{std::move(conn), created_us, now});
      ++stats_.idle;
    } else {
      --stats_.open;
      ++stats_.discarded;
    }
  }
  returned_.notify_one();
  conn.reset();  // closes a discarded connection outside the lock
}

PgPoolStats PgPool::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

}  // namespace sluice::pg
