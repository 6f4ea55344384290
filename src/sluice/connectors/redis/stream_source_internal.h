#pragma once

// Private to the redis connector: the redis_stream source's settings, read from its options
// (stream_source_options.cc) and used by the source (stream_source.cc).

#include <memory>
#include <string>

#include "sluice/connectors/redis/redis_client.h"
#include "sluice/core/schema.h"
#include "sluice/engine/node.h"

namespace sluice::redis {

/// What the source does with an entry it cannot deliver.
enum class OnError : uint8_t { kFail, kSkip, kDeadLetter };

/// The source's settings, validated.
struct SourceConfig {
  RedisOptions redis;
  std::string stream;
  std::string group;
  std::string consumer;
  bool create_group = true;
  std::string start_id;
  SchemaPtr schema;
  std::string json_field;  // "": a field per column
  int64_t batch_rows = 10000;
  int64_t linger_us = 200'000;
  int64_t block_us = 100'000;
  int64_t claim_idle_us = 60'000'000;
  OnError on_error = OnError::kFail;
  int64_t max_deliveries = 0;  // 0: no limit
  int event_time = -1;         // the schema's column of event times; -1: no watermark
  int64_t lateness_us = 0;
  int64_t idle_timeout_us = 0;  // 0: an idle stream's watermark stays where it is
};

/// Return a redis_stream source with these settings.
std::unique_ptr<Source> NewStreamSource(SourceConfig config);

}  // namespace sluice::redis
