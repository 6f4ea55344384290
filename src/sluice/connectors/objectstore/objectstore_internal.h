#pragma once

// Helpers shared by the object store nodes. Private to connectors/objectstore.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "sluice/connectors/objectstore/object_store.h"
#include "sluice/engine/node.h"
#include "sluice/engine/node_stats.h"
#include "sluice/engine/options.h"

namespace sluice::objectstore_internal {

/// Return option `name`, or `fallback` when absent (NodeOptions::ForTest fills no defaults).
inline std::string StringOr(const NodeOptions& o, const std::string& name,
                            const std::string& fallback) {
  return o.Has(name) ? o.GetString(name) : fallback;
}
inline int64_t IntOr(const NodeOptions& o, const std::string& name, int64_t fallback) {
  return o.Has(name) ? o.GetInt(name) : fallback;
}
inline bool BoolOr(const NodeOptions& o, const std::string& name, bool fallback) {
  return o.Has(name) ? o.GetBool(name) : fallback;
}
inline int64_t BytesOr(const NodeOptions& o, const std::string& name, int64_t fallback) {
  return o.Has(name) ? o.GetByteSize(name) : fallback;
}
inline int64_t MicrosOr(const NodeOptions& o, const std::string& name, int64_t fallback) {
  return o.Has(name) ? o.GetDurationMicros(name) : fallback;
}

/// Measure the time from construction to destruction (or Stop) and add it to a phase.
class PhaseTimer {
 public:
  PhaseTimer(NodeStats* stats, const char* phase)
      : stats_(stats), phase_(phase), start_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() { Stop(); }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

  /// Record the phase now (once); return its length in nanoseconds.
  int64_t Stop() {
    if (stopped_) return nanos_;
    stopped_ = true;
    nanos_ = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                                  start_)
                 .count();
    if (stats_ != nullptr) stats_->AddPhase(phase_, nanos_);
    return nanos_;
  }

 private:
  NodeStats* stats_;
  const char* phase_;
  std::chrono::steady_clock::time_point start_;
  bool stopped_ = false;
  int64_t nanos_ = 0;
};

/// Mirror the cancellation of a run (NodeContext::cancelled) into a flag a store watches
/// (ObjectStoreOptions::cancelled), so that a cancelled run stops waiting on S3 promptly.
/// NodeContext exposes cancelled() but not its flag, so once watching, a thread polls it every
/// few milliseconds until the relay is disarmed or destroyed. The store is made with flag()
/// when the node is built; Watch() starts relaying when the node opens.
class CancelRelay {
 public:
  CancelRelay() = default;
  /// Stop the polling thread.
  ~CancelRelay();
  CancelRelay(const CancelRelay&) = delete;
  CancelRelay& operator=(const CancelRelay&) = delete;

  /// Return the flag to give a store; valid while the relay lives.
  const std::atomic<bool>* flag() const { return &flag_; }
  /// Start relaying `ctx`'s cancellation (not owned; must outlive the relay). Call once.
  void Watch(const NodeContext* ctx);
  /// Stop relaying and clear the flag, so that the store's later calls run to the end (the
  /// manifest a sink writes at Close of a cancelled run). Idempotent.
  void Disarm();

 private:
  void Poll();

  const NodeContext* ctx_ = nullptr;
  std::atomic<bool> flag_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

/// A node's store, and the relay that carries the run's cancellation into it.
struct NodeStore {
  std::unique_ptr<CancelRelay> relay;  // before store, which watches its flag
  std::shared_ptr<ObjectStore> store;
};

/// Make the store `options` describe for node `node`, watching a new relay's flag. Bad
/// settings are kConfigError (the pipeline is not built), naming the node.
Result<NodeStore> MakeNodeStore(const std::string& node, ObjectStoreOptions options);

/// Return `st` (an error of a store opened with `store`) as one line naming node `node`, with
/// what to check for the errors a person must fix: a missing bucket, denied credentials, an
/// unwritable directory. `action` says what the node needs ("write to", "list and read").
Status ExplainStoreError(const Status& st, const std::string& node, const ObjectStoreOptions& store,
                         const char* action);

}  // namespace sluice::objectstore_internal
