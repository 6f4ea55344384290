#include "sluice/engine/executor.h"

#include <pthread.h>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "sluice/core/log.h"
#include "sluice/engine/executor_internal.h"

namespace sluice {

namespace {

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

// Name the calling thread (top -H, perf, gdb show it); Linux keeps 15 bytes.
void NameThread(const std::string& name) {
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

}  // namespace

int64_t PeakRssBytes() { return ReadProcStatusKb("VmHWM:") * 1024; }
int64_t CurrentRssBytes() { return ReadProcStatusKb("VmRSS:") * 1024; }

PipelineRun::PipelineRun(Pipeline* pipeline, RunOptions options)
    : pipeline_(pipeline),
      options_(options),
      budget_(pipeline->spec().settings.memory_limit),
      clock_(options.clock != nullptr ? options.clock : SystemClock()) {
  const auto& nodes = pipeline_->nodes();
  idle_since_us_ = std::make_unique<std::atomic<int64_t>[]>(nodes.size());
  in_call_since_us_ = std::make_unique<std::atomic<int64_t>[]>(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    idle_since_us_[i].store(-1);
    in_call_since_us_[i].store(-1);
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    const auto& n = nodes[i];
    if (n.kind() == NodeKind::kSource) continue;
    // A segment's members take their input from its head's channel only.
    if (n.segment >= 0 &&
        pipeline_->segments()[static_cast<size_t>(n.segment)].head != static_cast<int>(i)) {
      continue;
    }
    const bool keyed =
        n.kind() == NodeKind::kTransform && n.spec.parallelism > 1 && !n.spec.partition_by.empty();
    channel_count_ += keyed ? n.spec.parallelism : 1;
  }
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
        channels_.back().push_back(std::make_unique<Channel>(
            static_cast<size_t>(n.spec.queue_batches),
            Channel::BoundBytes(n.spec.queue_bytes, budget_.limit(), channel_count_),
            static_cast<int>(n.inputs.size())));
      }
    }
    reorderers_.push_back(std::make_unique<Reorderer>());
    reorderers_.back()->input_wm.assign(std::max<size_t>(n.inputs.size(), 1), kNoWatermark);
    reorderers_.back()->instance_wm.assign(
        static_cast<size_t>(n.kind() == NodeKind::kTransform ? n.spec.parallelism : 1),
        kNoWatermark);
    const int instances = n.instances();
    live_instances_.push_back(std::make_unique<std::atomic<int>>(instances));
    node_contexts_.emplace_back();
    for (int k = 0; k < instances; ++k) {
      contexts_.push_back(std::make_unique<NodeContext>(n.spec.id, n.spec.type, stats_[i].get(),
                                                        &cancelled_, options_.dry_run));
      contexts_.back()->set_instance(k);
      contexts_.back()->set_stopping(&stopping_);
      contexts_.back()->set_stop_signal(&stop_signal_);
      contexts_.back()->set_clock(clock_);
      contexts_.back()->set_memory(&budget_);
      node_contexts_.back().push_back(contexts_.back().get());
    }
  }
  for (const Segment& seg : pipeline_->segments()) {
    segment_states_.push_back(std::make_unique<SegmentState>());
    segment_states_.back()->head_wm.assign(
        std::max<size_t>(nodes[static_cast<size_t>(seg.head)].inputs.size(), 1), kNoWatermark);
    // Its threads, and the source's where it runs batches (it drains the queue once it ends).
    segment_states_.back()->live.store(pipeline_->workers());
  }
  scans_.resize(nodes.size());
  for (size_t s = 0; s < pipeline_->segments().size(); ++s) {
    const Segment& seg = pipeline_->segments()[s];
    if (!seg.source_reads) continue;
    auto scan = std::make_unique<ScanState>();
    scan->segment = static_cast<int>(s);
    scan->readers = pipeline_->workers();
    scans_[static_cast<size_t>(nodes[static_cast<size_t>(seg.head)].inputs[0])] = std::move(scan);
  }
  const int max_parallel = pipeline_->spec().settings.max_parallel_nodes;
  free_slots_ = max_parallel > 0 ? max_parallel : 0;
  // Sinks a segment writes itself: not under max_parallel_nodes, whose slots a worker holding
  // the drain's lock could wait for.
  inline_sinks_.resize(nodes.size());
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (max_parallel == 0 && nodes[i].kind() == NodeKind::kSink && nodes[i].sink->WritesInline()) {
      inline_sinks_[i] = std::make_unique<std::mutex>();
    }
  }
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
  stop_signal_.Notify();
}

std::string PipelineRun::stop_reason() const {
  std::lock_guard lock(error_mu_);
  return stop_reason_;
}

Status PipelineRun::WithNode(size_t node, const Status& st) const {
  if (st.message().find("node '") != std::string::npos) return st;
  const NodeSpec& spec = pipeline_->nodes()[node].spec;
  return st.WithContext("node '{}' ({})", spec.id, spec.type);
}

