#include "sluice/connectors/postgres/parallel_writes.h"

namespace sluice::pg_sink {

ParallelWrites::ParallelWrites(int threads, WriteFn write)
    : write_(std::move(write)), threads_count_(static_cast<size_t>(threads)) {
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this, i] { Run(i); });
}

ParallelWrites::~ParallelWrites() {
  {
    std::unique_lock lock(mu_);
    changed_.wait(lock, [this] { return queue_.empty() && busy_ == 0; });
    stop_ = true;
  }
  changed_.notify_all();
  for (auto& t : threads_) t.join();
}

Status ParallelWrites::Submit(BatchPtr batch, AckSet acks) {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return !error_.ok() || busy_ + queue_.size() <= threads_count_; });
  if (!error_.ok()) {
    acks.Fail();
    return error_;
  }
  queue_.push_back(Job{std::move(batch), std::move(acks)});
  lock.unlock();
  changed_.notify_all();
  return Status::OK();
}

Status ParallelWrites::Drain() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] { return queue_.empty() && busy_ == 0; });
  return error_;
}

void ParallelWrites::Run(int worker) {
  std::unique_lock lock(mu_);
  while (true) {
    changed_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_
    Job job = std::move(queue_.front());
    queue_.pop_front();
    if (!error_.ok()) {  // the run is failing: write nothing more
      job.acks.Fail();
      lock.unlock();
      changed_.notify_all();
      job = Job{};  // drop the batch outside the lock
      lock.lock();
      continue;
    }
    ++busy_;
    lock.unlock();
    Status st = write_(*job.batch, worker);
    if (st.ok()) {
      job.acks.Release();
    } else {
      job.acks.Fail();
    }
    job = Job{};
    lock.lock();
    --busy_;
    if (!st.ok() && error_.ok()) error_ = std::move(st);
    changed_.notify_all();
  }
}

}  // namespace sluice::pg_sink
