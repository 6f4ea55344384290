#include "sluice/agent/agent.h"

#include <fmt/format.h>

#include <algorithm>

namespace sluice::agent {

namespace {

constexpr int kMaxWorkers = 64;
constexpr int kMaxQueued = 10000;

Status SectionError(const NodeOptions& section, const std::string& option,
                    const std::string& message) {
  return Status::ConfigError("{}: agent: option '{}': {}", section.LocationOf(option), option,
                             message);
}

serve::Response Json(int status, serve::BodyPtr body) {
  serve::Response r;
  r.status = status;
  r.content_type = "application/json";
  r.body = std::move(body);
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

serve::Response NoSampleYet(std::string_view content_type) {
  serve::Response r;
  r.status = 503;
  r.content_type = std::string(content_type);
  r.body = serve::MakeBody(content_type == "application/json"
                               ? "{\"error\":\"no sample yet\"}\n"
                               : "# no sample yet: the first comes within one interval\n");
  r.headers.push_back({"Retry-After", "1"});
  r.headers.push_back({"Cache-Control", "no-store"});
  return r;
}

}  // namespace

const OptionSpec& AgentSection() {
  static const OptionSpec* spec = new OptionSpec(OptionSpec::Record(
      "agent", "What `sluice agent` serves and how (docs/AGENT.md).",
      {
          {"listen", OptionType::kString, "127.0.0.1:9108",
           "host:port to serve at; a bare port listens on loopback. The endpoints are "
           "unauthenticated: listen beyond loopback deliberately."},
          {"source", OptionType::kString, "",
           "The node whose rows are served; default: the pipeline's procfs source."},
          {"metric_prefix", OptionType::kString, "host_",
           "Put before every metric name in /metrics."},
          {"workers", OptionType::kInt, "2", "Threads answering requests (1-64)."},
          {"max_queued", OptionType::kInt, "128",
           "Connections waiting for a worker; one more is answered 503."},
          {"max_request_bytes", OptionType::kByteSize, "16KiB",
           "Largest request body (by Content-Length); a larger one is answered 413."},
          {"read_timeout", OptionType::kDuration, "5s", "Time a client has to send a request."},
          {"write_timeout", OptionType::kDuration, "5s",
           "Longest wait for a client to take part of a response."},
          {"keep_alive_timeout", OptionType::kDuration, "5s",
           "Longest wait for a next request on an idle connection."},
          {"gzip", OptionType::kBool, "true", "Compress responses for clients that accept gzip."},
      }));
  return *spec;
}

Result<AgentOptions> ReadAgentOptions(const NodeOptions& section,
                                      const std::string& listen_override) {
  AgentOptions o;
  std::string listen = listen_override.empty() ? section.GetString("listen") : listen_override;
  // A bare port listens on loopback: exposing the host's metrics is a deliberate choice.
  if (!listen.empty() && listen.find_first_not_of("0123456789") == std::string::npos) {
    listen = "127.0.0.1:" + listen;
  }
  if (auto parsed = serve::ParseListenAddress(listen); !parsed.ok()) {
    if (!listen_override.empty()) {
      return Status::ConfigError("--listen: {}", parsed.status().message());
    }
    return SectionError(section, "listen", parsed.status().message());
  }
  o.http.listen = listen;
  o.source = section.GetString("source");
  o.metric_prefix = section.GetString("metric_prefix");
  for (size_t i = 0; i < o.metric_prefix.size(); ++i) {
    const char c = o.metric_prefix[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) {
      return SectionError(section, "metric_prefix",
                          fmt::format("'{}' cannot start a Prometheus metric name (letters, "
                                      "digits, _ and :, not a digit first)",
                                      o.metric_prefix));
    }
  }
  const int64_t workers = section.GetInt("workers");
  if (workers < 1 || workers > kMaxWorkers) {
    return SectionError(section, "workers", fmt::format("must be between 1 and {}", kMaxWorkers));
  }
  o.http.workers = static_cast<int>(workers);
  const int64_t queued = section.GetInt("max_queued");
  if (queued < 0 || queued > kMaxQueued) {
    return SectionError(section, "max_queued", fmt::format("must be between 0 and {}", kMaxQueued));
  }
  o.http.max_queued = static_cast<int>(queued);
  o.http.max_request_bytes = section.GetByteSize("max_request_bytes");
  struct Duration {
    const char* name;
    int64_t* slot;
    bool zero_ok;
  };
  for (const Duration& d : {Duration{"read_timeout", &o.http.read_timeout_us, false},
                            Duration{"write_timeout", &o.http.write_timeout_us, false},
                            Duration{"keep_alive_timeout", &o.http.keep_alive_timeout_us, true}}) {
    *d.slot = section.GetDurationMicros(d.name);
    if (*d.slot < 0 || (*d.slot == 0 && !d.zero_ok)) {
      return SectionError(section, d.name, "must be a positive duration, e.g. 5s");
    }
  }
  o.http.gzip = section.GetBool("gzip");
  return o;
}

Result<std::pair<std::string, int64_t>> ChooseSource(const PipelineSpec& spec,
                                                     const std::string& wanted) {
  auto interval_of = [](const NodeSpec& n) -> int64_t {
    return n.type == "procfs" && n.options.Has("interval") ? n.options.GetDurationMicros("interval")
                                                           : 1'000'000;
  };
  if (!wanted.empty()) {
    std::vector<std::string> ids;
    for (const NodeSpec& n : spec.nodes) {
      if (n.id == wanted) return std::make_pair(n.id, interval_of(n));
      ids.push_back(n.id);
    }
    const std::string near = SuggestNearest(wanted, ids);
    return Status::ConfigError("{}: agent: source '{}' is not a node of the pipeline{}", spec.file,
                               wanted, near.empty() ? "" : " — did you mean '" + near + "'?");
  }
  const NodeSpec* found = nullptr;
  for (const NodeSpec& n : spec.nodes) {
    if (n.type != "procfs") continue;
    if (found != nullptr) {
      return Status::ConfigError(
          "{}: the pipeline has two procfs sources ('{}', '{}'): say which one to serve with "
          "agent: {{source: <id>}}",
          spec.file, found->id, n.id);
    }
    found = &n;
  }
  if (found == nullptr) {
    return Status::ConfigError(
        "{}: the pipeline has no procfs source for the agent to serve: add one (nodes: {{host: "
        "{{type: procfs}}}}), or name the node to serve with agent: {{source: <id>}}",
        spec.file);
  }
  return std::make_pair(found->id, interval_of(*found));
}

std::vector<serve::Route> AgentRoutes(std::shared_ptr<const LatestSample> latest) {
  std::vector<serve::Route> routes;
  routes.push_back(
      {"/", [page = serve::MakeBody(std::string(LivePageHtml()))](const serve::Request&) {
         serve::Response r;
         r.content_type = "text/html; charset=utf-8";
         r.body = page;
         r.headers.push_back({"Cache-Control", "no-cache"});
         return r;
       }});
  routes.push_back({"/api/v1/metrics", [latest](const serve::Request&) {
                      serve::BodyPtr body = latest->Json();
                      return body == nullptr ? NoSampleYet("application/json")
                                             : Json(200, std::move(body));
                    }});
  routes.push_back({"/metrics", [latest](const serve::Request&) {
                      serve::BodyPtr body = latest->Prometheus();
                      if (body == nullptr) return NoSampleYet("text/plain; version=0.0.4");
                      serve::Response r;
                      r.content_type = "text/plain; version=0.0.4; charset=utf-8";
                      r.body = std::move(body);
                      return r;
                    }});
  routes.push_back({"/healthz", [latest](const serve::Request&) {
                      const Health h = latest->health();
                      const char* status = h.ok ? "ok" : h.samples == 0 ? "starting" : "stale";
                      return Json(h.ok ? 200 : 503,
                                  serve::MakeBody(fmt::format(
                                      "{{\"status\":\"{}\",\"samples\":{},\"age_s\":{},"
                                      "\"interval_s\":{}}}\n",
                                      status, h.samples,
                                      h.age_us < 0 ? -1.0 : static_cast<double>(h.age_us) / 1e6,
                                      static_cast<double>(latest->interval_us()) / 1e6)));
                    }});
  return routes;
}

}  // namespace sluice::agent
