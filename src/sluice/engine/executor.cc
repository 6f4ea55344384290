#include "sluice/engine/executor.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "sluice/core/log.h"

namespace sluice {

namespace {

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

int64_t ReadProcStatusKb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  int64_t kb = 0;
  const size_t klen = std::strlen(key);
  while (std::fgets(line, sizeof(line), f) != nullptr) {
    if (std::strncmp(line, key, klen) == 0) {
      kb = std::strtoll(line + klen, nullptr, 10);
      break;
    }
  }
  std::fclose(f);
  return kb;
}

/// Measures busy time of a node call into its stats; a call that handles one batch also goes
/// into the node's batch-latency histogram.
class BusyTimer {
 public:
  enum Kind { kOther, kBatch };
  explicit BusyTimer(NodeStats* stats, Kind kind = kOther)
      : stats_(stats), kind_(kind), start_(NowNs()) {}
  ~BusyTimer() {
    const int64_t elapsed = NowNs() - start_;
    stats_->busy_ns.fetch_add(elapsed, std::memory_order_relaxed);
    if (kind_ == kBatch && stats_->histograms) stats_->batch_latency.Record(elapsed);
  }

 private:
  NodeStats* stats_;
  Kind kind_;
  int64_t start_;
};

}  // namespace

int64_t PeakRssBytes() { return ReadProcStatusKb("VmHWM:") * 1024; }
int64_t CurrentRssBytes() { return ReadProcStatusKb("VmRSS:") * 1024; }

/// Restores input order after a transform ran on several instances at once.
struct PipelineRun::Reorderer {
  std::mutex mu;
  uint64_t next = 0;                                 // guarded by mu
  std::map<uint64_t, std::vector<Message>> pending;  // guarded by mu
  // Watermarks, guarded by mu. Instances sharing one channel see each marker once, in pop
  // order after everything popped before it: the node keeps each input's watermark here.
  std::vector<int64_t> input_wm;
  std::vector<int64_t> instance_wm;  // keyed nodes: what each instance passed on
  int64_t forwarded = kNoWatermark;  // the node's output watermark so far
};

namespace {

/// Raise `(*wm)[input]` to `watermark` and return the smallest over every input.
int64_t RaiseInput(std::vector<int64_t>* wm, int input, int64_t watermark) {
  int64_t& w = (*wm)[static_cast<size_t>(input)];
  w = std::max(w, watermark);
  return *std::min_element(wm->begin(), wm->end());
}

}  // namespace

/// Emitter for transforms: attaches the input's acks, lease and (to untagged outputs) tags to
/// outputs, and either pushes them downstream at once, collects them (ordered parallel), or
/// delivers them depth-first (sequential executor).
class PipelineRun::TransformEmitter final : public Emitter {
 public:
  enum class Mode { kPush, kCollect, kSequential };
  TransformEmitter(PipelineRun* run, size_t node, Mode mode)
      : run_(run), node_(node), mode_(mode) {}

  void SetInput(const Message* input) { input_ = input; }
  std::vector<Message>& collected() { return collected_; }

  Status Emit(BatchPtr batch) override {
    AckSet acks = input_ != nullptr ? input_->acks : AckSet();
    return Emit(std::move(batch), std::move(acks));
  }
  Status Emit(BatchPtr batch, AckSet acks) override {
    if (batch == nullptr || batch->num_rows() == 0) return Status::OK();
    // The input's tags (database, table, ...) describe what the transform made of it too, so
    // a transform that builds new batches need not copy them itself.
    if (batch->tags().empty() && input_ != nullptr && !input_->batch->tags().empty()) {
      batch = batch->WithTags(input_->batch->tags());
    }
    Message m;
    m.batch = std::move(batch);
    m.acks = std::move(acks);
    if (input_ != nullptr) m.lease = input_->lease;
    switch (mode_) {
      case Mode::kCollect:
        collected_.push_back(std::move(m));
        return Status::OK();
      case Mode::kPush:
        if (!run_->PushDownstream(node_, std::move(m))) {
          return Status::Cancelled("run cancelled");
        }
        return Status::OK();
      case Mode::kSequential:
        return run_->EmitSequential(node_, std::move(m));
    }
    return Status::OK();
  }
  AckSet HoldAcks() override { return input_ != nullptr ? input_->acks : AckSet(); }

 private:
  PipelineRun* run_;
  size_t node_;
  Mode mode_;
  const Message* input_ = nullptr;
  std::vector<Message> collected_;
};

