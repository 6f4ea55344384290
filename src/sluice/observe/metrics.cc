#include "sluice/observe/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace sluice::observe {

namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
constexpr int64_t kInt64Min = std::numeric_limits<int64_t>::min();

// Relative slack when comparing a value against a bucket bound: bounds such as 1e-5 are not
// exact in binary, and a value recorded as 10 us must still count under le="1e-05".
constexpr double kBoundSlack = 1e-9;

double PowerOfTen(int exponent) {
  double p = 1.0;
  for (int i = 0; i < std::abs(exponent); ++i) p *= 10.0;
  return p;
}

// Returns mantissa x 10^(exponent - 1) for mantissa 10, 25 or 50, computed so that it is the
// double nearest to the decimal value (both operands are exact, so one rounding).
double DecadeValue(int mantissa, int exponent) {
  const int e = exponent - 1;
  return e >= 0 ? mantissa * PowerOfTen(e) : mantissa / PowerOfTen(e);
}

bool IsNameStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

Status ValidateMetricName(std::string_view name) {
  bool ok = !name.empty() && (IsNameStart(name[0]) || name[0] == ':');
  for (char c : name) ok = ok && (IsNameChar(c) || c == ':');
  if (!ok) {
    return Status::Invalid("metric name '{}' must match [a-zA-Z_:][a-zA-Z0-9_:]*", name);
  }
  return Status::OK();
}

// Sorts `labels` by name and checks the names; `type` decides whether "le" is reserved.
Status NormalizeLabels(std::string_view metric, MetricType type, Labels* labels) {
  std::stable_sort(labels->begin(), labels->end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < labels->size(); ++i) {
    const std::string& name = (*labels)[i].first;
    bool ok = !name.empty() && IsNameStart(name[0]);
    for (char c : name) ok = ok && IsNameChar(c);
    if (!ok || name.rfind("__", 0) == 0) {
      return Status::Invalid(
          "metric '{}': label name '{}' must match [a-zA-Z_][a-zA-Z0-9_]* "
          "and not start with '__'",
          metric, name);
    }
    if (type == MetricType::kHistogram && name == "le") {
      return Status::Invalid("metric '{}': label name 'le' is reserved for histogram buckets",
                             metric);
    }
    if (i > 0 && (*labels)[i - 1].first == name) {
      return Status::Invalid("metric '{}': label '{}' given twice", metric, name);
    }
  }
  return Status::OK();
}

std::string EscapeHelp(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

// Appends `name{labels,extra_name="extra_value"} value\n`.
void AppendSample(std::string* out, std::string_view name, const Labels& labels,
                  std::string_view extra_name, std::string_view extra_value, double value) {
  out->append(name);
  if (!labels.empty() || !extra_name.empty()) {
    out->push_back('{');
    bool first = true;
    for (const auto& [label, label_value] : labels) {
      if (!first) out->push_back(',');
      first = false;
      fmt::format_to(std::back_inserter(*out), "{}=\"{}\"", label, EscapeLabelValue(label_value));
    }
    if (!extra_name.empty()) {
      if (!first) out->push_back(',');
      fmt::format_to(std::back_inserter(*out), "{}=\"{}\"", extra_name, extra_value);
    }
    out->push_back('}');
  }
  out->push_back(' ');
  out->append(FormatSampleValue(value));
  out->push_back('\n');
}

// Returns the (lowest positive, highest) value over the series of a histogram family; hi is 0
// when nothing was recorded.
std::pair<double, double> ObservedRange(const FamilySnapshot& family) {
  double lo = std::numeric_limits<double>::infinity();
  double hi = 0;
  for (const SeriesSnapshot& s : family.series) {
    if (s.histogram.count() == 0) continue;
    lo = std::min(lo, s.histogram.PositiveMin());
    hi = std::max(hi, s.histogram.max());
  }
  return {lo, hi};
}

nlohmann::json LabelsJson(const Labels& labels) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : labels) j[name] = value;
  return j;
}

}  // namespace

