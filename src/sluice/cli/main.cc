// The `sluice` command: run, validate and draw pipelines, and list node types.
#include <malloc.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <thread>

#include <CLI/CLI.hpp>

#include "sluice/agent/agent.h"
#include "sluice/alerts/alerts.h"
#include "sluice/builtin_nodes.h"
#include "sluice/cli/agent_command.h"
#include "sluice/cli/exit_codes.h"
#include "sluice/cli/observe_commands.h"
#include "sluice/cli/run_monitor.h"
#include "sluice/cli/run_summary.h"
#include "sluice/cli/samples_command.h"
#include "sluice/config/loader.h"
#include "sluice/core/json_text.h"
#include "sluice/core/log.h"
#include "sluice/core/time.h"
#include "sluice/core/units.h"
#include "sluice/engine/executor.h"
#ifdef SLUICE_WITH_FAULT_NODES
#include "sluice/faults/fault_inject.h"
#endif
#include "sluice/history/run_history.h"
#include "sluice/report/bottleneck.h"

namespace sluice {
namespace {

std::atomic<bool> g_stop{false};         // the first SIGINT/SIGTERM: stop gracefully
std::atomic<bool> g_interrupted{false};  // the second: cancel, abandoning what is in flight

void OnSignal(int) {
  if (!g_stop.exchange(true)) return;
  if (!g_interrupted.exchange(true)) return;
  _exit(kExitInterrupted);  // a third: leave now
}

void InstallSignalHandlers() {
  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int ExitCodeFor(const Status& st) {
  if (st.ok()) return kExitOk;
  if (st.code() == StatusCode::kConfigError) return kExitUsage;
  if (st.code() == StatusCode::kCancelled && g_interrupted.load()) return kExitInterrupted;
  return kExitFailed;
}

void PrintError(const Status& st) { std::fprintf(stderr, "sluice: %s\n", st.message().c_str()); }

std::string NewRunId() {
  std::random_device rd;
  return fmt::format("{}-{:08x}", FormatTimestamp(NowMicros()).substr(0, 19), rd());
}

struct CommonArgs {
  std::string file;
  std::vector<std::string> sets;
};

Result<std::unique_ptr<Pipeline>> LoadAndBuild(const CommonArgs& args, const NodeRegistry& registry,
                                               const std::string& engine_override) {
  LoadOptions lo;
  lo.overrides = args.sets;
  // A pipeline file may carry `sluice agent`'s section; run, validate and graph check and
  // ignore it.
  lo.sections = {agent::AgentSection()};
  if (!engine_override.empty()) lo.overrides.push_back("settings.engine=" + engine_override);
  SLUICE_ASSIGN_OR_RETURN(PipelineSpec spec, LoadPipelineFile(args.file, registry, lo));
  return Pipeline::Build(std::move(spec), registry);
}

struct RunArgs {
  bool dry_run = false;
  bool quiet = false;
  std::string report;
  std::string engine;
  std::string metrics_listen;
  std::string history;
  bool no_history = false;
  bool fail_on_alert = false;
  bool no_metrics = false;
  std::string until_idle;  // --until-idle: a duration, "" for none
};

/// Record the run in the history; a failure to record is a warning, never a failed run.
void RecordHistory(const RunArgs& args, const PipelineSpec& spec, const nlohmann::json& report) {
  if (args.no_history) return;
  const std::string location =
      HistoryLocation(args.history.empty() ? spec.settings.history : args.history);
  auto h = history::OpenRunHistory(location);
  Status st = h.status();
  if (st.ok()) {
    auto record = history::RunRecordFromParsedReport(report, NowMicros());
    st = record.ok() ? (*h)->Record(*record) : record.status();
  }
  if (!st.ok()) Log(LogLevel::kWarn, "run history not recorded: {}", st.message());
}

int CmdRun(const CommonArgs& common, const NodeRegistry& registry, const RunArgs& args) {
  int64_t until_idle_us = 0;
  if (!args.until_idle.empty()) {
    auto d = ParseDurationMicros(args.until_idle);
    if (!d.ok() || *d <= 0) {
      std::fprintf(stderr, "sluice: --until-idle: '%s' is not a duration like 5s or 500ms\n",
                   args.until_idle.c_str());
      return kExitUsage;
    }
    until_idle_us = *d;
  }
  auto built = LoadAndBuild(common, registry, args.engine);
  if (!built.ok()) {
    PrintError(built.status());
    return ExitCodeFor(built.status());
  }
  std::unique_ptr<Pipeline> pipeline = std::move(*built);
  InstallSignalHandlers();
  RunOptions options;
  options.dry_run = args.dry_run;
  options.histograms = !args.no_metrics;
  options.interrupt = &g_interrupted;
  options.stop = &g_stop;
  options.until_idle_us = until_idle_us;
  PipelineRun run(pipeline.get(), options);
  const std::string run_id = NewRunId();

  RunMonitorOptions mo;
  mo.run_id = run_id;
  mo.metrics_listen =
      args.metrics_listen.empty() ? pipeline->spec().settings.metrics_listen : args.metrics_listen;
  // A bare port listens on loopback: exposing metrics beyond the host is a deliberate choice.
  if (!mo.metrics_listen.empty() &&
      mo.metrics_listen.find_first_not_of("0123456789") == std::string::npos) {
    mo.metrics_listen = "127.0.0.1:" + mo.metrics_listen;
  }
  if (!pipeline->spec().alerts.is_null()) {
    auto rules = alerts::ParseAlertRules(pipeline->spec().alerts, alerts::StandardAlertMetrics());
    if (!rules.ok()) {
      PrintError(rules.status());
      return kExitUsage;
    }
    mo.alert_rules = std::move(*rules);
  }
  RunMonitor monitor(&run, mo);
  if (Status st = args.no_metrics ? Status::OK() : monitor.Start(); !st.ok()) {
    PrintError(st.WithContext("--metrics-listen"));
    return st.code() == StatusCode::kInvalidArgument ? kExitUsage : kExitFailed;
  }

  // A live progress line on a terminal; nothing when piped or --quiet.
  std::atomic<bool> done{false};
  std::thread progress;
  const bool tty = !args.quiet && isatty(STDERR_FILENO);
  if (tty) {
    progress = std::thread([&] {
      ProgressWindow window;
      while (!done.load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
        if (done.load()) break;
        std::fprintf(stderr, "\r\033[K%s", FormatProgressLine(run, &window).c_str());
        std::fflush(stderr);
      }
      std::fprintf(stderr, "\r\033[K");
    });
  }
  Status st = run.Execute();
  done = true;
  if (progress.joinable()) progress.join();
  monitor.Stop(st);

  nlohmann::json report = RunReportJson(run, st, run_id);
  monitor.AddToReport(&report);
  const report::Bottleneck bottleneck = report::AnalyzeBottleneck(report);
  report["bottleneck"] = report::BottleneckToJson(bottleneck);
  if (!args.quiet) {
    std::string summary = FormatRunSummary(run, st);
    if (st.ok()) summary += report::FormatBottleneck(bottleneck);
    std::fputs(summary.c_str(), stderr);
  }
  if (!args.report.empty()) {
    std::ofstream out(args.report);
    out << JsonText(report, 2) << "\n";
    if (!out) {
      std::fprintf(stderr, "sluice: cannot write report '%s'\n", args.report.c_str());
      if (st.ok()) return kExitFailed;
    }
  }
  RecordHistory(args, pipeline->spec(), report);
  if (!st.ok()) {
    if (args.quiet || st.code() != StatusCode::kCancelled) PrintError(st);
    return ExitCodeFor(st);
  }
  if (args.fail_on_alert && monitor.AlertFired()) {
    std::fprintf(stderr, "sluice: an alert fired during the run (--fail-on-alert)\n");
    return kExitAlert;
  }
  return kExitOk;
}

std::string DefaultText(const OptionSpec& o) {
  if (o.required) return "required";
  if (o.default_value.empty()) return "-";
  return o.default_value;
}

std::string TypeText(const OptionSpec& o, const char* separator) {
  if (o.type == OptionType::kEnum) {
    std::string t;
    for (const auto& c : o.choices) t += (t.empty() ? "" : separator) + c;
    return t;
  }
  if (o.shape == MapShape::kNamedRecords) {
    return o.names_as_list ? "names, or name -> map" : "name -> map";
  }
  return std::string(OptionTypeName(o.type));
}

/// Call `row(path, spec)` for `o` and then for each of its nested keys, depth first; a key of
/// a map of named entries is shown as `databases.<name>.dsn`.
void ForEachOption(const OptionSpec& o, const std::string& path,
                   const std::function<void(const std::string&, const OptionSpec&)>& row) {
  row(path, o);
  const std::string prefix = path + (o.shape == MapShape::kNamedRecords ? ".<name>." : ".");
  for (const auto& f : o.fields) ForEachOption(f, prefix + f.name, row);
}

int CmdNodes(const NodeRegistry& registry, const std::string& type, bool markdown) {
  if (!type.empty()) {
    const NodeTypeInfo* info = registry.Find(type);
    if (info == nullptr) {
      std::string hint = SuggestNearest(type, registry.Names());
      std::fprintf(stderr, "sluice: unknown node type '%s'%s\n", type.c_str(),
                   hint.empty() ? "" : (" — did you mean '" + hint + "'?").c_str());
      return kExitUsage;
    }
  }
  if (markdown) {
    std::cout << "# Node types\n\nGenerated by `sluice nodes --markdown` from the option "
                 "schemas in the code; do not edit by hand.\n\nEvery node also accepts: ";
    std::string common;
    for (const auto& o : CommonNodeOptions())
      common += (common.empty() ? "`" : ", `") + o.name + "`";
    std::cout << common << " (see the README).\n";
  }
  for (const auto* info : registry.All()) {
    if (!type.empty() && info->name != type) continue;
    if (markdown) {
      std::cout << fmt::format("\n## `{}` ({})\n\n{}\n\n", info->name, NodeKindName(info->kind),
                               info->doc);
      if (info->options.empty()) {
        std::cout << "No options.\n";
        continue;
      }
      std::cout << "| option | type | default | description |\n|---|---|---|---|\n";
      for (const auto& o : info->options) {
        ForEachOption(o, o.name, [](const std::string& path, const OptionSpec& spec) {
          std::cout << fmt::format("| `{}` | {} | {} | {} |\n", path, TypeText(spec, " \\| "),
                                   DefaultText(spec), spec.doc);
        });
      }
      continue;
    }
    std::cout << fmt::format("{:<12} {:<9}  {}\n", info->name, NodeKindName(info->kind), info->doc);
    if (type.empty()) continue;
    for (const auto& o : info->options) {
      ForEachOption(o, o.name, [](const std::string& path, const OptionSpec& spec) {
        std::cout << fmt::format("  {:<16} {:<20} {:<10} {}\n", path, TypeText(spec, "|"),
                                 DefaultText(spec), spec.doc);
      });
    }
  }
  return kExitOk;
}

int Main(int argc, char** argv) {
#ifdef __GLIBC__
  // Batches and objects are buffers of megabytes, freed on other threads than the ones that
  // made them. glibc's adaptive threshold soon serves such sizes from per-thread heaps, which
  // keep freed memory: a run's RSS then grows well past what it holds (bench/archive with a
  // poorly compressible payload: 266-314 MiB, 196 MiB with this). Map them directly, so that
  // freeing one gives its memory back.
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  // Setting that also fixes the trim threshold at its 128 KiB default: every time a batch's
  // buffers were freed, the top of the heap went back to the kernel, and the next batch took it
  // back page by page (page faults and zeroing were 40 % of bench/diamond on the sequential
  // executor: 4.2 s, 1.2 s with this). Keep 16 MiB at the top of each heap when trimming.
  mallopt(M_TOP_PAD, 16 << 20);
#endif
  NodeRegistry registry;
  RegisterBuiltinNodes(&registry);
#ifdef SLUICE_WITH_FAULT_NODES
  RegisterFaultNodes(&registry);  // sluice-testing only
#endif

  CLI::App app{
      "sluice: move and process records between databases, files and object storage, "
      "declared as a DAG in one YAML file."};
  app.set_version_flag("--version", std::string("sluice ") + SLUICE_VERSION);
  app.require_subcommand(1);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug messages");

  CommonArgs common;
  RunArgs ra;
  std::string node_type;
  bool markdown = false;

  auto* run = app.add_subcommand("run", "Run a pipeline");
  run->add_option("file", common.file, "Pipeline YAML file")->required();
  run->add_flag("--dry-run", ra.dry_run, "Count and describe what would be done; change nothing");
  run->add_flag("-q,--quiet", ra.quiet, "No progress line and no summary");
  run->add_option("--report", ra.report, "Write the run report as JSON to this file");
  run->add_option("--set", common.sets, "Override a config value: PATH=VALUE (repeatable)");
  run->add_option("--engine", ra.engine, "Override settings.engine")
      ->check(CLI::IsMember({"parallel", "sequential"}));
  run->add_option("--metrics-listen", ra.metrics_listen,
                  "Serve Prometheus /metrics and /api/v1/run at HOST:PORT (e.g. 127.0.0.1:9464)");
  run->add_option("--history", ra.history,
                  "Record the run here: a SQLite path or a PostgreSQL DSN (default "
                  "$SLUICE_HISTORY, else ~/.local/state/sluice/runs.db)");
  run->add_flag("--no-history", ra.no_history, "Do not record the run");
  run->add_flag("--fail-on-alert", ra.fail_on_alert, "Exit 3 when an alert fired");
  run->add_option("--until-idle", ra.until_idle,
                  "End the run gracefully once no source has produced a row for this long (5s)");
  run->add_flag("--no-metrics", ra.no_metrics,
                "No histograms, time series, alerts or metrics server (to measure their cost)");

  std::string report_file, report_run, report_out, history_flag, runs_pipeline, runs_status;
  int64_t runs_limit = 20;
  auto* report_cmd = app.add_subcommand("report", "Render a run report as one HTML file");
  report_cmd->add_option("file", report_file, "A run report (sluice run --report FILE)");
  report_cmd->add_option("--run", report_run, "A run id from `sluice runs` instead of a file");
  report_cmd->add_option("-o,--output", report_out, "The HTML file to write (report.html)");
  report_cmd->add_option("--history", history_flag, "Where runs are recorded");
  SamplesReportArgs samples_args;
  report_cmd->add_option("--samples", samples_args.dsn,
                         "Chart a host's stored samples from this PostgreSQL (the agent's "
                         "samples table) instead of a run");
  report_cmd->add_option("--table", samples_args.table, "With --samples: the table (samples)");
  report_cmd->add_option("--host", samples_args.host,
                         "With --samples: the host (needed when the table holds several)");
  report_cmd->add_option("--since", samples_args.since,
                         "With --samples: only this long before the newest sample (24h)");
  report_cmd->add_option("--max-points", samples_args.max_points,
                         "With --samples: points per series after downsampling (2000)");

  auto* runs = app.add_subcommand("runs", "List recorded runs, newest first");
  runs->add_option("--pipeline", runs_pipeline, "Only this pipeline");
  runs->add_option("--status", runs_status, "Only runs with this status")
      ->check(CLI::IsMember({"ok", "failed", "cancelled"}));
  runs->add_option("--limit", runs_limit, "At most this many (0 = all)");
  runs->add_option("--history", history_flag, "Where runs are recorded");

  std::string top_addr;
  int top_interval_ms = 1000, top_iterations = 0;
  auto* top = app.add_subcommand("top", "Live view of a run started with --metrics-listen");
  top->add_option("address", top_addr, "HOST:PORT of the run (127.0.0.1:9464)");
  top->add_option("--interval-ms", top_interval_ms, "Refresh period")->check(CLI::Range(50, 60000));
  top->add_option("--iterations", top_iterations, "Stop after N refreshes (0 = until the end)");

  AgentArgs aa;
  auto* agent_cmd = app.add_subcommand(
      "agent", "Sample this host and serve it over HTTP: a live page, JSON and Prometheus metrics");
  agent_cmd->add_option("--config", aa.config,
                        "Pipeline file with a procfs source and an agent: section (default: a "
                        "procfs source at 1 s, nothing else)");
  agent_cmd->add_option("--listen", aa.listen,
                        "Serve at HOST:PORT, or a port on loopback (default: agent.listen, "
                        "127.0.0.1:9108)");
  agent_cmd->add_option("--set", aa.sets, "Override a config value: PATH=VALUE (repeatable)");
  agent_cmd->add_flag("--check", aa.check, "Check the config, print what would be served, exit");

  auto* validate = app.add_subcommand("validate", "Check a pipeline file without running it");
  validate->add_option("file", common.file, "Pipeline YAML file")->required();
  validate->add_option("--set", common.sets, "Override a config value: PATH=VALUE");

  auto* graph = app.add_subcommand("graph", "Print a pipeline's DAG in Graphviz DOT");
  graph->add_option("file", common.file, "Pipeline YAML file")->required();
  graph->add_option("--set", common.sets, "Override a config value: PATH=VALUE");

  auto* nodes = app.add_subcommand("nodes", "List node types, or one type's options");
  nodes->add_option("type", node_type, "A node type");
  nodes->add_flag("--markdown", markdown, "Print docs/nodes.md");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? kExitOk : kExitUsage;
  }
  SetLogLevel(verbose ? LogLevel::kDebug : LogLevel::kInfo);

  if (*run) return CmdRun(common, registry, ra);
  if (*report_cmd) {
    if (!samples_args.dsn.empty()) {
      if (!report_file.empty() || !report_run.empty()) {
        std::fprintf(stderr,
                     "sluice: report: --samples charts stored samples, not a run: "
                     "drop the run report file or --run\n");
        return kExitUsage;
      }
      if (!report_out.empty()) samples_args.output = report_out;
      return CmdSamplesReport(samples_args);
    }
    return CmdReport(report_file, report_run, history_flag, report_out);
  }
  if (*runs) return CmdRuns(history_flag, runs_pipeline, runs_status, runs_limit);
  if (*top) return CmdTop(top_addr, top_interval_ms, top_iterations);
  if (*agent_cmd) {
    InstallSignalHandlers();
    return CmdAgent(aa, &registry, &g_stop, &g_interrupted);
  }
  if (*validate || *graph) {
    auto built = LoadAndBuild(common, registry, "");
    if (!built.ok()) {
      PrintError(built.status());
      return ExitCodeFor(built.status());
    }
    if (*graph) {
      std::cout << (*built)->ToDot();
    } else {
      std::cout << fmt::format("{}: ok ({} nodes)\n", common.file, (*built)->nodes().size());
    }
    return kExitOk;
  }
  if (*nodes) return CmdNodes(registry, node_type, markdown);
  return kExitUsage;
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) { return sluice::Main(argc, argv); }
