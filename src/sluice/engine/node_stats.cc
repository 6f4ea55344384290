#include "sluice/engine/node_stats.h"

namespace sluice {

void NodeStats::AddPhase(const std::string& phase, int64_t nanos) {
  std::lock_guard lock(mu_);
  phases_[phase] += nanos;
}

bool NodeStats::Once(const std::string& key) {
  std::lock_guard lock(mu_);
  return once_.insert(key).second;
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

void NodeStats::CountError(StatusCode code) {
  errors.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  errors_[std::string(StatusCodeName(code))] += 1;
}

std::map<std::string, int64_t> NodeStats::ErrorsByCode() const {
  std::lock_guard<std::mutex> lock(mu_);
  return errors_;
}

void NodeStats::SetGauge(const std::string& name, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  gauges_[name] = value;
}

void NodeStats::SetInstanceGauge(const std::string& name, int instance, double value) {
  std::lock_guard<std::mutex> lock(mu_);
  std::map<int, double>& shares = instance_gauges_[name];
  shares[instance] = value;
  double total = 0;
  for (const auto& [k, v] : shares) total += v;
  gauges_[name] = total;
}

std::map<std::string, double> NodeStats::Gauges() const {
  std::lock_guard<std::mutex> lock(mu_);
  return gauges_;
}

}  // namespace sluice