PipelineRun::PipelineRun(Pipeline* pipeline, RunOptions options)
    : pipeline_(pipeline),
      options_(options),
      budget_(pipeline->spec().settings.memory_limit),
      clock_(options.clock != nullptr ? options.clock : SystemClock()) {
  const auto& nodes = pipeline_->nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    stats_.push_back(std::make_unique<NodeStats>());
    stats_.back()->histograms = options_.histograms;
    ack_queues_.push_back(std::make_shared<AckQueue>());
    channels_.emplace_back();
    partitioners_.emplace_back();
    if (n.kind() != NodeKind::kSource) {
      // A keyed transform's instances each read their own channel: the rows of their keys.
      const bool keyed = n.kind() == NodeKind::kTransform && n.spec.parallelism > 1 &&
                         !n.spec.partition_by.empty();
      if (keyed) {
        auto made = KeyPartitioner::Make(n.spec.partition_by, n.spec.parallelism);
        if (made.ok()) partitioners_.back() = std::move(*made);  // Build checked that it parses
      }
      const int count = partitioners_.back() != nullptr ? n.spec.parallelism : 1;
      for (int k = 0; k < count; ++k) {
        channels_.back().push_back(
            std::make_unique<Channel>(static_cast<size_t>(n.spec.queue_batches), n.spec.queue_bytes,
                                      static_cast<int>(n.inputs.size())));
      }
    }
    reorderers_.push_back(std::make_unique<Reorderer>());
    reorderers_.back()->input_wm.assign(std::max<size_t>(n.inputs.size(), 1), kNoWatermark);
    reorderers_.back()->instance_wm.assign(
        static_cast<size_t>(n.kind() == NodeKind::kTransform ? n.spec.parallelism : 1),
        kNoWatermark);
    const int instances = n.kind() == NodeKind::kTransform ? n.spec.parallelism : 1;
    live_instances_.push_back(std::make_unique<std::atomic<int>>(instances));
    node_contexts_.emplace_back();
    for (int k = 0; k < instances; ++k) {
      contexts_.push_back(std::make_unique<NodeContext>(n.spec.id, n.spec.type, stats_[i].get(),
                                                        &cancelled_, options_.dry_run));
      contexts_.back()->set_instance(k);
      contexts_.back()->set_stopping(&stopping_);
      contexts_.back()->set_clock(clock_);
      node_contexts_.back().push_back(contexts_.back().get());
    }
  }
  const int max_parallel = pipeline_->spec().settings.max_parallel_nodes;
  free_slots_ = max_parallel > 0 ? max_parallel : 0;
}

PipelineRun::~PipelineRun() = default;

size_t PipelineRun::QueueDepth(size_t node) const {
  size_t depth = 0;
  for (const auto& c : channels_[node]) depth += c->depth();
  return depth;
}

int64_t PipelineRun::ElapsedMicros() const {
  if (finished()) return elapsed_us_.load();
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               start_)
      .count();
}

int64_t PipelineRun::EstimatedRows() const {
  int64_t total = 0;
  for (const auto& n : pipeline_->nodes()) {
    if (n.kind() != NodeKind::kSource) continue;
    const int64_t e = n.source->EstimatedRows();
    if (e < 0) return -1;
    total += e;
  }
  return total;
}

void PipelineRun::Stop(const std::string& why) {
  {
    std::lock_guard lock(error_mu_);
    if (stopping_.load(std::memory_order_acquire)) return;
    stop_reason_ = why;
  }
  stopping_.store(true, std::memory_order_release);
}

std::string PipelineRun::stop_reason() const {
  std::lock_guard lock(error_mu_);
  return stop_reason_;
}

void PipelineRun::Cancel(const Status& why) {
  {
    std::lock_guard lock(error_mu_);
    if (first_error_.ok()) first_error_ = why.ok() ? Status::Cancelled("cancelled") : why;
  }
  if (cancelled_.exchange(true, std::memory_order_acq_rel)) return;
  // Ack queues first: from here on, any batch whose last reference drops (including those the
  // channels are about to discard) counts as not delivered.
  for (auto& q : ack_queues_) q->Cancel();
  budget_.Cancel();
  for (auto& node_channels : channels_) {
    for (auto& c : node_channels) c->Cancel();
  }
  { std::lock_guard lock(slot_mu_); }
  slot_cv_.notify_all();
}

void PipelineRun::AcquireSlot() {
  if (pipeline_->spec().settings.max_parallel_nodes <= 0) return;
  std::unique_lock lock(slot_mu_);
  slot_cv_.wait(lock, [&] { return free_slots_ > 0 || cancelled(); });
  --free_slots_;
}

void PipelineRun::ReleaseSlot() {
  if (pipeline_->spec().settings.max_parallel_nodes <= 0) return;
  {
    std::lock_guard lock(slot_mu_);
    ++free_slots_;
  }
  slot_cv_.notify_one();
}

Status PipelineRun::OpenNodes() {
  auto& nodes = pipeline_->nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    auto& n = nodes[i];
    Status st;
    switch (n.kind()) {
      case NodeKind::kSource:
        st = n.source->Open(node_contexts_[i][0]);
        break;
      case NodeKind::kTransform:
        for (size_t k = 0; k < n.transforms.size() && st.ok(); ++k) {
          st = n.transforms[k]->Open(node_contexts_[i][k]);
        }
        break;
      case NodeKind::kSink:
        st = n.sink->Open(node_contexts_[i][0]);
        break;
    }
    if (!st.ok()) {
      if (st.message().find("node '" + n.spec.id + "'") == std::string::npos) {
        st = st.WithContext("node '{}' ({})", n.spec.id, n.spec.type);
      }
      return st;
    }
  }
  return Status::OK();
}

