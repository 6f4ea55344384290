#include "sluice/connectors/procfs/sampler.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "sluice/core/column.h"

namespace sluice::procfs {

Result<std::unique_ptr<Sampler>> Sampler::Make(SamplerOptions options) {
  CollectorConfig& config = options.config;
  if (config.env == nullptr) config.env = RealHostEnv();
  if (config.clock_ticks <= 0) config.clock_ticks = ::sysconf(_SC_CLK_TCK);
  if (config.page_size <= 0) config.page_size = ::sysconf(_SC_PAGESIZE);
  if (config.clock_ticks <= 0 || config.page_size <= 0) {
    return Status::Internal("sysconf gave no clock tick or page size");
  }
  // Rows come in CollectorNames() order whatever order the option lists them in.
  std::vector<std::string_view> names;
  for (const std::string& n : options.collectors) {
    const auto& all = CollectorNames();
    if (std::find(all.begin(), all.end(), n) == all.end()) {
      return Status::Invalid("unknown collector '{}' (collectors: {})", n, fmt::join(all, ", "));
    }
  }
  for (std::string_view n : CollectorNames()) {
    if (options.collectors.empty() ||
        std::find(options.collectors.begin(), options.collectors.end(), n) !=
            options.collectors.end()) {
      names.push_back(n);
    }
  }
  auto s = std::unique_ptr<Sampler>(new Sampler(std::max(1, options.threads)));
  for (std::string_view n : names) {
    SLUICE_ASSIGN_OR_RETURN(auto c, MakeCollector(n, config));
    s->collectors_.push_back(std::move(c));
    s->results_.push_back(std::make_unique<CollectorResult>());
    s->results_.back()->name = s->collectors_.back()->name();
    s->dispatch_.push_back(static_cast<uint32_t>(s->dispatch_.size()));
  }
  const int helpers = std::min<int>(s->threads_, static_cast<int>(names.size())) - 1;
  for (int i = 0; i < helpers; ++i) s->helpers_.emplace_back([p = s.get()] { p->HelperLoop(); });
  return s;
}

Sampler::~Sampler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  work_cv_.notify_all();
  for (auto& t : helpers_) t.join();
}

void Sampler::RunOne(size_t i) {
  CollectorResult& r = *results_[i];
  const auto start = std::chrono::steady_clock::now();
  r.rows.Clear();
  r.failure.Clear();
  r.outcome = collectors_[i]->Collect(now_us_, &r.rows, &r.failure);
  if (r.outcome == Outcome::kFailed) {
    ++r.failures;
    if (!r.failure.failed()) r.failure.Set("failed without saying why");
  }
  r.duration_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start)
          .count();
}

// Take collectors off the shared list until none is left; tell Collect when the last is done.
void Sampler::RunCollectors() {
  size_t ran = 0;
  for (;;) {
    const size_t k = next_.fetch_add(1, std::memory_order_acq_rel);
    if (k >= dispatch_.size()) break;
    RunOne(dispatch_[k]);
    ++ran;
  }
  if (ran == 0) return;
  std::lock_guard lock(mu_);
  done_ += ran;
  if (done_ == dispatch_.size()) done_cv_.notify_one();
}

void Sampler::HelperLoop() {
  uint64_t seen = 0;
  for (;;) {
    {
      std::unique_lock lock(mu_);
      work_cv_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
    }
    RunCollectors();
  }
}

void Sampler::Collect(int64_t now_us) {
  now_us_ = now_us;
  // The slowest collectors first, so that the helpers are not left waiting on one at the end.
  std::sort(dispatch_.begin(), dispatch_.end(), [&](uint32_t a, uint32_t b) {
    return results_[a]->duration_ns > results_[b]->duration_ns;
  });
  if (helpers_.empty()) {
    for (uint32_t i : dispatch_) RunOne(i);
    return;
  }
  {
    std::lock_guard lock(mu_);
    // Release: a helper that takes index 0 sees now_us_ and the order set above.
    next_.store(0, std::memory_order_release);
    done_ = 0;
    ++generation_;
  }
  work_cv_.notify_all();
  RunCollectors();
  std::unique_lock lock(mu_);
  done_cv_.wait(lock, [&] { return done_ == dispatch_.size(); });
}

const SchemaPtr& Sampler::Schema() {
  static const SchemaPtr kSchema = MakeSchema({{"ts", TypeId::kTimestamp, false},
                                               {"host", TypeId::kString, false},
                                               {"metric", TypeId::kString, false},
                                               {"labels", TypeId::kJson, false},
                                               {"value", TypeId::kFloat64, false},
                                               {"error", TypeId::kString, true}});
  return kSchema;
}