void PipelineRun::Cancel(const Status& why) {
  {
    std::lock_guard lock(error_mu_);
    if (first_error_.ok()) first_error_ = why.ok() ? Status::Cancelled("cancelled") : why;
  }
  if (cancel_started_.exchange(true, std::memory_order_acq_rel)) return;
  // Ack queues first, and only then the flag: a thread that sees cancelled() may drop what it
  // holds (a batch it popped, a segment's parked outputs), and from here on any batch whose
  // last reference drops counts as not delivered.
  for (auto& q : ack_queues_) q->Cancel();
  cancelled_.store(true, std::memory_order_release);
  budget_.Cancel();
  for (auto& node_channels : channels_) {
    for (auto& c : node_channels) c->Cancel();
  }
  { std::lock_guard lock(slot_mu_); }
  slot_cv_.notify_all();
  { std::lock_guard lock(done_mu_); }
  done_cv_.notify_all();
  // Not under the segments' locks: Cancel may be called by a drain that holds one (a keyed
  // consumer's partition_by failing); their waits time out to see the flag (RunSegmentWorker).
  for (auto& state : segment_states_) state->behind.notify_all();
  stop_signal_.Notify();
}

void PipelineRun::MarkDone(size_t node) {
  {
    std::lock_guard lock(done_mu_);
    ++done_instances_[node];
  }
  done_cv_.notify_all();
}

void PipelineRun::WaitForAfter(size_t node) {
  const auto& nodes = pipeline_->nodes();
  const auto done = [&] {
    for (int a : nodes[node].after) {
      const auto& w = nodes[static_cast<size_t>(a)];
      if (done_instances_[static_cast<size_t>(a)] < w.instances()) return false;
    }
    return true;
  };
  std::unique_lock lock(done_mu_);
  done_cv_.wait(lock, [&] { return cancelled() || done(); });
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

bool PipelineRun::SourcesIdle() const {
  const auto& nodes = pipeline_->nodes();
  int64_t latest = INT64_MIN;  // the most recent start of an idle streak
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind() != NodeKind::kSource) continue;
    const int64_t since = idle_since_us_[i].load(std::memory_order_relaxed);
    if (since == -1) return false;
    const int64_t call = in_call_since_us_[i].load(std::memory_order_relaxed);
    if (call != -1 && ElapsedMicros() - call >= options_.until_idle_us) return false;
    latest = std::max(latest, since);
  }
  return latest == INT64_MIN || ElapsedMicros() - latest >= options_.until_idle_us;
}

Status PipelineRun::Execute() {
  start_ = std::chrono::steady_clock::now();
  rss_start_bytes_ = CurrentRssBytes();
  Status st = OpenNodes();
  if (st.ok()) {
    // Watch for a stop or an interrupt (SIGINT/SIGTERM) and for an idle stream while the
    // executor runs; the end of the run wakes the watcher (done_cv) rather than waiting out
    // its poll.
    std::mutex done_mu;
    std::condition_variable done_cv;
    bool done = false;  // guarded by done_mu
    std::thread watcher;
    if (options_.interrupt != nullptr || options_.stop != nullptr || options_.until_idle_us > 0) {
      const auto poll = std::chrono::microseconds(std::max<int64_t>(options_.watch_interval_us, 1));
      watcher = std::thread([&, poll] {
        for (;;) {
          if (options_.interrupt != nullptr && options_.interrupt->load()) {
            Cancel(Status::Cancelled("interrupted"));
            return;
          }
          if (options_.stop != nullptr && options_.stop->load()) Stop("signal");
          if (options_.until_idle_us > 0 && SourcesIdle()) Stop("until-idle");
          std::unique_lock lock(done_mu);
          if (done_cv.wait_for(lock, poll, [&] { return done; })) return;
        }
      });
    }
    st = pipeline_->spec().settings.engine == EngineKind::kSequential ? ExecuteSequential()
                                                                      : ExecuteParallel();
    {
      std::lock_guard lock(done_mu);
      done = true;
    }
    done_cv.notify_all();
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
  rss_end_bytes_ = CurrentRssBytes();
  finished_.store(true, std::memory_order_release);
  return st;
}

// ---------------------------------------------------------------------------------------------
// Parallel executor.

void PipelineRun::RequestSinkFlush() {
  flush_generation_.fetch_add(1, std::memory_order_acq_rel);
  auto& nodes = pipeline_->nodes();
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].kind() == NodeKind::kSink) channels_[i][0]->Wake();
  }
}

void PipelineRun::CountOut(size_t node, const Message& m) {
  if (m.is_watermark() || m.port != 0) return;
  NodeStats& stats = *stats_[node];
  stats.rows_out.fetch_add(m.batch->num_rows(), std::memory_order_relaxed);
  stats.bytes_out.fetch_add(m.batch->ByteSize(), std::memory_order_relaxed);
  stats.batches_out.fetch_add(1, std::memory_order_relaxed);
}