Status PipelineRun::CloseNodes() {
  Status first;
  for (auto& n : pipeline_->nodes()) {
    Status st;
    switch (n.kind()) {
      case NodeKind::kSource:
        break;  // closed by its own loop
      case NodeKind::kTransform:
        for (auto& t : n.transforms) {
          Status s = t->Close();
          if (st.ok()) st = s;
        }
        break;
      case NodeKind::kSink:
        st = n.sink->Close();
        break;
    }
    if (!st.ok() && first.ok()) first = st.WithContext("node '{}': closing", n.spec.id);
  }
  return first;
}

Status PipelineRun::Execute() {
  start_ = std::chrono::steady_clock::now();
  Status st = OpenNodes();
  if (st.ok()) {
    // Watch for a stop or an interrupt (SIGINT/SIGTERM) and for an idle stream while the
    // executor runs.
    std::atomic<bool> done{false};
    std::thread watcher;
    if (options_.interrupt != nullptr || options_.stop != nullptr || options_.until_idle_us > 0) {
      watcher = std::thread([&] {
        while (!done.load()) {
          if (options_.interrupt != nullptr && options_.interrupt->load()) {
            Cancel(Status::Cancelled("interrupted"));
            return;
          }
          if (options_.stop != nullptr && options_.stop->load()) Stop("signal");
          if (options_.until_idle_us > 0 &&
              ElapsedMicros() - last_rows_us_.load(std::memory_order_relaxed) >=
                  options_.until_idle_us) {
            Stop("until-idle");
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      });
    }
    st = pipeline_->spec().settings.engine == EngineKind::kSequential ? ExecuteSequential()
                                                                      : ExecuteParallel();
    done = true;
    if (watcher.joinable()) watcher.join();
  } else {
    Cancel(st);
  }
  Status close_st = CloseNodes();
  {
    std::lock_guard lock(error_mu_);
    if (!first_error_.ok()) st = first_error_;
  }
  if (st.ok()) st = close_st;
  elapsed_us_ = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - start_)
                    .count();
  finished_.store(true, std::memory_order_release);
  return st;
}

// ---------------------------------------------------------------------------------------------
// Sources and acknowledgements (both executors).

void PipelineRun::SettleAcks(size_t node, int max_wait_ms, std::vector<uint64_t>* pending) {
  std::vector<AckQueue::Event> events;
  ack_queues_[node]->Drain(&events, max_wait_ms);
  if (events.empty()) return;
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  for (const auto& e : events) {
    auto it = std::find(pending->begin(), pending->end(), e.seq);
    if (it == pending->end()) continue;  // already settled (abandoned on cancel)
    pending->erase(it);
    // `delivered` was decided when the last reference dropped, before any cancellation: the
    // rows are durable, so the commit happens even if the run has been cancelled since.
    if (e.delivered) {
      BusyTimer busy(&stats);
      Status st = n.source->Commit(e.seq);
      if (!st.ok()) {
        stats.CountError(st.code());
        Cancel(
            st.WithContext("node '{}' ({}): committing batch {}", n.spec.id, n.spec.type, e.seq));
        continue;
      }
      stats.committed_batches.fetch_add(1, std::memory_order_relaxed);
    } else {
      n.source->Abandon(e.seq);
      stats.abandoned_batches.fetch_add(1, std::memory_order_relaxed);
    }
  }
}

void PipelineRun::FinishSourceAcks(size_t node, std::vector<uint64_t>* pending) {
  // Wait for every batch to be settled. Once the run is cancelled, nothing still pending can
  // be delivered any more (cancellation wins), so it is abandoned at once instead of waiting
  // for every downstream reference to be dropped.
  while (!pending->empty()) {
    SettleAcks(node, 50, pending);
    if (cancelled() && !pending->empty()) {
      SettleAcks(node, 0, pending);
      auto& n = pipeline_->nodes()[node];
      for (uint64_t seq : *pending) {
        n.source->Abandon(seq);
        stats_[node]->abandoned_batches.fetch_add(1, std::memory_order_relaxed);
      }
      pending->clear();
    }
  }
}

void PipelineRun::WaitForInFlightRoom(size_t node, bool sequential,
                                      std::vector<uint64_t>* pending) {
  const int limit = pipeline_->nodes()[node].source->MaxInFlight();
  if (limit <= 0) return;
  int idle_rounds = 0;
  while (!cancelled() && static_cast<int>(pending->size()) >= limit) {
    const size_t before = pending->size();
    SettleAcks(node, 20, pending);
    if (pending->size() < before) {
      idle_rounds = 0;
      continue;
    }
    // No ack for a while: the batches may sit in a sink that holds acks until it flushes.
    if (++idle_rounds < 3) continue;
    idle_rounds = 0;
    if (sequential) {
      for (size_t i = 0; i < pipeline_->nodes().size(); ++i) {
        auto& n = pipeline_->nodes()[i];
        if (n.kind() != NodeKind::kSink) continue;
        Status st = n.sink->Flush();
        if (!st.ok()) Cancel(st.WithContext("node '{}' ({}): flushing", n.spec.id, n.spec.type));
      }
    } else {
      flush_generation_.fetch_add(1, std::memory_order_acq_rel);
    }
  }
}

void PipelineRun::RunSourceLoop(size_t node, bool sequential) {
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  const std::shared_ptr<AckQueue>& queue = ack_queues_[node];
  std::vector<uint64_t> pending;
  uint64_t seq = 0;
  int64_t estimate = 0;
  int64_t last_wm = kNoWatermark;  // the source's watermark last passed on
  // A stop ends the loop as the end of the input would: what was handed out drains, is
  // flushed and committed.
  while (!cancelled() && !stopping()) {
    SettleAcks(node, 0, &pending);
    WaitForInFlightRoom(node, sequential, &pending);
    if (cancelled() || stopping()) break;
    if (!budget_.Acquire(estimate)) break;  // cancelled while waiting for memory
    Result<BatchPtr> next = Status::Internal("unset");
    AcquireSlot();
    {
      BusyTimer busy(&stats, BusyTimer::kBatch);
      next = n.source->Next(seq);
    }
    ReleaseSlot();
    if (!next.ok()) {
      budget_.Release(estimate);
      stats.CountError(next.status().code());
      Status st = next.status();
      if (st.code() != StatusCode::kCancelled || !cancelled()) {
        Cancel(st.message().find("node '") == std::string::npos
                   ? st.WithContext("node '{}' ({})", n.spec.id, n.spec.type)
                   : st);
      }
      break;
    }
    BatchPtr batch = std::move(*next);
    if (sequential) RunDueTimersSequential();
    if (batch == nullptr) {
      budget_.Release(estimate);
      break;
    }
    if (stats.histograms) stats.batch_rows.Record(batch->num_rows());
    if (batch->num_rows() > 0) last_rows_us_.store(ElapsedMicros(), std::memory_order_relaxed);
    const int64_t size = batch->ByteSize();
    budget_.Adjust(size - estimate);
    estimate = size;
    auto lease = std::make_shared<MemoryLease>(&budget_, size);
    const uint64_t this_seq = seq++;
    if (batch->num_rows() == 0) {
      // Nothing to deliver: settled at once.
      Status st = n.source->Commit(this_seq);
      if (!st.ok()) {
        Cancel(st.WithContext("node '{}': committing batch {}", n.spec.id, this_seq));
        break;
      }
      if (!PassSourceWatermark(node, sequential, &last_wm)) break;
      continue;
    }
    if (sequential) {  // the parallel path counts in PushDownstream
      stats.rows_out.fetch_add(batch->num_rows(), std::memory_order_relaxed);
      stats.bytes_out.fetch_add(size, std::memory_order_relaxed);
      stats.batches_out.fetch_add(1, std::memory_order_relaxed);
    }
    pending.push_back(this_seq);
    Message m;
    m.batch = std::move(batch);
    m.acks = AckSet(std::make_shared<AckHandle>(queue, this_seq));
    m.lease = std::move(lease);
    if (sequential) {
      Status st = EmitSequential(node, std::move(m));
      if (!st.ok()) {
        Cancel(st);
        break;
      }
    } else if (!PushDownstream(node, std::move(m))) {
      break;
    }
    if (!PassSourceWatermark(node, sequential, &last_wm)) break;
  }
  if (sequential && !cancelled()) {
    // The source has ended: its outputs' inputs no longer hold back their watermarks.
    Status st = EmitSequential(node, Message::Watermark(INT64_MAX));
    if (!st.ok()) Cancel(st);
  }
  if (!sequential) NodeInstanceDone(node);
  if (!sequential) FinishSourceAcks(node, &pending);
  // The sequential executor settles acks after the downstream Finish/Flush (see below), so it
  // hands `pending` over by leaving it in the source's queue.
  if (sequential) {
    sequential_pending_[node] = std::move(pending);
    return;
  }
  Status st = n.source->Close();
  if (!st.ok()) Cancel(st.WithContext("node '{}': closing", n.spec.id));
}

// ---------------------------------------------------------------------------------------------
// Parallel executor.

bool PipelineRun::PassSourceWatermark(size_t node, bool sequential, int64_t* last) {
  const int64_t wm = pipeline_->nodes()[node].source->Watermark();
  if (wm <= *last) return true;
  *last = wm;
  stats_[node]->watermark_us.store(wm, std::memory_order_relaxed);
  if (!sequential) return PushDownstream(node, Message::Watermark(wm));
  Status st = EmitSequential(node, Message::Watermark(wm));
  if (!st.ok()) Cancel(st);
  return st.ok();
}

bool PipelineRun::ForwardWatermark(size_t node, int64_t watermark) {
  Reorderer& r = *reorderers_[node];
  {
    std::lock_guard lock(r.mu);
    if (watermark <= r.forwarded) return true;
    r.forwarded = watermark;
  }
  stats_[node]->watermark_us.store(watermark, std::memory_order_relaxed);
  // Markers never wait for room, so pushing cannot block; two instances racing may pass on
  // two rising values out of order, which the consumer's max absorbs.
  return PushDownstream(node, Message::Watermark(watermark));
}

bool PipelineRun::PushDownstream(size_t node, Message m) {
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  if (!m.is_watermark()) {
    stats.rows_out.fetch_add(m.batch->num_rows(), std::memory_order_relaxed);
    stats.bytes_out.fetch_add(m.batch->ByteSize(), std::memory_order_relaxed);
    stats.batches_out.fetch_add(1, std::memory_order_relaxed);
  }
  const size_t fan = n.outputs.size();
  for (size_t k = 0; k < fan; ++k) {
    Message copy = (k + 1 == fan) ? std::move(m) : m;
    copy.input = n.output_ports[k];
    const auto to = static_cast<size_t>(n.outputs[k]);
    int64_t blocked = 0;
    bool ok = true;
    if (copy.is_watermark()) {
      for (auto& c : channels_[to]) ok = c->Push(copy, &blocked) && ok;  // every instance
    } else if (partitioners_[to] == nullptr) {
      ok = channels_[to][0]->Push(std::move(copy), &blocked);
    } else {
      // Each instance of a keyed consumer gets the rows of its keys, with the same acks.
      auto parts = partitioners_[to]->Split(*copy.batch);
      if (!parts.ok()) {
        const auto& consumer = pipeline_->nodes()[to].spec;
        Cancel(
            parts.status().WithContext("node '{}' ({}): partition_by", consumer.id, consumer.type));
        return false;
      }
      for (size_t instance = 0; ok && instance < parts->size(); ++instance) {
        const auto& rows = (*parts)[instance];
        if (rows.empty()) continue;
        Message part = copy;
        if (rows.size() != static_cast<size_t>(copy.batch->num_rows())) {
          part.batch = copy.batch->Take(rows);
        }
        ok = channels_[to][instance]->Push(std::move(part), &blocked);
      }
    }
    if (blocked > 0) stats.blocked_ns.fetch_add(blocked, std::memory_order_relaxed);
    if (!ok) return false;
  }
  return true;
}

void PipelineRun::NodeInstanceDone(size_t node) {
  if (live_instances_[node]->fetch_sub(1) != 1) return;
  const auto& n = pipeline_->nodes()[node];
  for (size_t k = 0; k < n.outputs.size(); ++k) {
    for (auto& c : channels_[static_cast<size_t>(n.outputs[k])]) c->ProducerDone(n.output_ports[k]);
  }
}

bool PipelineRun::TimerDue(const NodeContext& ctx, int64_t now, TimerState* state) {
  const NodeContext::TimerSetting t = ctx.timer();
  if (t.generation != state->generation) {  // set (or changed) since the last look
    state->generation = t.generation;
    state->next_due = t.period_us > 0 ? t.set_at_us + t.period_us : -1;
  }
  if (state->next_due < 0 || now < state->next_due) return false;
  state->next_due += t.period_us;
  if (state->next_due <= now) state->next_due = now + t.period_us;  // far behind: one call
  return true;
}

int PipelineRun::WaitMs(int64_t now, const TimerState& state) {
  if (state.next_due < 0) return 50;
  return static_cast<int>(std::clamp<int64_t>((state.next_due - now + 999) / 1000, 1, 50));
}

Status PipelineRun::FireTransformTimer(size_t node, int instance, int64_t now, bool sequential) {
  auto& n = pipeline_->nodes()[node];
  TransformEmitter emitter(
      this, node, sequential ? TransformEmitter::Mode::kSequential : TransformEmitter::Mode::kPush);
  Status st;
  {
    BusyTimer busy(stats_[node].get());
    st = n.transforms[static_cast<size_t>(instance)]->OnTimer(now, &emitter);
  }
  if (st.ok() || (st.code() == StatusCode::kCancelled && cancelled())) return st;
  stats_[node]->CountError(st.code());
  return st.WithContext("node '{}' ({}): timer", n.spec.id, n.spec.type);
}

void PipelineRun::RunDueTimersSequential() {
  auto& nodes = pipeline_->nodes();
  for (size_t i = 0; i < nodes.size() && !cancelled(); ++i) {
    if (nodes[i].kind() == NodeKind::kSource) continue;
    const NodeContext& ctx = *node_contexts_[i][0];
    const int64_t now = clock_->NowMicros();
    if (!TimerDue(ctx, now, &sequential_timers_[i])) continue;
    Status st;
    if (nodes[i].kind() == NodeKind::kTransform) {
      st = FireTransformTimer(i, 0, now, /*sequential=*/true);
    } else {
      BusyTimer busy(stats_[i].get());
      st = nodes[i].sink->OnTimer(now);
      if (!st.ok()) {
        st = st.WithContext("node '{}' ({}): timer", nodes[i].spec.id, nodes[i].spec.type);
      }
    }
    if (!st.ok()) Cancel(st);
  }
}

bool PipelineRun::DrainInOrder(size_t node, uint64_t seq, std::vector<Message> outputs) {
  Reorderer& r = *reorderers_[node];
  std::vector<int64_t> rises;  // node watermarks to pass on, in order
  bool ok = true;
  {
    std::lock_guard lock(r.mu);
    r.pending[seq] = std::move(outputs);
    while (ok && !r.pending.empty() && r.pending.begin()->first == r.next) {
      for (auto& out : r.pending.begin()->second) {
        if (out.is_watermark()) {
          const int64_t min = RaiseInput(&r.input_wm, out.input, out.watermark);
          // Every input ended (INT64_MAX): nothing to pass on, Finish follows.
          if (min > r.forwarded && min != INT64_MAX && (rises.empty() || min > rises.back())) {
            rises.push_back(min);
          }
        } else if (!PushDownstream(node, std::move(out))) {
          ok = false;
        }
      }
      r.pending.erase(r.pending.begin());
      ++r.next;
    }
  }
  for (int64_t w : rises) ok = ok && ForwardWatermark(node, w);
  return ok;
}

bool PipelineRun::TransformWatermark(size_t node, int instance, const Message& marker,
                                     std::vector<int64_t>* own_wm, int64_t* own_min) {
  auto& n = pipeline_->nodes()[node];
  if (n.spec.parallelism > 1 && partitioners_[node] == nullptr) {
    // Shared channel: the node-level view, once everything popped before it is done.
    std::vector<Message> entry;
    entry.push_back(marker);
    return DrainInOrder(node, marker.seq, std::move(entry));
  }
  const int64_t min = RaiseInput(own_wm, marker.input, marker.watermark);
  if (min <= *own_min || min == INT64_MAX) return true;  // all ended: Finish follows
  *own_min = min;
  Transform* t = n.transforms[static_cast<size_t>(instance)].get();
  TransformEmitter emitter(this, node, TransformEmitter::Mode::kPush);
  Status st;
  {
    BusyTimer busy(stats_[node].get());
    st = t->OnWatermark(min, &emitter);
  }
  if (!st.ok()) {
    if (st.code() != StatusCode::kCancelled || !cancelled()) {
      stats_[node]->CountError(st.code());
      Cancel(st.WithContext("node '{}' ({}): watermark", n.spec.id, n.spec.type));
    }
    return false;
  }
  int64_t out = t->OutputWatermark(min);
  if (partitioners_[node] != nullptr) {
    // Keyed: the node is as far as its slowest instance.
    Reorderer& r = *reorderers_[node];
    std::lock_guard lock(r.mu);
    int64_t& mine = r.instance_wm[static_cast<size_t>(instance)];
    mine = std::max(mine, out);
    out = *std::min_element(r.instance_wm.begin(), r.instance_wm.end());
  }
  return ForwardWatermark(node, out);
}

void PipelineRun::RunTransformInstance(size_t node, int instance) {
  auto& n = pipeline_->nodes()[node];
  Transform* t = n.transforms[static_cast<size_t>(instance)].get();
  NodeStats& stats = *stats_[node];
  const bool keyed = partitioners_[node] != nullptr;
  // Keyed instances keep each key's order (its rows come through one channel), not the input's.
  const bool ordered = n.spec.parallelism > 1 && n.spec.ordered && !keyed;
  // Instances sharing one channel: every pop goes through the reorder buffer (see DrainInOrder).
  const bool gated = n.spec.parallelism > 1 && !keyed;
  // A single or keyed instance's own view of its inputs' watermarks.
  std::vector<int64_t> own_wm(std::max<size_t>(n.inputs.size(), 1), kNoWatermark);
  int64_t own_min = kNoWatermark;
  TransformEmitter emitter(
      this, node, ordered ? TransformEmitter::Mode::kCollect : TransformEmitter::Mode::kPush);
  Reorderer& reorder = *reorderers_[node];
  Channel& in = *channels_[node][keyed ? static_cast<size_t>(instance) : 0];
  const NodeContext& ctx = *node_contexts_[node][static_cast<size_t>(instance)];
  TimerState timer;
  while (true) {
    const int64_t now = clock_->NowMicros();
    if (TimerDue(ctx, now, &timer)) {
      Status st = FireTransformTimer(node, instance, now, /*sequential=*/false);
      if (!st.ok()) {
        if (st.code() != StatusCode::kCancelled || !cancelled()) Cancel(st);
        break;
      }
      continue;
    }
    std::optional<Message> m;
    if (timer.next_due >= 0) {
      bool timed_out = false;
      m = in.PopFor(WaitMs(now, timer), &timed_out);
      if (timed_out) continue;
    } else {
      m = in.Pop();
    }
    if (!m) break;
    if (m->is_watermark()) {
      if (!TransformWatermark(node, instance, *m, &own_wm, &own_min)) break;
      continue;
    }
    stats.rows_in.fetch_add(m->batch->num_rows(), std::memory_order_relaxed);
    stats.bytes_in.fetch_add(m->batch->ByteSize(), std::memory_order_relaxed);
    stats.batches_in.fetch_add(1, std::memory_order_relaxed);
    if (stats.histograms) stats.batch_rows.Record(m->batch->num_rows());
    emitter.SetInput(&*m);
    Status st;
    AcquireSlot();
    {
      BusyTimer busy(&stats, BusyTimer::kBatch);
      st = t->Process(m->batch, m->input, &emitter);
    }
    ReleaseSlot();
    if (!st.ok()) {
      m->acks.Fail();
      if (st.code() != StatusCode::kCancelled || !cancelled()) {
        stats.CountError(st.code());
        Cancel(st.message().find("node '") == std::string::npos
                   ? st.WithContext("node '{}' ({})", n.spec.id, n.spec.type)
                   : st);
      }
      break;
    }
    if (gated) {
      // Ordered: the outputs wait for their turn. Unordered: they went out already; the entry
      // only marks this pop as done, so that a watermark popped later waits for it.
      if (!DrainInOrder(node, m->seq, std::move(emitter.collected()))) break;
      emitter.collected().clear();
    }
  }
  if (!cancelled()) {
    emitter.SetInput(nullptr);
    TransformEmitter finish_emitter(this, node, TransformEmitter::Mode::kPush);
    Status st;
    {
      BusyTimer busy(&stats);
      st = t->Finish(&finish_emitter);
    }
    if (!st.ok()) Cancel(st.WithContext("node '{}' ({}): finishing", n.spec.id, n.spec.type));
  }
  if (cancelled()) {
    std::lock_guard lock(reorder.mu);
    reorder.pending.clear();  // drop held references so their sources can settle
  }
  NodeInstanceDone(node);
}

void PipelineRun::RunSink(size_t node) {
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  Channel& in = *channels_[node][0];
  int64_t flushed_generation = 0;
  const NodeContext& ctx = *node_contexts_[node][0];
  TimerState timer;
  while (true) {
    const int64_t now = clock_->NowMicros();
    if (TimerDue(ctx, now, &timer)) {
      BusyTimer busy(&stats);
      Status st = n.sink->OnTimer(now);
      if (!st.ok()) {
        stats.CountError(st.code());
        Cancel(st.WithContext("node '{}' ({}): timer", n.spec.id, n.spec.type));
        break;
      }
    }
    bool timed_out = false;
    std::optional<Message> m = in.PopFor(WaitMs(now, timer), &timed_out);
    if (timed_out) {
      // Idle: a source waiting at its in-flight limit may need the acks this sink holds.
      const int64_t gen = flush_generation_.load(std::memory_order_acquire);
      if (gen != flushed_generation) {
        flushed_generation = gen;
        BusyTimer busy(&stats);
        Status st = n.sink->Flush();
        if (!st.ok()) {
          stats.CountError(st.code());
          Cancel(st.WithContext("node '{}' ({}): flushing", n.spec.id, n.spec.type));
          break;
        }
      }
      continue;
    }
    if (!m) break;
    if (m->is_watermark()) continue;  // sinks write rows; time is for transforms
    stats.rows_in.fetch_add(m->batch->num_rows(), std::memory_order_relaxed);
    stats.bytes_in.fetch_add(m->batch->ByteSize(), std::memory_order_relaxed);
    stats.batches_in.fetch_add(1, std::memory_order_relaxed);
    if (stats.histograms) stats.batch_rows.Record(m->batch->num_rows());
    // Keep our own reference until Write returns, so a failed write is marked failed before
    // the sink could possibly have released the last reference.
    AckSet keep = m->acks;
    Status st;
    AcquireSlot();
    {
      BusyTimer busy(&stats, BusyTimer::kBatch);
      st = n.sink->Write(m->batch, std::move(m->acks));
    }
    ReleaseSlot();
    if (!st.ok()) {
      keep.Fail();
      stats.CountError(st.code());
      Cancel(st.message().find("node '") == std::string::npos
                 ? st.WithContext("node '{}' ({})", n.spec.id, n.spec.type)
                 : st);
      break;
    }
  }
  if (!cancelled()) {
    BusyTimer busy(&stats);
    Status st = n.sink->Flush();
    if (!st.ok()) {
      stats.CountError(st.code());
      Cancel(st.WithContext("node '{}' ({}): flushing", n.spec.id, n.spec.type));
    }
  }
}

Status PipelineRun::ExecuteParallel() {
  auto& nodes = pipeline_->nodes();
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nodes.size(); ++i) {
    switch (nodes[i].kind()) {
      case NodeKind::kSource:
        threads.emplace_back([this, i] { RunSourceLoop(i, /*sequential=*/false); });
        break;
      case NodeKind::kTransform:
        for (int k = 0; k < nodes[i].spec.parallelism; ++k) {
          threads.emplace_back([this, i, k] { RunTransformInstance(i, k); });
        }
        break;
      case NodeKind::kSink:
        threads.emplace_back([this, i] { RunSink(i); });
        break;
    }
  }
  for (auto& t : threads) t.join();
  std::lock_guard lock(error_mu_);
  return first_error_;
}

