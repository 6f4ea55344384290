#include "sluice/cli/agent_command.h"

#include <cstdio>
#include <memory>

#include "sluice/agent/agent.h"
#include "sluice/cli/exit_codes.h"
#include "sluice/config/loader.h"
#include "sluice/core/log.h"
#include "sluice/engine/executor.h"

namespace sluice {

namespace {

int Fail(const Status& st) {
  return sluice::Fail(
      st.code() == StatusCode::kConfigError || st.code() == StatusCode::kInvalidArgument
          ? kExitUsage
          : kExitFailed,
      st.message());
}

}  // namespace

int CmdAgent(const AgentArgs& args, NodeRegistry* registry, const std::atomic<bool>* stop,
             const std::atomic<bool>* interrupt) {
  LoadOptions lo;
  lo.overrides = args.sets;
  lo.sections = {agent::AgentSection()};
  auto loaded = args.config.empty()
                    ? LoadPipelineText(std::string(agent::kDefaultConfig),
                                       std::string(agent::kDefaultConfigName), *registry, lo)
                    : LoadPipelineFile(args.config, *registry, lo);
  if (!loaded.ok()) return Fail(loaded.status());
  PipelineSpec spec = std::move(*loaded);
  auto options = agent::ReadAgentOptions(spec.sections.at("agent"), args.listen);
  if (!options.ok()) return Fail(options.status());
  auto source = agent::ChooseSource(spec, options->source);
  if (!source.ok()) return Fail(source.status());
  if (!spec.alerts.is_null()) {
    Log(LogLevel::kWarn, "agent: the alerts: section is not evaluated by sluice agent");
  }

  auto latest = std::make_shared<agent::LatestSample>(options->metric_prefix, source->second);
  agent::RegisterTap(registry, latest);
  if (Status st = agent::AddTap(&spec, source->first); !st.ok()) return Fail(st);
  const std::string file = spec.file;
  auto pipeline = Pipeline::Build(std::move(spec), *registry);
  if (!pipeline.ok()) return Fail(pipeline.status());
  if (args.check) {
    std::printf("%s: ok (%zu nodes; serving '%s' at http://%s/)\n", file.c_str(),
                (*pipeline)->nodes().size() - 1, source->first.c_str(),
                options->http.listen.c_str());
    return kExitOk;
  }

  auto server = serve::HttpServer::Start(options->http, agent::AgentRoutes(latest));
  if (!server.ok()) return Fail(server.status().WithContext("agent: listen"));
  Log(LogLevel::kInfo,
      "agent: serving http://{}:{}/ (live page), /api/v1/metrics, /metrics, /healthz; samples "
      "from '{}'",
      (*server)->host(), (*server)->port(), source->first);

  RunOptions ro;
  ro.stop = stop;
  ro.interrupt = interrupt;
  // The agent idles between samples: a signal is seen within a quarter of a second, and the
  // host is not woken 50 times a second to look for one (issue 16).
  ro.watch_interval_us = 250'000;
  PipelineRun run(pipeline->get(), ro);
  const Status st = run.Execute();
  (*server)->Stop();
  if (st.ok()) return kExitOk;
  if (st.code() == StatusCode::kCancelled && interrupt != nullptr && interrupt->load()) {
    return kExitInterrupted;
  }
  std::fprintf(stderr, "sluice: agent: %s\n", st.message().c_str());
  return kExitFailed;
}

}  // namespace sluice
