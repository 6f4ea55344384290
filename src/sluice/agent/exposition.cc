#include "sluice/agent/exposition.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "sluice/connectors/procfs/sample_rows.h"
#include "sluice/core/time.h"

namespace sluice::agent {

namespace {

void AppendJsonString(std::string_view s, std::string* out) {
  out->push_back('"');
  procfs::AppendJsonStringBody(s, out);
  out->push_back('"');
}

// Shortest text that reads back as the same double; JSON has no NaN or infinities.
void AppendJsonNumber(double v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  fmt::format_to(std::back_inserter(*out), "{}", v);
}

void AppendPrometheusNumber(double v, std::string* out) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "+Inf" : "-Inf");
  } else {
    fmt::format_to(std::back_inserter(*out), "{}", v);
  }
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

bool Hex4(std::string_view s, size_t at, uint32_t* v) {
  if (at + 4 > s.size()) return false;
  *v = 0;
  for (size_t i = at; i < at + 4; ++i) {
    const char c = s[i];
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) return false;
    *v = *v * 16 + static_cast<uint32_t>(d);
  }
  return true;
}

// Read the JSON string starting at s[*at] (a quote) into `out`, decoded; advance past it.
bool ReadJsonString(std::string_view s, size_t* at, std::string* out) {
  if (*at >= s.size() || s[*at] != '"') return false;
  for (size_t i = *at + 1; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '"') {
      *at = i + 1;
      return true;
    }
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (++i >= s.size()) return false;
    switch (s[i]) {
      case '"':
      case '\\':
      case '/':
        out->push_back(s[i]);
        break;
      case 'b':
        out->push_back('\b');
        break;
      case 'f':
        out->push_back('\f');
        break;
      case 'n':
        out->push_back('\n');
        break;
      case 'r':
        out->push_back('\r');
        break;
      case 't':
        out->push_back('\t');
        break;
      case 'u': {
        uint32_t cp = 0;
        if (!Hex4(s, i + 1, &cp)) return false;
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
          uint32_t low = 0;
          if (i + 2 < s.size() && s[i + 1] == '\\' && s[i + 2] == 'u' && Hex4(s, i + 3, &low) &&
              low >= 0xDC00 && low < 0xE000) {
            cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            i += 6;
          } else {
            cp = 0xFFFD;
          }
        } else if (cp >= 0xDC00 && cp < 0xE000) {
          cp = 0xFFFD;
        }
        AppendUtf8(cp, out);
        break;
      }
      default:
        return false;
    }
  }
  return false;
}

void SkipSpace(std::string_view s, size_t* at) {
  while (*at < s.size() && (s[*at] == ' ' || s[*at] == '\n' || s[*at] == '\t' || s[*at] == '\r'))
    ++*at;
}

}  // namespace

Result<SampleColumns> FindSampleColumns(const Batch& batch) {
  SampleColumns c;
  struct Want {
    const char* name;
    TypeId type;
    const Column** slot;
  };
  for (const Want& w :
       {Want{"ts", TypeId::kTimestamp, &c.ts}, Want{"host", TypeId::kString, &c.host},
        Want{"metric", TypeId::kString, &c.metric}, Want{"labels", TypeId::kJson, &c.labels},
        Want{"value", TypeId::kFloat64, &c.value}}) {
    const Column* col = batch.GetColumn(w.name);
    if (col == nullptr || col->type() != w.type) {
      return Status::Invalid(
          "the rows have no {} column '{}': the agent serves the rows of a procfs source (ts, "
          "host, metric, labels, value, error)",
          TypeName(w.type), w.name);
    }
    *w.slot = col;
  }
  const Column* error = batch.GetColumn("error");
  if (error != nullptr && error->type() == TypeId::kString) c.error = error;
  return c;
}

bool AppendPrometheusLabels(std::string_view labels, std::string* out) {
  const size_t start = out->size();
  auto fail = [&] {
    out->resize(start);
    return false;
  };
  size_t at = 0;
  SkipSpace(labels, &at);
  if (at >= labels.size() || labels[at] != '{') return fail();
  ++at;
  std::string key, value;
  bool first = true;
  while (true) {
    SkipSpace(labels, &at);
    if (at < labels.size() && labels[at] == '}' && first) {
      ++at;
      break;
    }
    key.clear();
    value.clear();
    if (!ReadJsonString(labels, &at, &key)) return fail();
    SkipSpace(labels, &at);
    if (at >= labels.size() || labels[at] != ':') return fail();
    ++at;
    SkipSpace(labels, &at);
    if (!ReadJsonString(labels, &at, &value)) return fail();
    if (!first) out->push_back(',');
    first = false;
    if (key.empty()) key.push_back('_');  // not key = "_": GCC 12 -Wrestrict misfires
    for (size_t i = 0; i < key.size(); ++i) {
      const char ch = key[i];
      const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' ||
                      (i > 0 && ch >= '0' && ch <= '9');
      out->push_back(ok ? ch : '_');
    }
    out->append("=\"");
    for (char ch : value) {
      if (ch == '\\') {
        out->append("\\\\");
      } else if (ch == '"') {
        out->append("\\\"");
      } else if (ch == '\n') {
        out->append("\\n");
      } else {
        out->push_back(ch);
      }
    }
    out->push_back('"');
    SkipSpace(labels, &at);
    if (at < labels.size() && labels[at] == ',') {
      ++at;
      continue;
    }
    if (at < labels.size() && labels[at] == '}') {
      ++at;
      break;
    }
    return fail();
  }
  SkipSpace(labels, &at);
  return at == labels.size() ? true : fail();
}