// ---------------------------------------------------------------------------------------------
// Sequential executor: one node at a time, depth first from each source batch.

Status PipelineRun::EmitSequential(size_t node, Message m) {
  auto& n = pipeline_->nodes()[node];
  if (n.kind() == NodeKind::kTransform && !m.is_watermark()) {
    NodeStats& stats = *stats_[node];
    stats.rows_out.fetch_add(m.batch->num_rows(), std::memory_order_relaxed);
    stats.bytes_out.fetch_add(m.batch->ByteSize(), std::memory_order_relaxed);
    stats.batches_out.fetch_add(1, std::memory_order_relaxed);
  }
  const size_t fan = n.outputs.size();
  for (size_t k = 0; k < fan; ++k) {
    Message copy = (k + 1 == fan) ? std::move(m) : m;
    copy.input = n.output_ports[k];
    SLUICE_RETURN_NOT_OK(DeliverSequential(static_cast<size_t>(n.outputs[k]), std::move(copy)));
  }
  return Status::OK();
}

Status PipelineRun::DeliverSequential(size_t node, Message m) {
  if (cancelled()) return Status::Cancelled("run cancelled");
  auto& n = pipeline_->nodes()[node];
  NodeStats& stats = *stats_[node];
  if (m.is_watermark()) {
    if (n.kind() != NodeKind::kTransform) return Status::OK();
    Reorderer& r = *reorderers_[node];  // one instance: its view is the node's
    const int64_t min = RaiseInput(&r.input_wm, m.input, m.watermark);
    if (min <= r.forwarded || min == INT64_MAX) return Status::OK();  // all ended: Finish
    Transform* t = n.transforms[0].get();
    TransformEmitter emitter(this, node, TransformEmitter::Mode::kSequential);
    Status st = t->OnWatermark(min, &emitter);
    if (!st.ok()) {
      if (st.code() == StatusCode::kCancelled && cancelled()) return st;
      stats.CountError(st.code());
      return st.WithContext("node '{}' ({}): watermark", n.spec.id, n.spec.type);
    }
    const int64_t out = t->OutputWatermark(min);
    r.forwarded = std::max(r.forwarded, min);
    stats.watermark_us.store(out, std::memory_order_relaxed);
    return EmitSequential(node, Message::Watermark(out));
  }
  stats.rows_in.fetch_add(m.batch->num_rows(), std::memory_order_relaxed);
  stats.bytes_in.fetch_add(m.batch->ByteSize(), std::memory_order_relaxed);
  stats.batches_in.fetch_add(1, std::memory_order_relaxed);
  if (stats.histograms) stats.batch_rows.Record(m.batch->num_rows());
  AckSet keep = m.acks;
  Status st;
  if (n.kind() == NodeKind::kTransform) {
    TransformEmitter emitter(this, node, TransformEmitter::Mode::kSequential);
    emitter.SetInput(&m);
    const int64_t t0 = NowNs();
    st = n.transforms[0]->Process(m.batch, m.input, &emitter);
    // Busy time of a transform excludes the downstream work its emits ran; approximate by
    // charging it all here, which is what a single thread spends on this node's behalf.
    stats.busy_ns.fetch_add(NowNs() - t0, std::memory_order_relaxed);
    if (stats.histograms) stats.batch_latency.Record(NowNs() - t0);
  } else {
    BusyTimer busy(&stats, BusyTimer::kBatch);
    st = n.sink->Write(m.batch, std::move(m.acks));
  }
  if (!st.ok()) {
    keep.Fail();
    if (st.code() == StatusCode::kCancelled && cancelled()) return st;
    stats.CountError(st.code());
    if (st.message().find("node '") == std::string::npos) {
      st = st.WithContext("node '{}' ({})", n.spec.id, n.spec.type);
    }
  }
  return st;
}

