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

enum class OnMiss : uint8_t { kNull, kSkip, kFail };

struct LookupConfig {
  std::vector<std::string> key;
  ReferenceOptions ref;
  std::string cache_name;
  CacheOptions cache;
  std::optional<RedisLevelOptions> redis;
  OnMiss on_miss = OnMiss::kNull;
  std::string prefix;  // before the added columns' names
  RetryPolicy db_retry = {.initial_us = 200'000, .max_us = 5'000'000, .max_attempts = 6};
};

/// The transform for `options`, configured by `config`.
std::unique_ptr<Transform> NewLookupTransform(NodeOptions options, LookupConfig config);

}  // namespace sluice::lookup