std::string SampleJson(const Batch& batch, const SampleColumns& cols, const SampleInfo& info) {
  const int64_t n = batch.num_rows();
  std::string out;
  out.reserve(static_cast<size_t>(n) * 64 + 256);
  const int64_t ts = n > 0 && cols.ts->IsValid(0) ? cols.ts->GetInt64(0) : 0;
  out.append("{\"host\":");
  AppendJsonString(n > 0 ? cols.host->GetView(0) : std::string_view(), &out);
  out.append(",\"ts\":");
  AppendJsonString(FormatTimestamp(ts), &out);
  fmt::format_to(std::back_inserter(out), ",\"ts_us\":{},\"sample\":{},\"interval_s\":{}", ts,
                 info.sample, static_cast<double>(info.interval_us) / 1e6);
  out.append(",\"metrics\":{");
  // Each metric's rows together, metrics in the order of their first row.
  std::unordered_map<std::string_view, std::vector<int64_t>> rows;
  std::vector<std::string_view> order;
  for (int64_t i = 0; i < n; ++i) {
    const std::string_view metric = cols.metric->GetView(i);
    auto [it, added] = rows.try_emplace(metric);
    if (added) order.push_back(metric);
    it->second.push_back(i);
  }
  for (size_t m = 0; m < order.size(); ++m) {
    if (m > 0) out.push_back(',');
    AppendJsonString(order[m], &out);
    out.append(":[");
    bool first = true;
    for (int64_t i : rows[order[m]]) {
      if (!first) out.push_back(',');
      first = false;
      out.append("{\"labels\":");
      const std::string_view labels = cols.labels->IsValid(i) ? cols.labels->GetView(i) : "{}";
      out.append(labels.empty() ? "{}" : labels);
      out.append(",\"value\":");
      AppendJsonNumber(cols.value->IsValid(i) ? cols.value->GetFloat64(i) : NAN, &out);
      if (cols.error != nullptr && cols.error->IsValid(i)) {
        out.append(",\"error\":");
        AppendJsonString(cols.error->GetView(i), &out);
      }
      out.push_back('}');
    }
    out.push_back(']');
  }
  out.append("}}\n");
  return out;
}

std::string SamplePrometheus(const Batch& batch, const SampleColumns& cols,
                             std::string_view prefix) {
  const int64_t n = batch.num_rows();
  std::unordered_map<std::string_view, int> group;
  std::vector<std::string_view> order;
  std::vector<int> row_group(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const std::string_view metric = cols.metric->GetView(i);
    auto [it, added] = group.try_emplace(metric, static_cast<int>(order.size()));
    if (added) order.push_back(metric);
    row_group[static_cast<size_t>(i)] = it->second;
  }
  std::vector<int64_t> sorted(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) sorted[static_cast<size_t>(i)] = i;
  std::stable_sort(sorted.begin(), sorted.end(), [&](int64_t a, int64_t b) {
    return row_group[static_cast<size_t>(a)] < row_group[static_cast<size_t>(b)];
  });
  std::string out;
  out.reserve(static_cast<size_t>(n) * 80 + order.size() * 120);
  int current = -1;
  for (int64_t i : sorted) {
    const int g = row_group[static_cast<size_t>(i)];
    const std::string_view metric = order[static_cast<size_t>(g)];
    if (g != current) {
      current = g;
      const bool counter = metric.size() > 6 && metric.substr(metric.size() - 6) == "_total";
      fmt::format_to(std::back_inserter(out), "# HELP {}{} {}\n# TYPE {}{} {}\n", prefix, metric,
                     MetricHelp(metric), prefix, metric, counter ? "counter" : "gauge");
    }
    out.append(prefix);
    out.append(metric);
    const size_t mark = out.size();
    out.push_back('{');
    if (cols.labels->IsValid(i) && AppendPrometheusLabels(cols.labels->GetView(i), &out) &&
        out.size() > mark + 1) {
      out.push_back('}');
    } else {
      out.resize(mark);  // no labels
    }
    out.push_back(' ');
    AppendPrometheusNumber(cols.value->IsValid(i) ? cols.value->GetFloat64(i) : NAN, &out);
    out.push_back('\n');
  }
  return out;
}

}  // namespace sluice::agent
