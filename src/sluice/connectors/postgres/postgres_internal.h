#pragma once

// Private to src/sluice/connectors/postgres/: helpers shared by the source and the sink.

#include <chrono>
#include <string>
#include <string_view>

#include "sluice/engine/node.h"
#include "sluice/resilience/clock.h"

namespace sluice::pg_internal {

/// Return `name` as a quoted SQL identifier; dots separate a schema from a table
/// ("audit.logs" -> "audit"."logs").
std::string QuoteIdentifier(std::string_view name);
/// Return `name` as one quoted SQL identifier, a dot being part of the name (for column names:
/// "a.b" -> "a.b", quotes doubled).
std::string QuoteName(std::string_view name);
/// Return `name` without its schema ("audit.logs" -> "logs").
std::string_view BaseName(std::string_view name);
/// Return `text` as a quoted SQL string literal.
std::string QuoteLiteral(std::string_view text);

inline int64_t ElapsedNanos(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start)
      .count();
}

/// The system clock, whose sleeps end early once the run is cancelled, so that a retry backoff
/// (up to 30 s) does not hold up a cancelled run.
class CancellableClock final : public Clock {
 public:
  explicit CancellableClock(const NodeContext* ctx) : ctx_(ctx) {}
  int64_t NowMicros() override { return SystemClock()->NowMicros(); }
  void SleepMicros(int64_t micros) override;

 private:
  const NodeContext* ctx_;
};

}  // namespace sluice::pg_internal