std::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

std::string EscapeLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatSampleValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", value);
}

std::vector<double> DecadeBounds(double lo, double hi) {
  std::vector<double> bounds;
  if (!(hi > 0) || std::isinf(hi)) return bounds;
  if (!(lo > 0) || lo > hi) lo = hi;
  constexpr int kMantissas[] = {10, 25, 50};
  // Start one decade low so that a `lo` just under a power of ten is not skipped.
  for (int exponent = static_cast<int>(std::floor(std::log10(lo))) - 1; exponent < 400;
       ++exponent) {
    for (int mantissa : kMantissas) {
      const double v = DecadeValue(mantissa, exponent);
      if (v < lo * (1 - kBoundSlack)) continue;
      bounds.push_back(v);
      if (v >= hi * (1 - kBoundSlack)) return bounds;
    }
  }
  return bounds;
}

// ---- HistogramSnapshot ----

double HistogramSnapshot::PositiveMin() const {
  return static_cast<double>(std::max<int64_t>(min_raw_, 1)) * scale_;
}

double HistogramSnapshot::Quantile(double q) const {
  if (count_ == 0) return 0.0;
  if (!(q > 0)) return min();
  if (q >= 1) return max();
  // Nearest rank; the small slack keeps 0.95 * 100 (= 95.00000000000001) at rank 95.
  auto rank = static_cast<int64_t>(std::ceil(q * static_cast<double>(count_) * (1 - 1e-12)));
  rank = std::clamp<int64_t>(rank, 1, count_);
  int64_t seen = 0;
  for (const auto& [index, n] : buckets_) {
    seen += n;
    if (seen >= rank) {
      const int i = static_cast<int>(index);
      const double lo = static_cast<double>(Histogram::BucketLowerBound(i));
      const double hi = static_cast<double>(Histogram::BucketUpperBound(i));
      const double mid = std::clamp(lo + (hi - lo) / 2, static_cast<double>(min_raw_),
                                    static_cast<double>(max_raw_));
      return mid * scale_;
    }
  }
  return max();
}

void HistogramSnapshot::Merge(const HistogramSnapshot& other) {
  if (other.count_ == 0) return;
  std::vector<std::pair<uint32_t, int64_t>> theirs;
  int64_t other_sum = other.sum_raw_;
  int64_t other_min = other.min_raw_;
  int64_t other_max = other.max_raw_;
  if (other.scale_ == scale_) {
    theirs = other.buckets_;
  } else {
    // Re-express each bucket's midpoint in our raw unit. The mapping is monotonic, so the list
    // stays sorted; neighbours that land in one bucket are combined.
    const double ratio = other.scale_ / scale_;
    auto convert = [ratio](double raw) {
      const double v = std::round(raw * ratio);
      if (!(v > 0)) return int64_t{0};
      if (v >= 9.2e18) return kInt64Max;
      return static_cast<int64_t>(v);
    };
    for (const auto& [index, n] : other.buckets_) {
      const int i = static_cast<int>(index);
      const double mid = (static_cast<double>(Histogram::BucketLowerBound(i)) +
                          static_cast<double>(Histogram::BucketUpperBound(i))) /
                         2;
      const auto mapped = static_cast<uint32_t>(Histogram::BucketIndex(convert(mid)));
      if (!theirs.empty() && theirs.back().first == mapped) {
        theirs.back().second += n;
      } else {
        theirs.emplace_back(mapped, n);
      }
    }
    other_sum = convert(static_cast<double>(other.sum_raw_));
    other_min = convert(static_cast<double>(other.min_raw_));
    other_max = convert(static_cast<double>(other.max_raw_));
  }
  std::vector<std::pair<uint32_t, int64_t>> merged;
  merged.reserve(buckets_.size() + theirs.size());
  size_t a = 0;
  size_t b = 0;
  while (a < buckets_.size() || b < theirs.size()) {
    if (b == theirs.size() || (a < buckets_.size() && buckets_[a].first < theirs[b].first)) {
      merged.push_back(buckets_[a++]);
    } else if (a == buckets_.size() || theirs[b].first < buckets_[a].first) {
      merged.push_back(theirs[b++]);
    } else {
      merged.emplace_back(buckets_[a].first, buckets_[a].second + theirs[b].second);
      ++a;
      ++b;
    }
  }
  buckets_ = std::move(merged);
  min_raw_ = count_ == 0 ? other_min : std::min(min_raw_, other_min);
  max_raw_ = count_ == 0 ? other_max : std::max(max_raw_, other_max);
  count_ += other.count_;
  sum_raw_ = static_cast<int64_t>(static_cast<uint64_t>(sum_raw_) +
                                  static_cast<uint64_t>(other_sum));  // wraps like Record
}

