#pragma once

// The `redis_stream` source: XREADGROUP in a consumer group, XACK on commit.

#include <memory>

#include "sluice/engine/node.h"
#include "sluice/engine/options.h"

namespace sluice::redis {

OptionSchema StreamSourceOptionSpecs();
Result<std::unique_ptr<Source>> MakeStreamSource(const NodeOptions& o);

}  // namespace sluice::redis
