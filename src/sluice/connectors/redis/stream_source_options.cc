#include <unistd.h>

#include <cstdio>
#include <string>

#include "sluice/connectors/redis/redis.h"
#include "sluice/connectors/redis/stream_source.h"
#include "sluice/connectors/redis/stream_source_internal.h"

namespace sluice::redis {

namespace {

std::string DefaultConsumer() {
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) != 0) std::snprintf(host, sizeof(host), "host");
  return fmt::format("{}-{}", host, getpid());
}

}  // namespace

OptionSchema StreamSourceOptionSpecs() {
  OptionSchema o = ConnectionOptionSpecs();
  const OptionSchema own = {
      {"stream", OptionType::kString, "", "The stream key to read.", true, {}},
      {"group", OptionType::kString, "", "The consumer group.", true, {}},
      {"consumer",
       OptionType::kString,
       "",
       "This reader's name in the group; default <hostname>-<pid>. A rerun with the same name "
       "reads its own pending entries first.",
       false,
       {}},
      {"create_group",
       OptionType::kBool,
       "true",
       "Create the group (and the stream) when missing: XGROUP CREATE ... start_id MKSTREAM.",
       false,
       {}},
      {"start_id",
       OptionType::kString,
       "$",
       "Where a group created here starts: $ (new entries only) or 0 (the whole stream).",
       false,
       {}},
      {"schema",
       OptionType::kMap,
       "",
       "Field name -> column type; a missing field is NULL, fields not listed are ignored.",
       true,
       {}},
      {"json_field",
       OptionType::kString,
       "",
       "Read the columns from this one field of each entry, a JSON object with a key per "
       "column of `schema` (missing or null: NULL), instead of a field per column.",
       false,
       {}},
      {"batch_rows", OptionType::kInt, "10000", "Most entries per batch.", false, {}},
      {"linger",
       OptionType::kDuration,
       "200ms",
       "Close a batch this long after its first entry even when not full.",
       false,
       {}},
      {"block",
       OptionType::kDuration,
       "100ms",
       "Longest wait for new entries in one XREADGROUP; nothing in that time ends the call "
       "with \"nothing yet\".",
       false,
       {}},
      {"claim_idle",
       OptionType::kDuration,
       "60s",
       "Claim entries pending on any consumer for longer than this (XAUTOCLAIM, every 5 s).",
       false,
       {}},
      {"on_error",
       OptionType::kEnum,
       "fail",
       "An entry whose field does not parse as its column's type (or delivered more than "
       "max_deliveries times): fail the run (naming the entry id), skip it (counted in "
       "skipped_records), or send it to the `<id>.dead_letter` output (entry id, error, "
       "fields as JSON). Skipped and routed entries are acknowledged with their batch.",
       false,
       {"fail", "skip", "dead_letter"}},
      {"max_deliveries",
       OptionType::kInt,
       "0",
       "An entry read again (own pending, or claimed) after this many deliveries is not "
       "delivered again but handled by on_error: a poison entry that kills every reader stops "
       "circulating. 0: no limit.",
       false,
       {}},
      {"event_time",
       OptionType::kString,
       "",
       "A timestamp column of `schema` holding each entry's event time: the source's watermark "
       "is the largest seen less `lateness` (windows downstream close by it). Empty: none.",
       false,
       {}},
      {"lateness",
       OptionType::kDuration,
       "0s",
       "How far behind the newest event time an entry may still come (out of order).",
       false,
       {}},
      {"idle_timeout",
       OptionType::kDuration,
       "0s",
       "After this long without entries the watermark follows the wall clock (less lateness); "
       "0: it waits for entries.",
       false,
       {}},
  };
  o.insert(o.end(), own.begin(), own.end());
  return o;
}

Result<std::unique_ptr<Source>> MakeStreamSource(const NodeOptions& o) {
  SourceConfig c;
  SLUICE_ASSIGN_OR_RETURN(c.redis, ConnectionOptionsFrom(o));
  c.stream = o.GetString("stream");
  if (c.stream.empty()) return o.ErrorAt("stream", "must not be empty");
  c.group = o.GetString("group");
  if (c.group.empty()) return o.ErrorAt("group", "must not be empty");
  c.consumer = o.GetString("consumer");
  if (c.consumer.empty()) c.consumer = DefaultConsumer();
  c.create_group = o.GetBool("create_group");
  c.start_id = o.Has("start_id") ? o.GetString("start_id") : std::string("$");
  if (c.start_id.empty()) return o.ErrorAt("start_id", "must be $, 0 or an entry id");
  SLUICE_ASSIGN_OR_RETURN(c.schema, o.GetSchema("schema"));
  if (c.schema == nullptr || c.schema->fields().empty()) {
    return o.ErrorAt("schema", "declare the columns to read: field name -> type");
  }
  c.json_field = o.GetString("json_field");
  c.batch_rows = o.GetInt("batch_rows");
  if (c.batch_rows < 1) return o.ErrorAt("batch_rows", "must be at least 1");
  c.linger_us = o.GetDurationMicros("linger");
  c.block_us = o.GetDurationMicros("block");
  if (c.block_us < 1000) return o.ErrorAt("block", "must be at least 1ms");
  c.claim_idle_us = o.GetDurationMicros("claim_idle");
  if (c.claim_idle_us < 1000) return o.ErrorAt("claim_idle", "must be at least 1ms");
  if (c.redis.command_timeout_us > 0 && c.redis.command_timeout_us <= c.block_us) {
    return o.ErrorAt("timeout", "must be longer than `block`");
  }
  const std::string on_error = o.GetString("on_error");
  c.on_error = on_error == "skip"          ? OnError::kSkip
               : on_error == "dead_letter" ? OnError::kDeadLetter
                                           : OnError::kFail;
  c.max_deliveries = o.GetInt("max_deliveries");
  if (c.max_deliveries < 0) return o.ErrorAt("max_deliveries", "must be 0 (no limit) or more");
  if (const std::string et = o.GetString("event_time"); !et.empty()) {
    c.event_time = c.schema->FieldIndex(et);
    if (c.event_time < 0 || c.schema->field(c.event_time).type != TypeId::kTimestamp) {
      return o.ErrorAt("event_time", fmt::format("'{}' is not a timestamp column of `schema`", et));
    }
  }
  c.lateness_us = o.GetDurationMicros("lateness");
  c.idle_timeout_us = o.GetDurationMicros("idle_timeout");
  if (c.lateness_us < 0 || c.idle_timeout_us < 0) {
    return o.ErrorAt(c.lateness_us < 0 ? "lateness" : "idle_timeout", "must not be negative");
  }
  return NewStreamSource(std::move(c));
}

}  // namespace sluice::redis