std::vector<int64_t> HistogramSnapshot::CumulativeCounts(
    const std::vector<double>& upper_bounds) const {
  std::vector<int64_t> counts(upper_bounds.size(), 0);
  size_t next = 0;  // the first bucket not yet counted
  int64_t cumulative = 0;
  for (size_t b = 0; b < upper_bounds.size(); ++b) {
    const double bound = upper_bounds[b] * (1 + kBoundSlack);
    while (next < buckets_.size()) {
      // The bucket holding the maximum ends at the maximum: nothing in it is larger.
      const int64_t top =
          std::min(Histogram::BucketUpperBound(static_cast<int>(buckets_[next].first)), max_raw_);
      if (static_cast<double>(top) * scale_ > bound) break;
      cumulative += buckets_[next].second;
      ++next;
    }
    counts[b] = cumulative;
  }
  return counts;
}

std::vector<std::pair<double, int64_t>> HistogramSnapshot::CoarseBuckets() const {
  std::vector<std::pair<double, int64_t>> out;
  if (count_ == 0) return out;
  const std::vector<double> bounds = DecadeBounds(PositiveMin(), max());
  if (bounds.empty()) {  // every value is 0
    out.emplace_back(0.0, count_);
    return out;
  }
  std::vector<int64_t> cumulative = CumulativeCounts(bounds);
  cumulative.back() = count_;  // the last bound is >= max()
  int64_t previous = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    out.emplace_back(bounds[i], cumulative[i] - previous);
    previous = cumulative[i];
  }
  return out;
}

nlohmann::json HistogramSnapshot::ToJson() const {
  nlohmann::json buckets = nlohmann::json::array();
  for (const auto& [bound, n] : CoarseBuckets()) buckets.push_back({bound, n});
  return {{"unit", unit_},         {"count", count_},       {"sum", sum()},
          {"min", min()},          {"max", max()},          {"p50", Quantile(0.5)},
          {"p95", Quantile(0.95)}, {"p99", Quantile(0.99)}, {"buckets", std::move(buckets)}};
}

void HistogramSnapshot::SetRaw(int64_t count, int64_t sum_raw, int64_t min_raw, int64_t max_raw,
                               std::vector<std::pair<uint32_t, int64_t>> buckets) {
  count_ = count;
  sum_raw_ = sum_raw;
  min_raw_ = min_raw;
  max_raw_ = max_raw;
  buckets_ = std::move(buckets);
}

// ---- Histogram ----

Histogram::Histogram(std::string unit, double scale)
    : min_(kInt64Max), max_(kInt64Min), unit_(std::move(unit)), scale_(scale) {}

int64_t Histogram::BucketLowerBound(int index) {
  if (index < kSubBuckets) return index;
  const int group = index / kSubBuckets;  // >= 1
  const int sub = index % kSubBuckets;
  return static_cast<int64_t>(static_cast<uint64_t>(kSubBuckets + sub) << (group - 1));
}