bool PipelineRun::PushDownstream(size_t node, Message m) {
  CountOut(node, m);
  return PushOut(node, std::move(m), -1);
}

bool PipelineRun::PushOut(size_t node, Message m, int skip_segment, int only_output) {
  const auto& nodes = pipeline_->nodes();
  auto& n = nodes[node];
  NodeStats& stats = *stats_[node];
  // A batch goes to the consumers of the output it left on; a watermark to every consumer.
  const auto goes = [&](size_t k) {
    if (only_output >= 0) return k == static_cast<size_t>(only_output);
    return (m.is_watermark() || n.output_from[k] == m.port) &&
           (skip_segment < 0 || nodes[static_cast<size_t>(n.outputs[k])].segment != skip_segment);
  };
  const size_t last = executor_internal::LastOutput(n, goes);
  for (size_t k = 0; k <= last && k < n.outputs.size(); ++k) {
    if (!goes(k)) continue;
    Message copy = (k == last) ? std::move(m) : m;
    copy.input = n.output_ports[k];
    const auto to = static_cast<size_t>(n.outputs[k]);
    int64_t blocked = 0;
    bool ok = true;
    const int seg = nodes[to].segment;
    const Segment* runs = (seg >= 0 && n.kind() == NodeKind::kSource &&
                           pipeline_->segments()[static_cast<size_t>(seg)].source_runs)
                              ? &pipeline_->segments()[static_cast<size_t>(seg)]
                              : nullptr;
    if (skip_segment >= 0 && !copy.is_watermark() && inline_sinks_[to] != nullptr) {
      // A segment passing its outputs on in their turn writes them itself (Sink::WritesInline).
      if (!WriteInline(to, std::move(copy))) return false;
      continue;
    }
    if (runs != nullptr && runs->Threads(pipeline_->workers()) == 0) {
      // One worker, the source's: every batch and watermark goes through on this thread.
      ok = RunOnSource(static_cast<size_t>(seg), std::move(copy));
    } else if (copy.is_watermark()) {
      for (auto& c : channels_[to]) ok = c->Push(copy, &blocked) && ok;  // every instance
    } else if (runs != nullptr) {
      // A full segment: the source's thread takes its batch through it rather than wait.
      switch (channels_[to][0]->PushOrClaim(&copy)) {
        case Channel::Offer::kQueued:
          break;
        case Channel::Offer::kCancelled:
          ok = false;
          break;
        case Channel::Offer::kClaimed:
          ok = RunClaimed(static_cast<size_t>(seg), std::move(copy));
          break;
      }
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

Status PipelineRun::ExecuteParallel() {
  auto& nodes = pipeline_->nodes();
  done_instances_.assign(nodes.size(), 0);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < nodes.size(); ++i) {
    switch (nodes[i].kind()) {
      case NodeKind::kSource:
        threads.emplace_back([this, i] {
          NameThread(pipeline_->nodes()[i].spec.id);
          if (!pipeline_->nodes()[i].after.empty()) WaitForAfter(i);
          RunSourceLoop(i, /*sequential=*/false);
          MarkDone(i);
        });
        break;
      case NodeKind::kTransform:
        if (const int seg = nodes[i].segment; seg >= 0) {
          // The segment's workers start with its head; FinishSegment marks its members done.
          if (pipeline_->segments()[static_cast<size_t>(seg)].head != static_cast<int>(i)) break;
          const int workers =
              pipeline_->segments()[static_cast<size_t>(seg)].Threads(pipeline_->workers());
          for (int w = 0; w < workers; ++w) {
            threads.emplace_back([this, seg, w, i] {
              // "text+3/1": worker 1 of the segment of `text` and 3 more transforms.
              const auto& members = pipeline_->segments()[static_cast<size_t>(seg)].members;
              NameThread(
                  fmt::format("{}+{}/{}", pipeline_->nodes()[i].spec.id, members.size() - 1, w));
              if (pipeline_->segments()[static_cast<size_t>(seg)].source_reads) {
                RunScanWorker(static_cast<size_t>(seg), w);
              } else {
                RunSegmentWorker(static_cast<size_t>(seg), w);
              }
            });
          }
          break;
        }
        for (int k = 0; k < nodes[i].spec.parallelism; ++k) {
          threads.emplace_back([this, i, k] {
            NameThread(k == 0 ? pipeline_->nodes()[i].spec.id
                              : fmt::format("{}/{}", pipeline_->nodes()[i].spec.id, k));
            RunTransformInstance(i, k);
            MarkDone(i);
          });
        }
        break;
      case NodeKind::kSink:
        threads.emplace_back([this, i] {
          NameThread(pipeline_->nodes()[i].spec.id);
          RunSink(i);
          MarkDone(i);
        });
        break;
    }
  }
  for (auto& t : threads) t.join();
  std::lock_guard lock(error_mu_);
  return first_error_;
}

}  // namespace sluice
