#pragma once

// Option parsing shared by the file source and sink. Private to connectors/files.

#include <chrono>
#include <optional>
#include <string>

#include "sluice/engine/node_stats.h"
#include "sluice/engine/options.h"
#include "sluice/io/compression.h"
#include "sluice/io/csv.h"
#include "sluice/io/format.h"

namespace sluice::files_internal {

/// Return option `name` as a string, or `fallback` when absent (NodeOptions::ForTest does not
/// fill in defaults).
inline std::string StringOr(const NodeOptions& o, const std::string& name,
                            const std::string& fallback) {
  return o.Has(name) ? o.GetString(name) : fallback;
}
inline int64_t IntOr(const NodeOptions& o, const std::string& name, int64_t fallback) {
  return o.Has(name) ? o.GetInt(name) : fallback;
}
inline bool BoolOr(const NodeOptions& o, const std::string& name, bool fallback) {
  return o.Has(name) ? o.GetBool(name) : fallback;
}

/// Return the `format` option: a format, or nullopt for "auto" (by file extension).
inline Result<std::optional<io::Format>> ParseFormatOption(const NodeOptions& o) {
  const std::string v = StringOr(o, "format", "auto");
  if (v == "auto") return std::optional<io::Format>();
  auto f = io::ParseFormat(v);
  if (!f.ok()) return o.ErrorAt("format", f.status().message());
  return std::optional<io::Format>(*f);
}

/// Return the `compression` option: a codec, or nullopt for "auto" (by file extension).
inline Result<std::optional<io::Codec>> ParseCompressionOption(const NodeOptions& o) {
  const std::string v = StringOr(o, "compression", "auto");
  if (v == "auto") return std::optional<io::Codec>();
  auto c = io::ParseCodec(v);
  if (!c.ok()) return o.ErrorAt("compression", c.status().message());
  return std::optional<io::Codec>(*c);
}

/// Return the `delimiter` option: one character; "\t" and "tab" mean a tab.
inline Result<char> ParseDelimiterOption(const NodeOptions& o) {
  const std::string v = StringOr(o, "delimiter", ",");
  char d;
  if (v == "\\t" || v == "tab") {
    d = '\t';
  } else if (v.size() == 1) {
    d = v[0];
  } else {
    return o.ErrorAt("delimiter", "must be a single character (or \"\\t\")");
  }
  Status s = io::ValidateDelimiter(d);
  if (!s.ok()) return o.ErrorAt("delimiter", s.message());
  return d;
}

/// Add the time since construction to a phase of a node's stats when destroyed.
class PhaseTimer {
 public:
  PhaseTimer(NodeStats* stats, const char* phase)
      : stats_(stats), phase_(phase), start_(std::chrono::steady_clock::now()) {}
  ~PhaseTimer() {
    if (stats_ == nullptr) return;
    stats_->AddPhase(phase_, std::chrono::duration_cast<std::chrono::nanoseconds>(
                                 std::chrono::steady_clock::now() - start_)
                                 .count());
  }
  PhaseTimer(const PhaseTimer&) = delete;
  PhaseTimer& operator=(const PhaseTimer&) = delete;

 private:
  NodeStats* stats_;
  const char* phase_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace sluice::files_internal