int64_t Histogram::BucketUpperBound(int index) {
  if (index < kSubBuckets) return index;
  const int group = index / kSubBuckets;
  const uint64_t width = uint64_t{1} << (group - 1);
  return static_cast<int64_t>(static_cast<uint64_t>(BucketLowerBound(index)) + (width - 1));
}

HistogramSnapshot Histogram::Snapshot() const {
  HistogramSnapshot s(unit_, scale_);
  for (int i = 0; i < kNumBuckets; ++i) {
    const int64_t n = buckets_[i].load(std::memory_order_relaxed);
    if (n == 0) continue;
    s.buckets_.emplace_back(static_cast<uint32_t>(i), n);
    s.count_ += n;
  }
  if (s.count_ == 0) return s;
  s.sum_raw_ = sum_.load(std::memory_order_relaxed);
  // A Record racing with this read may have bumped its bucket but not yet min/max: keep them
  // consistent with the buckets.
  const int first = static_cast<int>(s.buckets_.front().first);
  const int last = static_cast<int>(s.buckets_.back().first);
  s.min_raw_ = std::max(std::min(min_.load(std::memory_order_relaxed), BucketUpperBound(first)),
                        BucketLowerBound(first));
  s.max_raw_ = std::min(std::max(max_.load(std::memory_order_relaxed), BucketLowerBound(last)),
                        BucketUpperBound(last));
  return s;
}

// ---- FamilySnapshot ----

const SeriesSnapshot* FamilySnapshot::Find(Labels labels) const {
  std::sort(labels.begin(), labels.end());
  for (const SeriesSnapshot& s : series) {
    if (s.labels == labels) return &s;
  }
  return nullptr;
}

// ---- MetricsRegistry ----

struct MetricsRegistry::Series {
  std::unique_ptr<Counter> counter;
  std::unique_ptr<Gauge> gauge;
  std::unique_ptr<Histogram> histogram;
};

struct MetricsRegistry::Family {
  MetricType type;
  std::string help;
  std::map<Labels, std::unique_ptr<Series>> series;
};

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

MetricsRegistry::Series& MetricsRegistry::GetSeries(std::string_view name, std::string_view help,
                                                    Labels labels, MetricType type,
                                                    std::string_view unit, double scale) {
  auto make = [&] {
    auto s = std::make_unique<Series>();
    switch (type) {
      case MetricType::kCounter:
        s->counter = std::make_unique<Counter>();
        break;
      case MetricType::kGauge:
        s->gauge = std::make_unique<Gauge>();
        break;
      case MetricType::kHistogram:
        s->histogram = std::make_unique<Histogram>(std::string(unit), scale);
        break;
    }
    return s;
  };
  std::lock_guard<std::mutex> lock(mu_);
  Status st = ValidateMetricName(name);
  if (st.ok()) st = NormalizeLabels(name, type, &labels);
  auto it = families_.find(name);
  if (st.ok() && it != families_.end() && it->second->type != type) {
    st = Status::Invalid("metric '{}' is a {}; cannot use it as a {}", name,
                         MetricTypeName(it->second->type), MetricTypeName(type));
  }
  if (!st.ok()) {
    if (status_.ok()) status_ = st;
    orphans_.push_back(make());
    return *orphans_.back();
  }
  if (it == families_.end()) {
    auto family = std::make_unique<Family>();
    family->type = type;
    family->help = std::string(help);
    it = families_.emplace(std::string(name), std::move(family)).first;
  }
  std::unique_ptr<Series>& series = it->second->series[std::move(labels)];
  if (series == nullptr) series = make();
  return *series;
}

Counter& MetricsRegistry::GetCounter(std::string_view name, std::string_view help, Labels labels) {
  return *GetSeries(name, help, std::move(labels), MetricType::kCounter, "", 1.0).counter;
}

Gauge& MetricsRegistry::GetGauge(std::string_view name, std::string_view help, Labels labels) {
  return *GetSeries(name, help, std::move(labels), MetricType::kGauge, "", 1.0).gauge;
}

