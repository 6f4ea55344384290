#pragma once

// Helpers shared by the object store nodes. Private to connectors/objectstore.

#include <chrono>
#include <string>

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

}  // namespace sluice::objectstore_internal
