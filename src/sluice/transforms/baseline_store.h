#pragma once

// The anomaly transform's per-key baselines, and the SQLite file that keeps them across runs.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "sluice/core/result.h"

struct sqlite3;

namespace sluice::transforms_internal {

/// What a key's readings looked like so far: Welford's count, mean and sum of squared
/// deviations (or, for EWMA, the weighted mean and variance in `mean`/`m2`), and the event time
/// of the newest reading folded in — a redelivered reading at or before it is not folded again.
struct Baseline {
  int64_t n = 0;
  double mean = 0;
  double m2 = 0;
  int64_t last_us = INT64_MIN;
};

/// Baselines of one node in a SQLite file (table sluice_baselines, keyed by node id and key
/// bytes). Every instance of the node may open the same file: keys are partitioned, so
/// instances write disjoint rows; a busy file is waited for.
class BaselineStore {
 public:
  static Result<std::unique_ptr<BaselineStore>> Open(const std::string& path,
                                                     const std::string& node);
  ~BaselineStore();
  BaselineStore(const BaselineStore&) = delete;
  BaselineStore& operator=(const BaselineStore&) = delete;

  /// Read every baseline the node saved.
  Status Load(std::unordered_map<std::string, Baseline>* out);
  /// The smallest value saved under a name starting with `prefix` (every instance of the node
  /// saves its own), or nullopt when there is none.
  Result<std::optional<int64_t>> LoadMark(const std::string& prefix);
  /// Save `value` under `name`, durably.
  Status SaveMark(const std::string& name, int64_t value);
  /// Write `entries` (key, baseline) in one transaction, durably (synchronous=FULL).
  Status Save(const std::vector<std::pair<const std::string*, const Baseline*>>& entries);

 private:
  BaselineStore(sqlite3* db, std::string path, std::string node)
      : db_(db), path_(std::move(path)), node_(std::move(node)) {}
  Status Exec(const char* sql);
  Status Error(int rc, const char* what) const;

  sqlite3* db_;
  std::string path_;
  std::string node_;
};

}  // namespace sluice::transforms_internal
