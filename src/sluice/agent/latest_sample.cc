#include "sluice/agent/latest_sample.h"

#include <utility>

namespace sluice::agent {

struct LatestSample::Snapshot {
  BatchPtr batch;
  SampleColumns columns;
  SampleInfo info;
  std::once_flag json_once, prometheus_once;
  serve::BodyPtr json, prometheus;  // each written once, under its flag
};

LatestSample::LatestSample(std::string metric_prefix, int64_t interval_us, Clock* clock)
    : prefix_(std::move(metric_prefix)), interval_us_(interval_us), clock_(clock) {}

Status LatestSample::Update(const BatchPtr& batch) {
  if (batch == nullptr || batch->num_rows() == 0) return Status::OK();
  SLUICE_ASSIGN_OR_RETURN(SampleColumns columns, FindSampleColumns(*batch));
  auto snapshot = std::make_shared<Snapshot>();
  snapshot->batch = batch;
  snapshot->columns = columns;
  snapshot->info.interval_us = interval_us_;
  std::lock_guard<std::mutex> lock(mu_);
  snapshot->info.sample = ++samples_;
  received_us_ = clock_->NowMicros();
  current_ = std::move(snapshot);
  return Status::OK();
}

std::shared_ptr<LatestSample::Snapshot> LatestSample::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

serve::BodyPtr LatestSample::Json() const {
  std::shared_ptr<Snapshot> s = Current();
  if (s == nullptr) return nullptr;
  std::call_once(s->json_once,
                 [&] { s->json = serve::MakeBody(SampleJson(*s->batch, s->columns, s->info)); });
  return s->json;
}

serve::BodyPtr LatestSample::Prometheus() const {
  std::shared_ptr<Snapshot> s = Current();
  if (s == nullptr) return nullptr;
  std::call_once(s->prometheus_once, [&] {
    s->prometheus = serve::MakeBody(SamplePrometheus(*s->batch, s->columns, prefix_));
  });
  return s->prometheus;
}

Health LatestSample::health() const {
  std::lock_guard<std::mutex> lock(mu_);
  Health h;
  h.samples = samples_;
  if (samples_ == 0) return h;
  h.age_us = clock_->NowMicros() - received_us_;
  h.ok = h.age_us <= 3 * interval_us_ + 1'000'000;
  return h;
}

namespace {

/// The tap: hands every batch to the LatestSample. Called from the sink's one thread.
class TapSink final : public Sink {
 public:
  explicit TapSink(std::shared_ptr<LatestSample> latest) : latest_(std::move(latest)) {}
  Status Write(const BatchPtr& batch, AckSet acks) override {
    // The acks go when this returns: the sample is kept in memory, which is all it promises.
    return latest_->Update(batch);
  }

 private:
  std::shared_ptr<LatestSample> latest_;
};

}  // namespace

void RegisterTap(NodeRegistry* registry, std::shared_ptr<LatestSample> latest) {
  registry->AddSink(std::string(kTapType),
                    "Keep the latest sample for sluice agent's HTTP endpoints (added by the "
                    "agent, not written in configs).",
                    {}, [latest](const NodeOptions&) -> Result<std::unique_ptr<Sink>> {
                      return std::unique_ptr<Sink>(new TapSink(latest));
                    });
}

Status AddTap(PipelineSpec* spec, const std::string& source) {
  for (const NodeSpec& n : spec->nodes) {
    if (n.id == kTapId) {
      return Status::ConfigError("{}: node id '{}' is taken by sluice agent; rename the node",
                                 n.location, kTapId);
    }
  }
  NodeSpec tap;
  tap.id = std::string(kTapId);
  tap.type = std::string(kTapType);
  tap.inputs = {source};
  tap.location = spec->file + ": (sluice agent)";
  tap.options = NodeOptions(tap.id, tap.type, OptionJson::object(), {}, tap.location);
  spec->nodes.push_back(std::move(tap));
  return Status::OK();
}

}  // namespace sluice::agent