Histogram& MetricsRegistry::GetHistogram(std::string_view name, std::string_view help,
                                         Labels labels, std::string_view unit, double scale) {
  return *GetSeries(name, help, std::move(labels), MetricType::kHistogram, unit, scale).histogram;
}

int64_t MetricsRegistry::AddCollector(Collector collector) {
  std::lock_guard<std::mutex> lock(collect_mu_);
  const int64_t id = next_collector_id_++;
  collectors_.emplace(id, std::move(collector));
  return id;
}

void MetricsRegistry::RemoveCollector(int64_t id) {
  std::lock_guard<std::mutex> lock(collect_mu_);
  collectors_.erase(id);
}

Status MetricsRegistry::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

namespace {

// Families being assembled for one scrape, keyed by name.
struct PendingFamily {
  MetricType type;
  std::string help;
  std::map<Labels, SeriesSnapshot> series;
};
using PendingFamilies = std::map<std::string, PendingFamily, std::less<>>;

// Adds one sample, combining it with an existing series of the same labels.
Status AddPending(PendingFamilies* families, std::string_view name, std::string_view help,
                  Labels labels, MetricType type, double value,
                  const HistogramSnapshot* histogram) {
  SLUICE_RETURN_NOT_OK(ValidateMetricName(name));
  SLUICE_RETURN_NOT_OK(NormalizeLabels(name, type, &labels));
  auto it = families->find(name);
  if (it == families->end()) {
    it = families->emplace(std::string(name), PendingFamily{type, std::string(help), {}}).first;
  } else if (it->second.type != type) {
    return Status::Invalid("metric '{}' is a {}; a collector emitted it as a {}", name,
                           MetricTypeName(it->second.type), MetricTypeName(type));
  }
  auto [series_it, inserted] = it->second.series.try_emplace(labels);
  SeriesSnapshot& series = series_it->second;
  if (inserted) {
    series.labels = std::move(labels);
    series.value = value;
    if (histogram != nullptr) series.histogram = *histogram;
  } else {
    series.value += value;
    if (histogram != nullptr) series.histogram.Merge(*histogram);
  }
  return Status::OK();
}

class PendingSink final : public CollectorSink {
 public:
  explicit PendingSink(PendingFamilies* families) : families_(families) {}

  void AddCounter(std::string_view name, std::string_view help, const Labels& labels,
                  double value) override {
    Keep(AddPending(families_, name, help, labels, MetricType::kCounter, value, nullptr));
  }
  void AddGauge(std::string_view name, std::string_view help, const Labels& labels,
                double value) override {
    Keep(AddPending(families_, name, help, labels, MetricType::kGauge, value, nullptr));
  }
  void AddHistogram(std::string_view name, std::string_view help, const Labels& labels,
                    const HistogramSnapshot& snapshot) override {
    Keep(AddPending(families_, name, help, labels, MetricType::kHistogram, 0.0, &snapshot));
  }

  const Status& first_error() const { return first_error_; }

 private:
  void Keep(Status st) {
    if (!st.ok() && first_error_.ok()) first_error_ = std::move(st);
  }

  PendingFamilies* families_;
  Status first_error_;
};

}  // namespace