Status PipelineRun::ExecuteSequential() {
  auto& nodes = pipeline_->nodes();
  sequential_pending_.assign(nodes.size(), {});
  sequential_timers_.assign(nodes.size(), TimerState{});
  for (size_t i = 0; i < nodes.size() && !cancelled(); ++i) {
    if (nodes[i].kind() == NodeKind::kSource) RunSourceLoop(i, /*sequential=*/true);
  }
  for (size_t i = 0; i < nodes.size() && !cancelled(); ++i) {
    auto& n = nodes[i];
    Status st;
    if (n.kind() == NodeKind::kTransform) {
      TransformEmitter emitter(this, i, TransformEmitter::Mode::kSequential);
      st = n.transforms[0]->Finish(&emitter);
    } else if (n.kind() == NodeKind::kSink) {
      BusyTimer busy(stats_[i].get());
      st = n.sink->Flush();
    }
    if (!st.ok()) Cancel(st.WithContext("node '{}' ({}): finishing", n.spec.id, n.spec.type));
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind() != NodeKind::kSource) continue;
    if (!cancelled()) SettleAcks(i, 0, &sequential_pending_[i]);
    if (!sequential_pending_[i].empty() && !cancelled()) {
      // Everything downstream has flushed; a batch still pending was kept by a node that never
      // released it — a bug in that node, reported rather than hidden.
      Cancel(Status::Internal("node '{}': {} batch(es) never acknowledged after flush",
                              nodes[i].spec.id, sequential_pending_[i].size()));
    }
    FinishSourceAcks(i, &sequential_pending_[i]);
    Status st = nodes[i].source->Close();
    if (!st.ok()) Cancel(st.WithContext("node '{}': closing", nodes[i].spec.id));
  }
  std::lock_guard lock(error_mu_);
  return first_error_;
}

}  // namespace sluice
