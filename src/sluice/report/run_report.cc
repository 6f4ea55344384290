#include "sluice/report/run_report.h"

#include <cstdint>
#include <limits>

namespace sluice::report {

namespace {

using nlohmann::json;

// Each reader leaves `*out` untouched when the field is absent or null, and fails with the
// field's path when it has the wrong type.

const json* Field(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

// Convert a JSON number to int64, clamping values out of range (a float cast beyond the range
// is undefined behaviour).
int64_t ToInt64(const json& v) {
  if (!v.is_number_float())
    return v.is_number_unsigned() && v.get<uint64_t>() > INT64_MAX ? INT64_MAX : v.get<int64_t>();
  const double d = v.get<double>();
  if (!(d == d)) return 0;
  if (d >= 9.2e18) return INT64_MAX;
  if (d <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(d);
}

Status ReadString(const json& obj, const char* key, const std::string& path, std::string* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_string()) return Status::Invalid("{}{}: expected a string", path, key);
  *out = v->get<std::string>();
  return Status::OK();
}

Status ReadDouble(const json& obj, const char* key, const std::string& path, double* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_number()) return Status::Invalid("{}{}: expected a number", path, key);
  *out = v->get<double>();
  return Status::OK();
}

Status ReadInt(const json& obj, const char* key, const std::string& path, int64_t* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_number()) return Status::Invalid("{}{}: expected a number", path, key);
  *out = ToInt64(*v);
  return Status::OK();
}

Status ReadOptionalDouble(const json& obj, const char* key, const std::string& path,
                          std::optional<double>* out) {
  if (Field(obj, key) == nullptr) return Status::OK();
  double d = 0;
  SLUICE_RETURN_NOT_OK(ReadDouble(obj, key, path, &d));
  *out = d;
  return Status::OK();
}

Status ReadObject(const json& obj, const char* key, const std::string& path, const json** out) {
  const json* v = Field(obj, key);
  *out = nullptr;
  if (v == nullptr) return Status::OK();
  if (!v->is_object()) return Status::Invalid("{}{}: expected an object", path, key);
  *out = v;
  return Status::OK();
}

Status ReadNumbers(const json& obj, const char* key, const std::string& path,
                   std::vector<double>* out) {
  const json* v = Field(obj, key);
  if (v == nullptr) return Status::OK();
  if (!v->is_array()) return Status::Invalid("{}{}: expected an array of numbers", path, key);
  out->clear();
  out->reserve(v->size());
  for (size_t i = 0; i < v->size(); ++i) {
    const json& e = (*v)[i];
    // A sample the engine could not take is written as null; keep the position.
    if (e.is_null()) {
      out->push_back(std::numeric_limits<double>::quiet_NaN());
    } else if (e.is_number()) {
      out->push_back(e.get<double>());
    } else {
      return Status::Invalid("{}{}[{}]: expected a number", path, key, i);
    }
  }
  return Status::OK();
}

Status ReadStrings(const json& obj, const char* key, const std::string& path,
                   std::vector<std::string>* out) {
  const json* v = Field(obj, key);
  if (!v->is_array()) return Status::Invalid("{}{}: expected an array of strings", path, key);
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string()) return Status::Invalid("{}{}[{}]: expected a string", path, key, i);
    out->push_back((*v)[i].get<std::string>());
  }
  return Status::OK();
}

// A bucket bound may be written as a number, null, or "+Inf" (JSON has no infinity).
Result<double> BucketBound(const json& v, const std::string& path) {
  if (v.is_number()) return v.get<double>();
  if (v.is_null()) return std::numeric_limits<double>::infinity();
  if (v.is_string()) {
    const auto s = v.get<std::string>();
    if (s == "+Inf" || s == "Inf" || s == "inf" || s == "+inf") {
      return std::numeric_limits<double>::infinity();
    }
  }
  return Status::Invalid("{}: expected a number or \"+Inf\"", path);
}

Status ParseHistogram(const json& j, const std::string& path, HistogramReport* h) {
  if (!j.is_object()) return Status::Invalid("{}: expected an object", path);
  const std::string p = path + ".";
  SLUICE_RETURN_NOT_OK(ReadString(j, "unit", p, &h->unit));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "count", p, &h->count));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "sum", p, &h->sum));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "min", p, &h->min));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "max", p, &h->max));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "p50", p, &h->p50));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "p95", p, &h->p95));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "p99", p, &h->p99));
  const json* buckets = Field(j, "buckets");
  if (buckets == nullptr) return Status::OK();
  if (!buckets->is_array()) return Status::Invalid("{}buckets: expected an array", p);
  for (size_t i = 0; i < buckets->size(); ++i) {
    const json& b = (*buckets)[i];
    const std::string bp = fmt::format("{}buckets[{}]", p, i);
    if (!b.is_array() || b.size() != 2 || !b[1].is_number()) {
      return Status::Invalid("{}: expected [upper_bound, count]", bp);
    }
    SLUICE_ASSIGN_OR_RETURN(double bound, BucketBound(b[0], bp));
    h->buckets.emplace_back(bound, ToInt64(b[1]));
  }
  return Status::OK();
}

