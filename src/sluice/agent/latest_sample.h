#pragma once

// The host agent's view of its pipeline: the last sample the procfs source produced, taken from
// the pipeline by a sink of its own (the tap), and rendered for HTTP when first asked for.

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "sluice/agent/exposition.h"
#include "sluice/core/batch.h"
#include "sluice/engine/pipeline.h"
#include "sluice/engine/registry.h"
#include "sluice/resilience/clock.h"
#include "sluice/serve/http_server.h"

namespace sluice::agent {

/// The node type and id of the tap the agent adds to its pipeline.
inline constexpr std::string_view kTapType = "agent_latest_sample";
inline constexpr std::string_view kTapId = "agent_latest_sample";

/// How fresh a sample must be for /healthz.
struct Health {
  int64_t samples = 0;  ///< Samples received so far.
  int64_t age_us = -1;  ///< Since the last one arrived; -1 before the first.
  bool ok = false;      ///< A sample arrived within the last 3 intervals + 1 s.
};

/// Holds the latest sample. Update is called by the tap (the pipeline's sink thread); the
/// readers (HTTP workers) share the sample's renderings, each made once per sample on first
/// demand. Thread-safe.
class LatestSample {
 public:
  /// `interval_us` is the source's; `clock` measures the sample's age (not owned).
  LatestSample(std::string metric_prefix, int64_t interval_us, Clock* clock = SystemClock());

  /// Take `batch` as the latest sample; an empty batch is ignored. kInvalidArgument for rows
  /// that are not a sample's (FindSampleColumns).
  Status Update(const BatchPtr& batch);

  /// Return the latest sample as JSON (SampleJson), or null before the first sample.
  serve::BodyPtr Json() const;
  /// Return the latest sample as Prometheus text (SamplePrometheus), or null before the first.
  serve::BodyPtr Prometheus() const;
  /// Return how fresh the latest sample is.
  Health health() const;
  int64_t interval_us() const { return interval_us_; }

 private:
  struct Snapshot;
  std::shared_ptr<Snapshot> Current() const;

  const std::string prefix_;
  const int64_t interval_us_;
  Clock* clock_;
  mutable std::mutex mu_;
  std::shared_ptr<Snapshot> current_;  // guarded by mu_
  int64_t samples_ = 0;                // guarded by mu_
  int64_t received_us_ = 0;            // guarded by mu_: clock time of the last Update
};

/// Register the tap's sink type: every batch it receives goes to `latest` (acknowledged at
/// once: memory is where it is kept). Not listed by `sluice nodes`: only `sluice agent`'s
/// registry has it.
void RegisterTap(NodeRegistry* registry, std::shared_ptr<LatestSample> latest);

/// Add the tap to `spec`, reading the output of node `source`. kConfigError if a node already
/// has the tap's id.
Status AddTap(PipelineSpec* spec, const std::string& source);

}  // namespace sluice::agent
