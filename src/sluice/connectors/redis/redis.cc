#include "sluice/connectors/redis/redis.h"

#include <cstdlib>

#include "sluice/connectors/redis/stream_sink.h"
#include "sluice/connectors/redis/stream_source.h"

namespace sluice {
namespace redis {

OptionSchema ConnectionOptionSpecs() {
  return {
      {"url",
       OptionType::kString,
       "",
       "redis://[user][:password]@host[:port][/db]; the password is never logged.",
       true,
       {}},
      {"password_env",
       OptionType::kString,
       "REDIS_PASSWORD",
       "Environment variable holding the password, used when the URL has none.",
       false,
       {}},
      {"connect_timeout", OptionType::kDuration, "5s", "Per connection attempt.", false, {}},
      {"timeout", OptionType::kDuration, "10s", "Per command reply.", false, {}},
  };
}

Result<RedisOptions> ConnectionOptionsFrom(const NodeOptions& o) {
  RedisOptions r;
  r.url = o.GetString("url");
  auto url = ParseRedisUrl(r.url);
  if (!url.ok()) return o.ErrorAt("url", url.status().message());
  const std::string env = o.GetString("password_env");
  if (url->password.empty() && !env.empty()) {
    if (const char* pw = std::getenv(env.c_str()); pw != nullptr) r.password = pw;
  }
  r.connect_timeout_us = o.GetDurationMicros("connect_timeout");
  r.command_timeout_us = o.GetDurationMicros("timeout");
  if (r.connect_timeout_us <= 0) return o.ErrorAt("connect_timeout", "must be positive");
  if (r.command_timeout_us < 0) return o.ErrorAt("timeout", "must be >= 0 (0: none)");
  return r;
}

}  // namespace redis

void RegisterRedisNodes(NodeRegistry* registry) {
  registry->AddSink("redis_stream",
                    "Append each row to a Redis stream (pipelined XADD, one field per column; "
                    "NULLs left out), acknowledged once every reply of the batch is OK. Rows "
                    "whose replies a lost connection cut off are sent again: at least once.",
                    redis::StreamSinkOptionSpecs(), &redis::MakeStreamSink);
  registry->AddSource(
      "redis_stream",
      "Read a Redis stream in a consumer group (XREADGROUP): the consumer's own pending entries "
      "first, then new ones, entries idle too long on other consumers claimed (XAUTOCLAIM); "
      "XACK once every sink has made the batch durable. Unbounded.",
      redis::StreamSourceOptionSpecs(), &redis::MakeStreamSource);
}

}  // namespace sluice
