#pragma once

// The Redis nodes: the `redis_stream` source (consumer groups) and sink (XADD).

#include "sluice/connectors/redis/redis_client.h"
#include "sluice/engine/options.h"
#include "sluice/engine/registry.h"

namespace sluice {

/// Register the `redis_stream` source and sink.
void RegisterRedisNodes(NodeRegistry* registry);

namespace redis {

/// The connection options every Redis node takes: url, password_env, connect_timeout, timeout.
OptionSchema ConnectionOptionSpecs();
/// Read them: the password comes from the environment variable named by `password_env` when
/// the URL has none (never into a message); a bad URL is a config error at `url`.
Result<RedisOptions> ConnectionOptionsFrom(const NodeOptions& o);

}  // namespace redis
}  // namespace sluice
