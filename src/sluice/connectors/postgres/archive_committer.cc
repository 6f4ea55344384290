#include "sluice/connectors/postgres/archive_committer.h"

namespace sluice::pg_archive {

Committer::Committer(size_t threads, std::function<Status(InFlight&)> commit)
    : commit_(std::move(commit)) {
  for (size_t k = 0; k < threads; ++k) threads_.push_back(std::make_unique<Thread>());
  for (size_t k = 0; k < threads; ++k) {
    threads_[k]->thread = std::thread([this, k] { Loop(k); });
  }
}

void Committer::Submit(InFlight f) {
  Thread& t = *threads_[f.committer];
  {
    std::lock_guard<std::mutex> lock(mu_);
    t.queue.push_back(std::move(f));
  }
  t.cv.notify_one();
}

Status Committer::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

void Committer::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  for (auto& t : threads_) {
    t->cv.notify_all();
    if (t->thread.joinable()) t->thread.join();
  }
}

void Committer::Loop(size_t k) {
  Thread& t = *threads_[k];
  while (true) {
    InFlight f;
    bool failed;
    {
      std::unique_lock<std::mutex> lock(mu_);
      t.cv.wait(lock, [&] { return stopping_ || !t.queue.empty(); });
      if (t.queue.empty()) return;  // stopping, and everything settled
      f = std::move(t.queue.front());
      t.queue.pop_front();
      failed = !error_.ok();
    }
    Status st;
    if (failed) {
      if (f.conn) st = f.conn->Rollback();
    } else {
      st = commit_(f);
    }
    f.conn.Release();  // back to the pool (closed if still in a transaction)
    if (!st.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      if (error_.ok()) error_ = std::move(st);
    }
  }
}

}  // namespace sluice::pg_archive