namespace {

/// A variable-width column built into buffers sized exactly beforehand, so that a batch costs
/// the same few allocations whatever its rows (procfs_alloc_test checks it).
class VarColumn {
 public:
  VarColumn(int64_t rows, int64_t bytes, bool nullable) {
    offsets_.reserve(static_cast<size_t>(rows) + 1);
    offsets_.push_back(0);
    data_.reserve(static_cast<size_t>(bytes));
    if (nullable) validity_.assign(static_cast<size_t>((rows + 7) / 8), 0);
  }
  void Append(std::string_view v) {
    if (!validity_.empty()) bits::Set(validity_.data(), static_cast<int64_t>(offsets_.size()) - 1);
    data_.insert(data_.end(), v.begin(), v.end());
    offsets_.push_back(static_cast<int32_t>(data_.size()));
  }
  void AppendNull() {
    offsets_.push_back(static_cast<int32_t>(data_.size()));
    ++nulls_;
  }
  Column Finish(TypeId type) {
    const auto rows = static_cast<int64_t>(offsets_.size()) - 1;
    BufferPtr validity = nulls_ > 0 ? Buffer::FromVector(std::move(validity_)) : nullptr;
    return Column(type, rows, nulls_, std::move(validity), Buffer::FromVector(std::move(offsets_)),
                  Buffer::FromVector(std::move(data_)));
  }

 private:
  std::vector<int32_t> offsets_;
  std::vector<char> data_;
  std::vector<uint8_t> validity_;
  int64_t nulls_ = 0;
};

constexpr std::string_view kCollectorLabelsOpen = R"({"collector":")";
constexpr std::string_view kCollectorLabelsClose = R"("})";
constexpr std::string_view kSuccess = "collector_success";
constexpr std::string_view kDuration = "collector_duration_seconds";

}  // namespace

BatchPtr Sampler::ToBatch(int64_t ts_us, std::string_view host) const {
  int64_t rows = 0, metric_bytes = 0, labels_bytes = 0, error_bytes = 0;
  for (const auto& r : results_) {
    if (r->outcome == Outcome::kOk) {
      rows += static_cast<int64_t>(r->rows.size());
      metric_bytes += static_cast<int64_t>(r->rows.metric_bytes());
      labels_bytes += static_cast<int64_t>(r->rows.labels_bytes());
    }
    if (r->outcome == Outcome::kAbsent) continue;
    rows += 2;  // collector_success and collector_duration_seconds
    metric_bytes += static_cast<int64_t>(kSuccess.size() + kDuration.size());
    // Collector names are plain ASCII: their labels need no escapes.
    labels_bytes += 2 * static_cast<int64_t>(kCollectorLabelsOpen.size() + r->name.size() +
                                             kCollectorLabelsClose.size());
    if (r->outcome == Outcome::kFailed) {
      error_bytes += static_cast<int64_t>(r->failure.message().size());
    }
  }
  std::vector<int64_t> ts(static_cast<size_t>(rows), ts_us);
  std::vector<double> values;
  values.reserve(static_cast<size_t>(rows));
  VarColumn hosts(rows, rows * static_cast<int64_t>(host.size()), false);
  VarColumn metric(rows, metric_bytes, false), error(rows, error_bytes, true);
  VarColumn labels(rows, labels_bytes, false);
  for (const auto& r : results_) {
    if (r->outcome != Outcome::kOk) continue;
    for (size_t i = 0; i < r->rows.size(); ++i) {
      const SampleRows::Row& row = r->rows.row(i);
      metric.Append(row.metric);
      labels.Append(r->rows.labels(row));
      values.push_back(row.value);
      error.AppendNull();
    }
  }
  char text[128];
  for (const auto& r : results_) {
    if (r->outcome == Outcome::kAbsent) continue;
    const size_t size = std::min(r->name.size(), sizeof(text) - 16);
    std::string_view collector_labels(
        text, kCollectorLabelsOpen.size() + size + kCollectorLabelsClose.size());
    std::memcpy(text, kCollectorLabelsOpen.data(), kCollectorLabelsOpen.size());
    std::memcpy(text + kCollectorLabelsOpen.size(), r->name.data(), size);
    std::memcpy(text + kCollectorLabelsOpen.size() + size, kCollectorLabelsClose.data(),
                kCollectorLabelsClose.size());
    const bool ok = r->outcome == Outcome::kOk;
    metric.Append(kSuccess);
    labels.Append(collector_labels);
    values.push_back(ok ? 1 : 0);
    if (ok) {
      error.AppendNull();
    } else {
      error.Append(r->failure.message());
    }
    metric.Append(kDuration);
    labels.Append(collector_labels);
    values.push_back(static_cast<double>(r->duration_ns) / 1e9);
    error.AppendNull();
  }
  for (int64_t i = 0; i < rows; ++i) hosts.Append(host);
  std::vector<Column> cols;
  cols.reserve(6);
  cols.emplace_back(TypeId::kTimestamp, rows, 0, nullptr, Buffer::FromVector(std::move(ts)));
  cols.push_back(hosts.Finish(TypeId::kString));
  cols.push_back(metric.Finish(TypeId::kString));
  cols.push_back(labels.Finish(TypeId::kJson));
  cols.emplace_back(TypeId::kFloat64, rows, 0, nullptr, Buffer::FromVector(std::move(values)));
  cols.push_back(error.Finish(TypeId::kString));
  return Batch::MakeUnchecked(Schema(), std::move(cols), rows);
}

std::string HostName(const std::string& root, HostEnv* env) {
  if (env == nullptr) env = RealHostEnv();
  FileBuffer buf;
  if (env->ReadFile((root + "/sys/kernel/hostname").c_str(), &buf) == 0) {
    std::string_view name = buf.view();
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.remove_suffix(1);
    if (!name.empty()) return std::string(name);
  }
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) == 0) return name;
  return "unknown";
}

}  // namespace sluice::procfs
