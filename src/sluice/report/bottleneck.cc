#include "sluice/report/bottleneck.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/format.h>

namespace sluice::report {

namespace {

std::string Pct(double fraction) { return fmt::format("{:.0f}%", fraction * 100); }

double Utilization(const NodeReport& n) {
  if (!std::isfinite(n.utilization)) return 0;
  return std::clamp(n.utilization, 0.0, 1.0);
}

double BlockedFraction(const RunReport& run, const NodeReport& n) {
  if (run.duration_s <= 0) return 0;
  return std::clamp(n.blocked_s / (run.duration_s * static_cast<double>(n.parallelism)), 0.0, 1.0);
}

bool IsSource(const NodeReport& n) { return n.kind == "source"; }
bool IsSink(const NodeReport& n) { return n.kind == "sink"; }

// The direct upstream of each node, as indexes into run.nodes.
std::vector<std::vector<size_t>> DirectUpstream(const RunReport& run) {
  const bool has_edges = std::any_of(run.nodes.begin(), run.nodes.end(),
                                     [](const NodeReport& n) { return n.inputs.has_value(); });
  std::vector<std::vector<size_t>> up(run.nodes.size());
  for (size_t i = 0; i < run.nodes.size(); ++i) {
    if (!has_edges) {
      if (IsSource(run.nodes[i])) continue;
      for (size_t j = 0; j < i; ++j) up[i].push_back(j);
      continue;
    }
    if (!run.nodes[i].inputs) continue;
    for (const auto& input : *run.nodes[i].inputs) {
      for (size_t j = 0; j < run.nodes.size(); ++j) {
        if (j != i && run.nodes[j].id == input) up[i].push_back(j);
      }
    }
  }
  return up;
}

// `node` and every node upstream of it, transitively.
std::vector<size_t> WithAncestors(const std::vector<std::vector<size_t>>& up, size_t node) {
  std::set<size_t> seen = {node};
  std::vector<size_t> stack = {node};
  while (!stack.empty()) {
    const size_t i = stack.back();
    stack.pop_back();
    for (size_t j : up[i]) {
      if (seen.insert(j).second) stack.push_back(j);
    }
  }
  return {seen.begin(), seen.end()};
}

int64_t Counter(const NodeReport& n, const char* name) {
  auto it = n.counters.find(name);
  return it == n.counters.end() ? 0 : it->second;
}

std::string BytesText(double b) {
  if (b < 1024) return fmt::format("{:.0f} B", b);
  if (b < 1024.0 * 1024) return fmt::format("{:.1f} KiB", b / 1024);
  if (b < 1024.0 * 1024 * 1024) return fmt::format("{:.1f} MiB", b / (1024.0 * 1024));
  return fmt::format("{:.2f} GiB", b / (1024.0 * 1024 * 1024));
}

// Advice when the batches a node makes or receives are always as large as allowed.
void AddPinnedBatchAdvice(const NodeReport& n, std::vector<std::string>* advice) {
  const int64_t size = Counter(n, "batch_size");
  const int64_t max = Counter(n, "batch_size_max");
  if (max > 0 && size >= max) {
    advice->push_back(
        fmt::format("the adaptive batch size of '{}' is pinned at its max ({} rows): raise "
                    "`max_batch_size` of '{}'",
                    n.id, max, n.id));
    return;
  }
  auto it = n.histograms.find("batch_rows");
  if (it == n.histograms.end()) return;
  const HistogramReport& h = it->second;
  if (h.count >= 2 && h.max > 0 && h.p50 >= h.max * (1 - 1e-9)) {
    advice->push_back(
        fmt::format("every batch of '{}' has its configured size ({:.0f} rows): a larger batch "
                    "size option (`batch_size`, `batch_rows`) cuts the per-batch overhead",
                    n.id, h.max));
  }
}

}  // namespace

Bottleneck AnalyzeBottleneck(const RunReport& run) {
  Bottleneck b;
  if (run.nodes.empty()) {
    b.reason = "the report has no nodes";
    return b;
  }
  const auto up = DirectUpstream(run);

  // Rule 1: the busiest node whose upstream waits on it.
  size_t limiting = run.nodes.size();
  size_t blocked_input = run.nodes.size();
  for (size_t i = 0; i < run.nodes.size(); ++i) {
    size_t most_blocked = run.nodes.size();
    for (size_t j : up[i]) {
      const double f = BlockedFraction(run, run.nodes[j]);
      if (f >= kBlockedFraction &&
          (most_blocked == run.nodes.size() || f > BlockedFraction(run, run.nodes[most_blocked]))) {
        most_blocked = j;
      }
    }
    if (most_blocked == run.nodes.size()) continue;
    if (limiting == run.nodes.size() ||
        Utilization(run.nodes[i]) > Utilization(run.nodes[limiting])) {
      limiting = i;
      blocked_input = most_blocked;
    }
  }

  size_t busiest = 0;
  for (size_t i = 1; i < run.nodes.size(); ++i) {
    if (Utilization(run.nodes[i]) > Utilization(run.nodes[busiest])) busiest = i;
  }
  const bool idle = limiting == run.nodes.size() && Utilization(run.nodes[busiest]) < kIdle;

  if (limiting != run.nodes.size()) {
    const NodeReport& n = run.nodes[limiting];
    const NodeReport& in = run.nodes[blocked_input];
    b.reason = fmt::format(
        "busy {} of the time while its input '{}' is blocked {} of the run waiting for room in "
        "it (backpressure)",
        Pct(Utilization(n)), in.id, Pct(BlockedFraction(run, in)));
  } else if (idle) {
    // Rule 2: nothing is busy, so the pipeline waits for input.
    limiting = busiest;
    for (size_t i = 0; i < run.nodes.size(); ++i) {
      if (IsSource(run.nodes[i]) &&
          (!IsSource(run.nodes[limiting]) ||
           Utilization(run.nodes[i]) > Utilization(run.nodes[limiting]))) {
        limiting = i;
      }
    }
    b.reason = fmt::format(
        "every node is busy under {} of the time: the pipeline waits for input from this source "
        "or the system it reads from",
        Pct(kIdle));
  } else {
    // Rule 3.
    limiting = busiest;
    const NodeReport& n = run.nodes[limiting];
    b.reason = fmt::format(
        "the busiest node (busy {} of the time); nothing upstream of it waits for room "
        "downstream",
        Pct(Utilization(n)));
  }
  const NodeReport& x = run.nodes[limiting];
  b.node = x.id;

  std::set<size_t> sink_advised;
  for (size_t i = 0; i < run.nodes.size(); ++i) {
    const NodeReport& n = run.nodes[i];
    if (!IsSink(n) || Utilization(n) < kSinkSaturated) continue;
    sink_advised.insert(i);
    b.advice.push_back(fmt::format(
        "sink backpressure: '{}' is busy {}, the destination sets the pace; make each write "
        "cheaper (larger batches, fewer indexes or constraints on the target) or split the "
        "stream over several sinks",
        n.id, Pct(Utilization(n))));
  }

  if (!idle && !sink_advised.count(limiting) && Utilization(x) >= kNearFull) {
    if (blocked_input != run.nodes.size()) {
      const NodeReport& in = run.nodes[blocked_input];
      b.advice.push_back(fmt::format(
          "raise `parallelism` of '{}' (now {}): each instance is busy {}, '{}' waits {} of the "
          "run for it",
          x.id, x.parallelism, Pct(Utilization(x)), in.id, Pct(BlockedFraction(run, in))));
    } else if (IsSource(x)) {
      b.advice.push_back(fmt::format(
          "the source '{}' is busy {}: reading (or the system it reads from) sets the pace; "
          "larger batches or a faster query/disk on that side are what help",
          x.id, Pct(Utilization(x))));
    } else {
      b.advice.push_back(
          fmt::format("raise `parallelism` of '{}' (now {}): each instance is busy {}", x.id,
                      x.parallelism, Pct(Utilization(x))));
    }
  }

  // Batch sizes are set at the sources; other nodes see what the sources made.
  for (size_t i : WithAncestors(up, limiting)) {
    if (IsSource(run.nodes[i])) AddPinnedBatchAdvice(run.nodes[i], &b.advice);
  }

  const bool near_limit = run.memory_budget_limit_bytes > 0 &&
                          static_cast<double>(run.memory_budget_peak_bytes) >=
                              kMemoryNearLimit * static_cast<double>(run.memory_budget_limit_bytes);
  if (run.memory_budget_waits > 0 || near_limit) {
    std::string facts;
    if (run.memory_budget_waits > 0) {
      facts = fmt::format("{} waits", run.memory_budget_waits);
    }
    if (run.memory_budget_limit_bytes > 0) {
      if (!facts.empty()) facts += ", ";
      facts +=
          fmt::format("peak {} of {}", BytesText(static_cast<double>(run.memory_budget_peak_bytes)),
                      BytesText(static_cast<double>(run.memory_budget_limit_bytes)));
    }
    b.advice.push_back(
        fmt::format("memory budget exhausted ({}): raise `settings.memory_limit`", facts));
  }

  for (const NodeReport& n : run.nodes) {
    const int64_t retries = Counter(n, "retries");
    const int64_t batches = std::max<int64_t>(IsSink(n) ? n.batches_in : n.batches_out, 1);
    if (retries < kMinRetries ||
        static_cast<double>(retries) < kRetriesPerBatch * static_cast<double>(batches)) {
      continue;
    }
    b.advice.push_back(fmt::format(
        "retries dominate '{}' ({} retries for {} batches): its server fails or throttles; check "
        "its health and limits, or send it less at once (smaller batches, lower `parallelism` "
        "upstream)",
        n.id, retries, batches));
  }

  if (idle) {
    b.advice.push_back(fmt::format(
        "the source '{}' or the system it reads from limits the run (slow query, rate limit, "
        "polling interval); nothing downstream needs more resources",
        x.id));
  }
  return b;
}

Bottleneck AnalyzeBottleneck(const nlohmann::json& run) {
  auto report = ParseRunReport(run);
  if (!report.ok()) {
    Bottleneck b;
    b.reason = "not a run report: " + report.status().message();
    return b;
  }
  return AnalyzeBottleneck(*report);
}

std::string FormatBottleneck(const Bottleneck& b) {
  std::string out;
  if (b.node.empty()) {
    out = fmt::format("  bottleneck: none found ({})\n", b.reason);
  } else {
    out = fmt::format("  bottleneck: '{}' — {}\n", b.node, b.reason);
  }
  constexpr size_t kMaxAdvice = 3;
  for (size_t i = 0; i < b.advice.size() && i < kMaxAdvice; ++i) {
    out += fmt::format("    - {}\n", b.advice[i]);
  }
  if (b.advice.empty()) out += "    - no change suggested\n";
  return out;
}

nlohmann::json BottleneckToJson(const Bottleneck& b) {
  nlohmann::json j;
  j["node"] = b.node.empty() ? nlohmann::json(nullptr) : nlohmann::json(b.node);
  j["reason"] = b.reason;
  j["advice"] = b.advice;
  return j;
}

}  // namespace sluice::report
