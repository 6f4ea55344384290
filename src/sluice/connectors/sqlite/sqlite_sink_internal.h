#pragma once

// Private to the `sqlite` sink: its configuration, parsed from the node's options in
// sqlite_sink_options.cc and used by the sink in sqlite_sink.cc.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/result.h"
#include "sluice/engine/options.h"

namespace sluice::sqlite_sink {

inline constexpr int64_t kDefaultTransactionRows = 50'000;
inline constexpr int64_t kDefaultBusyTimeoutUs = 5'000'000;

/// What the sink does with a batch: insert its rows, insert or replace them (by the table's
/// primary key or unique constraints), or delete the table's rows whose key is in it.
enum class SinkMode : uint8_t { kInsert, kReplace, kDelete };

/// The sink's options, checked (ParseSinkOptions).
struct SinkConfig {
  std::string path;
  std::string table;
  bool create_table = true;
  std::string primary_key;           // column declared INTEGER PRIMARY KEY when creating
  std::vector<std::string> indexes;  // entries of `indexes`: "col", "a, b" or "auto"
  bool index_after_load = false;
  int64_t batch_rows = kDefaultTransactionRows;
  SinkMode mode = SinkMode::kInsert;
  std::vector<std::string> key;  // delete: the columns naming the rows to delete
  std::string journal_mode = "wal";
  // FULL: each commit is on disk before Write releases the acks, so a source that deletes what
  // it read (delete_after_ack) never deletes a row that a power loss could take from here. In
  // WAL mode NORMAL would only sync at checkpoints: the last commits could be lost.
  std::string synchronous = "full";
  bool timestamp_micros = false;
  int64_t busy_timeout_us = kDefaultBusyTimeoutUs;
};

/// Return the sink's configuration from validated `options`; kConfigError names the option.
Result<SinkConfig> ParseSinkOptions(const NodeOptions& options);

}  // namespace sluice::sqlite_sink