Status ParseNode(const json& j, size_t index, NodeReport* n) {
  const std::string p = fmt::format("nodes[{}].", index);
  if (!j.is_object()) return Status::Invalid("nodes[{}]: expected an object", index);
  const json* id = Field(j, "id");
  if (id == nullptr) return Status::Invalid("{}id: missing", p);
  SLUICE_RETURN_NOT_OK(ReadString(j, "id", p, &n->id));
  SLUICE_RETURN_NOT_OK(ReadString(j, "type", p, &n->type));
  SLUICE_RETURN_NOT_OK(ReadString(j, "kind", p, &n->kind));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "parallelism", p, &n->parallelism));
  if (n->parallelism < 1) n->parallelism = 1;
  SLUICE_RETURN_NOT_OK(ReadInt(j, "rows_in", p, &n->rows_in));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "rows_out", p, &n->rows_out));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "bytes_in", p, &n->bytes_in));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "bytes_out", p, &n->bytes_out));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "batches_in", p, &n->batches_in));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "batches_out", p, &n->batches_out));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "busy_s", p, &n->busy_s));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "blocked_s", p, &n->blocked_s));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "utilization", p, &n->utilization));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "errors", p, &n->errors));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "discarded_rows", p, &n->discarded_rows));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "committed_batches", p, &n->committed_batches));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "abandoned_batches", p, &n->abandoned_batches));
  const json* obj = nullptr;
  SLUICE_RETURN_NOT_OK(ReadObject(j, "phases_s", p, &obj));
  if (obj != nullptr) {
    for (const auto& [k, v] : obj->items()) {
      if (!v.is_number()) return Status::Invalid("{}phases_s.{}: expected a number", p, k);
      n->phases_s[k] = v.get<double>();
    }
  }
  SLUICE_RETURN_NOT_OK(ReadObject(j, "counters", p, &obj));
  if (obj != nullptr) {
    for (const auto& [k, v] : obj->items()) {
      if (!v.is_number()) return Status::Invalid("{}counters.{}: expected a number", p, k);
      n->counters[k] = ToInt64(v);
    }
  }
  if (Field(j, "inputs") != nullptr) {
    n->inputs.emplace();
    SLUICE_RETURN_NOT_OK(ReadStrings(j, "inputs", p, &*n->inputs));
  }
  if (Field(j, "queue_depth_max") != nullptr) {
    n->queue_depth_max = 0;
    SLUICE_RETURN_NOT_OK(ReadInt(j, "queue_depth_max", p, &*n->queue_depth_max));
  }
  SLUICE_RETURN_NOT_OK(ReadObject(j, "histograms", p, &obj));
  if (obj != nullptr) {
    for (const auto& [k, v] : obj->items()) {
      SLUICE_RETURN_NOT_OK(
          ParseHistogram(v, fmt::format("{}histograms.{}", p, k), &n->histograms[k]));
    }
  }
  SLUICE_RETURN_NOT_OK(ReadObject(j, "batch_close", p, &obj));
  if (obj != nullptr) {
    for (const auto& [k, v] : obj->items()) {
      if (!v.is_number()) return Status::Invalid("{}batch_close.{}: expected a number", p, k);
      n->batch_close[k] = ToInt64(v);
    }
  }
  return Status::OK();
}

Status ParseTimeSeries(const json& j, TimeSeries* ts) {
  const std::string p = "timeseries.";
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "interval_s", p, &ts->interval_s));
  SLUICE_RETURN_NOT_OK(ReadNumbers(j, "t", p, &ts->t));
  SLUICE_RETURN_NOT_OK(ReadNumbers(j, "rss_bytes", p, &ts->rss_bytes));
  SLUICE_RETURN_NOT_OK(ReadNumbers(j, "cpu_percent", p, &ts->cpu_percent));
  SLUICE_RETURN_NOT_OK(ReadNumbers(j, "memory_budget_bytes", p, &ts->memory_budget_bytes));
  const json* nodes = nullptr;
  SLUICE_RETURN_NOT_OK(ReadObject(j, "nodes", p, &nodes));
  if (nodes == nullptr) return Status::OK();
  for (const auto& [id, v] : nodes->items()) {
    const std::string np = fmt::format("{}nodes.{}", p, id);
    if (!v.is_object()) return Status::Invalid("{}: expected an object", np);
    NodeSeries& s = ts->nodes[id];
    SLUICE_RETURN_NOT_OK(ReadNumbers(v, "rows_in", np + ".", &s.rows_in));
    SLUICE_RETURN_NOT_OK(ReadNumbers(v, "rows_out", np + ".", &s.rows_out));
    SLUICE_RETURN_NOT_OK(ReadNumbers(v, "busy_s", np + ".", &s.busy_s));
    SLUICE_RETURN_NOT_OK(ReadNumbers(v, "blocked_s", np + ".", &s.blocked_s));
    SLUICE_RETURN_NOT_OK(ReadNumbers(v, "queue_depth", np + ".", &s.queue_depth));
  }
  return Status::OK();
}

