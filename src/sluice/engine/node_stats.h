#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "sluice/core/status.h"
#include "sluice/observe/metrics.h"

namespace sluice {

/// Counters a node's instances update as it runs (one object per node, shared by its
/// instances); read by the progress line and the summary.
/// Counters are relaxed atomics: cheap on the hot path, exact once the run has ended.
struct NodeStats {
  /// The event-time watermark the node last passed on (µs; INT64_MIN: none yet).
  std::atomic<int64_t> watermark_us{INT64_MIN};
  std::atomic<int64_t> rows_in{0};
  std::atomic<int64_t> rows_out{0};
  std::atomic<int64_t> bytes_in{0};
  std::atomic<int64_t> bytes_out{0};
  std::atomic<int64_t> batches_in{0};
  std::atomic<int64_t> batches_out{0};
  std::atomic<int64_t> busy_ns{0};     ///< Time inside the node's own code.
  std::atomic<int64_t> blocked_ns{0};  ///< Time waiting for room downstream (backpressure).
  std::atomic<int64_t> errors{0};
  std::atomic<int64_t> discarded_rows{0};
  std::atomic<int64_t> committed_batches{0};
  std::atomic<int64_t> abandoned_batches{0};
  bool histograms = true;  ///< Record the two histograms below (set before the run starts).
  /// Time of each call that handles one batch (Next, Process, Write), in nanoseconds.
  observe::Histogram batch_latency{"s", 1e-9};
  /// Rows of each batch received (a source: each batch it produced).
  observe::Histogram batch_rows{"rows", 1.0};
  /// One request to a server (a DB statement, an S3 request), in nanoseconds; recorded by the
  /// nodes that talk to one.
  observe::Histogram request_latency{"s", 1e-9};

  /// Add `nanos` to the named phase (e.g. "upload"); phases show in the summary and report.
  void AddPhase(const std::string& phase, int64_t nanos);
  /// Add `delta` to a named counter specific to the node (e.g. "retries", "files").
  void AddCounter(const std::string& name, int64_t delta);
  /// Return true the first time any instance of the node asks with `key`, false after: a
  /// warning logged once per node however many instances (segment workers) run it.
  bool Once(const std::string& key);
  std::map<std::string, int64_t> Phases() const;
  std::map<std::string, int64_t> Counters() const;
  /// Count one error of the node, by kind (the status code).
  void CountError(StatusCode code);
  /// Return the errors by kind ("unavailable" -> 3).
  std::map<std::string, int64_t> ErrorsByCode() const;
  /// Set a named gauge of the node's current state (e.g. "batch_size_target_rows").
  void SetGauge(const std::string& name, double value);
  /// Set instance `instance`'s share of a gauge of state each instance holds apart (a keyed
  /// node's open windows, state bytes): the node's gauge is the sum over its instances.
  void SetInstanceGauge(const std::string& name, int instance, double value);
  std::map<std::string, double> Gauges() const;
  /// Run `update`, which reads the node's counters (or state its instances share) and sets
  /// gauges derived from them, under a lock of this node's: its instances' updates then do not
  /// interleave, and the gauges last set come from the newest values read. `update` may not
  /// call UpdateDerived (the lock is not re-entrant).
  template <typename F>
  void UpdateDerived(F&& update) {
    std::lock_guard lock(derived_mu_);
    update();
  }

 private:
  std::mutex derived_mu_;  // UpdateDerived's; taken before mu_, never while holding it
  mutable std::mutex mu_;
  std::set<std::string> once_;                                    // guarded by mu_
  std::map<std::string, int64_t> phases_;                         // guarded by mu_
  std::map<std::string, int64_t> counters_;                       // guarded by mu_
  std::map<std::string, int64_t> errors_;                         // guarded by mu_
  std::map<std::string, double> gauges_;                          // guarded by mu_
  std::map<std::string, std::map<int, double>> instance_gauges_;  // guarded by mu_
};

}  // namespace sluice
