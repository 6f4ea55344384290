#pragma once

// Private to the lookup transform: its configuration (parsed in lookup_options.cc) and the
// transform's constructor (lookup.cc).

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"
#include "sluice/resilience/retry_policy.h"
#include "sluice/transforms/lookup/lookup_cache.h"
#include "sluice/transforms/lookup/lookup_levels.h"

namespace sluice::lookup {

/// What becomes of a row without a reference row: its added columns null, dropped (counted),
/// the run failed, or sent to the node's `<id>.dead_letter` output with the reason.
enum class OnMiss : uint8_t { kNull, kSkip, kFail, kDeadLetter };

struct LookupConfig {
  std::vector<std::string> key;
  ReferenceOptions ref;
  std::string cache_name;
  CacheOptions cache;
  std::optional<RedisLevelOptions> redis;
  OnMiss on_miss = OnMiss::kNull;
  bool pass_null_keys = false;  // null_key: pass — a null key is no miss; its columns are null
  std::string prefix;           // before the added columns' names
  RetryPolicy db_retry = {.initial_us = 200'000, .max_us = 5'000'000, .max_attempts = 6};
};

/// The transform for `options`, configured by `config`.
std::unique_ptr<Transform> NewLookupTransform(NodeOptions options, LookupConfig config);

}  // namespace sluice::lookup