std::vector<FamilySnapshot> MetricsRegistry::Collect() const {
  PendingFamilies pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [name, family] : families_) {
      PendingFamily& out = pending[name];
      out.type = family->type;
      out.help = family->help;
      for (const auto& [labels, series] : family->series) {
        SeriesSnapshot& s = out.series[labels];
        s.labels = labels;
        if (series->counter) s.value = static_cast<double>(series->counter->Value());
        if (series->gauge) s.value = series->gauge->Value();
        if (series->histogram) s.histogram = series->histogram->Snapshot();
      }
    }
  }
  Status collector_error;
  {
    // Collectors run outside mu_ so that they may register metrics themselves.
    std::lock_guard<std::mutex> lock(collect_mu_);
    PendingSink sink(&pending);
    for (const auto& [id, collector] : collectors_) collector(sink);
    collector_error = sink.first_error();
  }
  if (!collector_error.ok()) {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_.ok()) status_ = collector_error;
  }
  std::vector<FamilySnapshot> out;
  out.reserve(pending.size());
  for (auto& [name, family] : pending) {
    FamilySnapshot f;
    f.name = name;
    f.help = std::move(family.help);
    f.type = family.type;
    f.series.reserve(family.series.size());
    for (auto& [labels, series] : family.series) f.series.push_back(std::move(series));
    out.push_back(std::move(f));
  }
  std::lock_guard<std::mutex> lock(mu_);
  for (FamilySnapshot& f : out) {
    if (f.type != MetricType::kHistogram) continue;
    const auto [lo, hi] = ObservedRange(f);
    if (hi <= 0) continue;
    auto [it, inserted] = histogram_ranges_.try_emplace(f.name, lo, hi);
    if (!inserted) {
      it->second.first = std::min(it->second.first, lo);
      it->second.second = std::max(it->second.second, hi);
    }
    f.bucket_bounds = DecadeBounds(it->second.first, it->second.second);
  }
  return out;
}

std::string MetricsRegistry::PrometheusText() const { return RenderPrometheusText(Collect()); }

nlohmann::json MetricsRegistry::Json() const { return RenderJson(Collect()); }

std::string RenderPrometheusText(const std::vector<FamilySnapshot>& families) {
  std::string out;
  for (const FamilySnapshot& family : families) {
    fmt::format_to(std::back_inserter(out), "# HELP {} {}\n# TYPE {} {}\n", family.name,
                   EscapeHelp(family.help), family.name, MetricTypeName(family.type));
    if (family.type != MetricType::kHistogram) {
      for (const SeriesSnapshot& s : family.series) {
        AppendSample(&out, family.name, s.labels, "", "", s.value);
      }
      continue;
    }
    // One set of bounds for the whole family, so that sum by (le) across series works.
    std::vector<double> bounds = family.bucket_bounds;
    if (bounds.empty()) {
      const auto [lo, hi] = ObservedRange(family);
      bounds = DecadeBounds(lo, hi);
    }
    std::vector<std::string> le;
    le.reserve(bounds.size());
    for (double b : bounds) le.push_back(FormatSampleValue(b));
    const std::string bucket_name = family.name + "_bucket";
    for (const SeriesSnapshot& s : family.series) {
      const HistogramSnapshot& h = s.histogram;
      const std::vector<int64_t> cumulative = h.CumulativeCounts(bounds);
      for (size_t i = 0; i < bounds.size(); ++i) {
        AppendSample(&out, bucket_name, s.labels, "le", le[i], static_cast<double>(cumulative[i]));
      }
      AppendSample(&out, bucket_name, s.labels, "le", "+Inf", static_cast<double>(h.count()));
      AppendSample(&out, family.name + "_sum", s.labels, "", "", h.sum());
      AppendSample(&out, family.name + "_count", s.labels, "", "", static_cast<double>(h.count()));
    }
  }
  return out;
}

nlohmann::json RenderJson(const std::vector<FamilySnapshot>& families) {
  nlohmann::json metrics = nlohmann::json::array();
  for (const FamilySnapshot& family : families) {
    nlohmann::json series = nlohmann::json::array();
    for (const SeriesSnapshot& s : family.series) {
      nlohmann::json j;
      if (family.type == MetricType::kHistogram) {
        j = s.histogram.ToJson();
      } else {
        j["value"] = s.value;
      }
      j["labels"] = LabelsJson(s.labels);
      series.push_back(std::move(j));
    }
    metrics.push_back({{"name", family.name},
                       {"type", MetricTypeName(family.type)},
                       {"help", family.help},
                       {"series", std::move(series)}});
  }
  return {{"metrics", std::move(metrics)}};
}

}  // namespace sluice::observe
