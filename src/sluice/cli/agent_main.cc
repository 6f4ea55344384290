// `sluice-agent`: `sluice agent` on its own, with only the node types an agent needs (procfs,
// files, null, stdout). It links none of the other connectors' libraries (PostgreSQL, S3,
// Redis, GEOS, PROJ, SQLite, curl), whose mapped pages were most of the agent's memory.
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <string>

#include <CLI/CLI.hpp>

#include "sluice/agent_nodes.h"
#include "sluice/cli/agent_command.h"
#include "sluice/cli/exit_codes.h"
#include "sluice/core/log.h"

namespace sluice {
namespace {
std::atomic<bool> g_stop{false};         // the first SIGINT/SIGTERM: stop gracefully
std::atomic<bool> g_interrupted{false};  // the second: cancel, abandoning what is in flight

void OnSignal(int) {
  if (!g_stop.exchange(true)) return;
  if (!g_interrupted.exchange(true)) return;
  _exit(kExitInterrupted);  // a third: leave now
}

int Main(int argc, char** argv) {
  NodeRegistry registry;
  RegisterAgentNodes(&registry);

  CLI::App app{
      "sluice-agent: sample this host and serve it over HTTP: a live page, JSON and Prometheus "
      "metrics (`sluice agent` with the node types procfs, file, null and stdout only)"};
  app.set_version_flag("--version", std::string("sluice-agent ") + SLUICE_VERSION);
  bool verbose = false;
  app.add_flag("-v,--verbose", verbose, "Log debug messages");
  AgentArgs args;
  app.add_option("--config", args.config,
                 "Pipeline file with a procfs source and an agent: section (default: a procfs "
                 "source at 1 s, nothing else)");
  app.add_option("--listen", args.listen,
                 "Serve at HOST:PORT, or a port on loopback (default: agent.listen, "
                 "127.0.0.1:9108)");
  app.add_option("--set", args.sets, "Override a config value: PATH=VALUE (repeatable)");
  app.add_flag("--check", args.check, "Check the config, print what would be served, exit");
  CLI11_PARSE(app, argc, argv);
  SetLogLevel(verbose ? LogLevel::kDebug : LogLevel::kInfo);

  struct sigaction sa {};
  sa.sa_handler = OnSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  return CmdAgent(args, &registry, &g_stop, &g_interrupted);
}

}  // namespace
}  // namespace sluice

int main(int argc, char** argv) { return sluice::Main(argc, argv); }
