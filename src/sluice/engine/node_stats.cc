#include "sluice/engine/node_stats.h"

namespace sluice {

void NodeStats::AddPhase(const std::string& phase, int64_t nanos) {
  std::lock_guard lock(mu_);
  phases_[phase] += nanos;
}

void NodeStats::AddCounter(const std::string& name, int64_t delta) {
  std::lock_guard lock(mu_);
  counters_[name] += delta;
}

std::map<std::string, int64_t> NodeStats::Phases() const {
  std::lock_guard lock(mu_);
  return phases_;
}

std::map<std::string, int64_t> NodeStats::Counters() const {
  std::lock_guard lock(mu_);
  return counters_;
}

}  // namespace sluice