Status ParseAlert(const json& j, size_t index, AlertReport* a) {
  const std::string p = fmt::format("alerts[{}].", index);
  if (!j.is_object()) return Status::Invalid("alerts[{}]: expected an object", index);
  SLUICE_RETURN_NOT_OK(ReadString(j, "name", p, &a->name));
  SLUICE_RETURN_NOT_OK(ReadString(j, "metric", p, &a->metric));
  SLUICE_RETURN_NOT_OK(ReadString(j, "node", p, &a->node));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "value", p, &a->value));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "threshold", p, &a->threshold));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "fired_at_s", p, &a->fired_at_s));
  SLUICE_RETURN_NOT_OK(ReadOptionalDouble(j, "resolved_at_s", p, &a->resolved_at_s));
  SLUICE_RETURN_NOT_OK(ReadString(j, "message", p, &a->message));
  return Status::OK();
}

Status ParseBottleneck(const json& j, StoredBottleneck* b) {
  const std::string p = "bottleneck.";
  SLUICE_RETURN_NOT_OK(ReadString(j, "node", p, &b->node));
  SLUICE_RETURN_NOT_OK(ReadString(j, "reason", p, &b->reason));
  if (Field(j, "advice") != nullptr) {
    SLUICE_RETURN_NOT_OK(ReadStrings(j, "advice", p, &b->advice));
  }
  return Status::OK();
}

}  // namespace

const NodeReport* RunReport::FindNode(const std::string& id) const {
  for (const auto& n : nodes) {
    if (n.id == id) return &n;
  }
  return nullptr;
}

Result<RunReport> ParseRunReport(const nlohmann::json& j) {
  if (!j.is_object()) return Status::Invalid("run report: expected a JSON object");
  const json* nodes = Field(j, "nodes");
  if (nodes == nullptr) return Status::Invalid("run report: missing field 'nodes'");
  if (!nodes->is_array()) return Status::Invalid("nodes: expected an array");
  RunReport r;
  const std::string p;
  SLUICE_RETURN_NOT_OK(ReadInt(j, "version", p, &r.version));
  SLUICE_RETURN_NOT_OK(ReadString(j, "pipeline", p, &r.pipeline));
  SLUICE_RETURN_NOT_OK(ReadString(j, "run_id", p, &r.run_id));
  SLUICE_RETURN_NOT_OK(ReadString(j, "status", p, &r.status));
  SLUICE_RETURN_NOT_OK(ReadString(j, "error", p, &r.error));
  SLUICE_RETURN_NOT_OK(ReadString(j, "engine", p, &r.engine));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "duration_s", p, &r.duration_s));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "rows_read", p, &r.rows_read));
  SLUICE_RETURN_NOT_OK(ReadDouble(j, "rows_per_s", p, &r.rows_per_s));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "peak_rss_bytes", p, &r.peak_rss_bytes));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "memory_budget_peak_bytes", p, &r.memory_budget_peak_bytes));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "memory_budget_limit_bytes", p, &r.memory_budget_limit_bytes));
  SLUICE_RETURN_NOT_OK(ReadInt(j, "memory_budget_waits", p, &r.memory_budget_waits));
  SLUICE_RETURN_NOT_OK(ReadString(j, "started_at", p, &r.started_at));
  SLUICE_RETURN_NOT_OK(ReadString(j, "ended_at", p, &r.ended_at));
  SLUICE_RETURN_NOT_OK(ReadOptionalDouble(j, "cpu_user_s", p, &r.cpu_user_s));
  SLUICE_RETURN_NOT_OK(ReadOptionalDouble(j, "cpu_sys_s", p, &r.cpu_sys_s));
  r.nodes.resize(nodes->size());
  for (size_t i = 0; i < nodes->size(); ++i) {
    SLUICE_RETURN_NOT_OK(ParseNode((*nodes)[i], i, &r.nodes[i]));
  }
  const json* ts = nullptr;
  SLUICE_RETURN_NOT_OK(ReadObject(j, "timeseries", p, &ts));
  if (ts != nullptr) {
    r.timeseries.emplace();
    SLUICE_RETURN_NOT_OK(ParseTimeSeries(*ts, &*r.timeseries));
  }
  const json* alerts = Field(j, "alerts");
  if (alerts != nullptr) {
    if (!alerts->is_array()) return Status::Invalid("alerts: expected an array");
    r.alerts.resize(alerts->size());
    for (size_t i = 0; i < alerts->size(); ++i) {
      SLUICE_RETURN_NOT_OK(ParseAlert((*alerts)[i], i, &r.alerts[i]));
    }
  }
  const json* bottleneck = nullptr;
  SLUICE_RETURN_NOT_OK(ReadObject(j, "bottleneck", p, &bottleneck));
  if (bottleneck != nullptr) {
    r.bottleneck.emplace();
    SLUICE_RETURN_NOT_OK(ParseBottleneck(*bottleneck, &*r.bottleneck));
  }
  return r;
}

}  // namespace sluice::report
