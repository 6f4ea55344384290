#include "sluice/report/chart_internal.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <iterator>
#include <map>

#include <fmt/format.h>

namespace sluice::report::internal {

namespace {

// Approximate width of one character of the 12px sans-serif font used in the charts.
constexpr double kCharWidth = 7.0;

bool Finite(double v) { return std::isfinite(v); }

// Return `v` with 2, 1 or 0 decimals depending on its size, without trailing zeros.
std::string Compact(double v) {
  const double a = std::abs(v);
  std::string s = fmt::format("{:.{}f}", v, a < 10 ? 2 : (a < 100 ? 1 : 0));
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  if (s == "-0") s = "0";
  return s;
}

// Return `text` cut to `max_chars` characters (UTF-8 aware) with an ellipsis.
std::string Truncate(const std::string& text, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80) {
      if (chars == max_chars - 1) {
        // Keep it whole when the rest fits.
        size_t rest = 0;
        for (size_t k = i; k < text.size(); ++k) {
          if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) ++rest;
        }
        if (rest <= 1) return text;
        return text.substr(0, i) + "\u2026";
      }
      ++chars;
    }
  }
  return text;
}

double TextWidth(const std::string& text) { return static_cast<double>(text.size()) * kCharWidth; }

// The opening of a chart's <svg>, with its <title> and the visible title.
void OpenSvg(std::string* out, const std::string& id, const std::string& title, double width,
             double height, bool visible_title = true) {
  fmt::format_to(std::back_inserter(*out),
                 "<svg id=\"{0}\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
                 "viewBox=\"0 0 {1:.0f} {2:.0f}\" width=\"{1:.0f}\" height=\"{2:.0f}\" "
                 "role=\"img\" aria-labelledby=\"{0}-title\">"
                 "<title id=\"{0}-title\">{3}</title>\n",
                 EscapeHtml(id), width, height, EscapeHtml(title));
  if (visible_title) {
    fmt::format_to(std::back_inserter(*out),
                   "<text class=\"chart-title\" x=\"8\" y=\"18\">{}</text>\n", EscapeHtml(title));
  }
}

// A row of legend entries starting at (x0, y); wraps at `max_x`. Returns the rows used.
struct LegendItem {
  std::string name;
  std::string color;
  bool dashed = false;
  bool box = false;  // A filled square (bars) instead of a line (series).
};

int DrawLegend(std::string* out, const std::vector<LegendItem>& items, double x0, double y,
               double max_x) {
  if (items.empty()) return 0;
  double x = x0;
  int rows = 1;
  for (const auto& item : items) {
    const std::string name = Truncate(item.name, 40);
    const double w = 22 + TextWidth(name) + 18;
    if (x > x0 && x + w > max_x) {
      x = x0;
      y += 18;
      ++rows;
    }
    if (item.box) {
      fmt::format_to(std::back_inserter(*out),
                     "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"12\" height=\"12\" fill=\"{}\"/>",
                     x + 2, y - 10, item.color);
    } else {
      fmt::format_to(std::back_inserter(*out),
                     "<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" "
                     "stroke-width=\"2.5\"{}/>",
                     x, y - 4, x + 16, y - 4, item.color,
                     item.dashed ? " stroke-dasharray=\"5 3\"" : "");
    }
    fmt::format_to(std::back_inserter(*out),
                   "<text class=\"legend\" x=\"{:.1f}\" y=\"{:.1f}\">{}</text>", x + 22, y,
                   EscapeHtml(name));
    x += w;
  }
  out->push_back('\n');
  return rows;
}

// Return the rows a legend will use (DrawLegend's wrapping without drawing).
int LegendRows(const std::vector<LegendItem>& items, double x0, double max_x) {
  std::string scratch;
  return DrawLegend(&scratch, items, x0, 0, max_x);
}

void HLine(std::string* out, double x1, double x2, double y, const char* cls) {
  fmt::format_to(std::back_inserter(*out),
                 "<line class=\"{}\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>",
                 cls, x1, y, x2, y);
}

void VLine(std::string* out, double x, double y1, double y2, const char* cls) {
  fmt::format_to(std::back_inserter(*out),
                 "<line class=\"{}\" x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\"/>",
                 cls, x, y1, x, y2);
}

void Text(std::string* out, double x, double y, const char* anchor, const std::string& text,
          const char* cls = nullptr) {
  fmt::format_to(std::back_inserter(*out),
                 "<text{}{}{} x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\">{}</text>",
                 cls ? " class=\"" : "", cls ? cls : "", cls ? "\"" : "", x, y, anchor,
                 EscapeHtml(text));
}

}  // namespace

std::string EscapeHtml(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

std::string SanitizeId(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-';
    if (!ok) c = '_';
  }
  return out;
}

std::string FormatValue(double v, Unit unit) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (std::isnan(v)) return "n/a";
  const double a = std::abs(v);
  switch (unit) {
    case Unit::kCount:
      if (a < 1e3) return Compact(v);
      if (a < 1e6) return Compact(v / 1e3) + "k";
      if (a < 1e9) return Compact(v / 1e6) + "M";
      return Compact(v / 1e9) + "G";
    case Unit::kBytes:
      if (a < 1024) return fmt::format("{:.0f} B", v);
      if (a < 1024.0 * 1024) return Compact(v / 1024) + " KiB";
      if (a < 1024.0 * 1024 * 1024) return Compact(v / (1024.0 * 1024)) + " MiB";
      return Compact(v / (1024.0 * 1024 * 1024)) + " GiB";
    case Unit::kSeconds:
      if (a == 0) return "0 s";
      if (a < 1e-3) return Compact(v * 1e6) + " \u00b5s";
      if (a < 1) return Compact(v * 1e3) + " ms";
      if (a < 120) return Compact(v) + " s";
      return fmt::format("{}m{:02}s", static_cast<int64_t>(v / 60), static_cast<int64_t>(v) % 60);
    case Unit::kPercent:
      return fmt::format("{:.0f}%", v);
  }
  return Compact(v);
}

Ticks NiceTicks(double lo, double hi, int target) {
  if (!Finite(lo) || !Finite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi <= lo) hi = lo + 1;
  target = std::max(target, 1);
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double norm = raw / mag;
  double mult = 10;
  if (norm <= 1) {
    mult = 1;
  } else if (norm <= 2) {
    mult = 2;
  } else if (norm <= 2.5) {
    mult = 2.5;
  } else if (norm <= 5) {
    mult = 5;
  }
  Ticks t;
  t.step = mult * mag;
  const double first = std::floor(lo / t.step + 1e-9);
  const double last = std::ceil(hi / t.step - 1e-9);
  t.lo = first * t.step;
  t.hi = last * t.step;
  const auto n = static_cast<int64_t>(std::llround(last - first));
  for (int64_t i = 0; i <= n; ++i) t.values.push_back((first + static_cast<double>(i)) * t.step);
  return t;
}

std::string Axis::Label(double v) const {
  double shown = v / divisor;
  // Ticks are multiples of a round step; hide float noise such as 0.30000000000000004.
  shown = std::round(shown * 1e6) / 1e6 + 0.0;
  // "0", not "0k": a count scale's suffix means nothing at zero.
  if (shown == 0 && !suffix.empty() && suffix[0] != ' ' && suffix != "%") return "0";
  return fmt::format("{:g}{}", shown, suffix);
}

Axis MakeAxis(double lo, double hi, Unit unit, int target) {
  Axis axis;
  const double m = std::max(std::abs(Finite(lo) ? lo : 0), std::abs(Finite(hi) ? hi : 0));
  switch (unit) {
    case Unit::kCount:
      // Plain numbers up to 9999: "500" reads better than "0.5k".
      if (m >= 1e10) {
        axis.divisor = 1e9;
        axis.suffix = "G";
      } else if (m >= 1e7) {
        axis.divisor = 1e6;
        axis.suffix = "M";
      } else if (m >= 1e4) {
        axis.divisor = 1e3;
        axis.suffix = "k";
      }
      break;
    case Unit::kBytes: {
      static const char* kSuffixes[] = {" B", " KiB", " MiB", " GiB", " TiB"};
      int k = 0;
      while (k < 4 && m >= std::pow(1024.0, k + 1)) ++k;
      axis.divisor = std::pow(1024.0, k);
      axis.suffix = kSuffixes[k];
      break;
    }
    case Unit::kSeconds:
      axis.suffix = " s";
      if (m > 0 && m < 1e-3) {
        axis.divisor = 1e-6;
        axis.suffix = " \u00b5s";
      } else if (m > 0 && m < 1) {
        axis.divisor = 1e-3;
        axis.suffix = " ms";
      }
      break;
    case Unit::kPercent:
      axis.suffix = "%";
      break;
  }
  Ticks scaled = NiceTicks(lo / axis.divisor, hi / axis.divisor, target);
  axis.ticks.lo = scaled.lo * axis.divisor;
  axis.ticks.hi = scaled.hi * axis.divisor;
  axis.ticks.step = scaled.step * axis.divisor;
  for (double v : scaled.values) axis.ticks.values.push_back(v * axis.divisor);
  return axis;
}

const char* SeriesColor(size_t i) {
  // Tableau 10: distinct, readable on white, not loud.
  static const char* kPalette[] = {"#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
                                   "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return kPalette[i % 10];
}

DagLayout LayoutDag(const RunReport& run) {
  const size_t n = run.nodes.size();
  DagLayout d;
  d.layer_of.assign(n, 0);
  d.has_edges = std::any_of(run.nodes.begin(), run.nodes.end(),
                            [](const NodeReport& node) { return node.inputs.has_value(); });
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < n; ++i) index.emplace(run.nodes[i].id, i);
  std::vector<std::vector<size_t>> inputs(n);
  if (d.has_edges) {
    for (size_t i = 0; i < n; ++i) {
      if (!run.nodes[i].inputs) continue;
      for (const auto& id : *run.nodes[i].inputs) {
        auto it = index.find(id);
        if (it == index.end() || it->second == i) continue;
        inputs[i].push_back(it->second);
        d.edges.emplace_back(it->second, i);
      }
    }
    // Longest path from a source; an edge back to a node still being visited closes a cycle
    // and is not followed.
    std::vector<int> state(n, 0);  // 0 new, 1 visiting, 2 done
    std::function<void(size_t)> visit = [&](size_t i) {
      state[i] = 1;
      size_t depth = 0;
      for (size_t j : inputs[i]) {
        if (state[j] == 1) continue;
        if (state[j] == 0) visit(j);
        depth = std::max(depth, d.layer_of[j] + 1);
      }
      d.layer_of[i] = depth;
      state[i] = 2;
    };
    for (size_t i = 0; i < n; ++i) {
      if (state[i] == 0) visit(i);
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      const auto& kind = run.nodes[i].kind;
      d.layer_of[i] = kind == "source" ? 0 : (kind == "sink" ? 2 : 1);
    }
  }
  // Drop empty layers (a v1 report without transforms).
  std::vector<size_t> used;
  for (size_t l : d.layer_of) used.push_back(l);
  std::sort(used.begin(), used.end());
  used.erase(std::unique(used.begin(), used.end()), used.end());
  for (size_t& l : d.layer_of) {
    l = static_cast<size_t>(std::lower_bound(used.begin(), used.end(), l) - used.begin());
  }
  d.layers.resize(used.size());
  for (size_t i = 0; i < n; ++i) d.layers[d.layer_of[i]].push_back(i);

  // One barycenter pass: order each layer by the mean position of its inputs in earlier
  // layers, which removes the crossings of simple fan-out/fan-in shapes.
  std::vector<double> pos(n, 0);
  for (size_t l = 0; l < d.layers.size(); ++l) {
    auto& layer = d.layers[l];
    std::vector<double> key(n, 0);
    for (size_t k = 0; k < layer.size(); ++k) {
      const size_t i = layer[k];
      double sum = 0;
      int count = 0;
      for (size_t j : inputs[i]) {
        if (d.layer_of[j] < l) {
          sum += pos[j];
          ++count;
        }
      }
      key[i] = count > 0 ? sum / count : static_cast<double>(k);
    }
    std::stable_sort(layer.begin(), layer.end(),
                     [&](size_t a, size_t b) { return key[a] < key[b]; });
    for (size_t k = 0; k < layer.size(); ++k) pos[layer[k]] = static_cast<double>(k);
  }
  return d;
}

std::string RenderLineChart(const LineChart& chart) {
  constexpr double kWidth = 1000, kLeft = 76, kRight = 24, kPlotHeight = 220, kBottom = 46;
  double x_max = 0, y_min = 0, y_max = chart.y_min_top;
  for (const auto& s : chart.series) {
    const size_t n = std::min(s.x.size(), s.y.size());
    for (size_t i = 0; i < n; ++i) {
      if (!Finite(s.x[i]) || !Finite(s.y[i])) continue;
      x_max = std::max(x_max, s.x[i]);
      y_min = std::min(y_min, s.y[i]);
      y_max = std::max(y_max, s.y[i]);
    }
  }
  if (x_max <= 0) x_max = 1;
  const Axis xa = MakeAxis(0, x_max, chart.x_unit, 10);
  const Axis ya = MakeAxis(y_min, y_max, chart.y_unit, 5);

  std::vector<LegendItem> legend;
  for (const auto& s : chart.series) legend.push_back({s.name, s.color, s.dashed, false});
  const int rows = LegendRows(legend, kLeft, kWidth - kRight);
  const double top = 30 + 18 * rows + 12;
  const double bottom = top + kPlotHeight;
  const double height = bottom + kBottom;
  const LinearScale xs(xa.ticks.lo, xa.ticks.hi, kLeft, kWidth - kRight);
  const LinearScale ys(ya.ticks.lo, ya.ticks.hi, bottom, top);

  std::string out;
  OpenSvg(&out, chart.id, chart.title, kWidth, height);
  DrawLegend(&out, legend, kLeft, 44, kWidth - kRight);
  for (double v : ya.ticks.values) {
    HLine(&out, kLeft, kWidth - kRight, ys(v), "grid");
    Text(&out, kLeft - 8, ys(v) + 4, "end", ya.Label(v), "tick");
  }
  for (double v : xa.ticks.values) {
    VLine(&out, xs(v), top, bottom, "grid");
    VLine(&out, xs(v), bottom, bottom + 5, "axis");
    Text(&out, xs(v), bottom + 18, "middle", xa.Label(v), "tick");
  }
  HLine(&out, kLeft, kWidth - kRight, bottom, "axis");
  VLine(&out, kLeft, top, bottom, "axis");
  fmt::format_to(std::back_inserter(out),
                 "<text class=\"axis-label\" transform=\"translate(16 {:.1f}) rotate(-90)\" "
                 "text-anchor=\"middle\">{}</text>",
                 (top + bottom) / 2, EscapeHtml(chart.y_label));
  Text(&out, (kLeft + kWidth - kRight) / 2, bottom + 38, "middle", chart.x_label, "axis-label");
  out.push_back('\n');

  for (const auto& s : chart.series) {
    const size_t n = std::min(s.x.size(), s.y.size());
    std::string d;
    size_t run_len = 0;
    double last_x = 0, last_y = 0;
    auto end_run = [&]() {
      // A lone point between gaps draws nothing as a path: mark it.
      if (run_len == 1) {
        fmt::format_to(std::back_inserter(out),
                       "<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"2\" fill=\"{}\"/>", last_x, last_y,
                       s.color);
      }
      run_len = 0;
    };
    for (size_t i = 0; i < n; ++i) {
      if (!Finite(s.x[i]) || !Finite(s.y[i])) {
        end_run();
        continue;
      }
      last_x = xs(s.x[i]);
      last_y = ys(s.y[i]);
      fmt::format_to(std::back_inserter(d), "{}{:.1f},{:.1f}", run_len == 0 ? "M" : " L", last_x,
                     last_y);
      ++run_len;
    }
    end_run();
    if (d.empty()) continue;
    fmt::format_to(std::back_inserter(out),
                   "<path class=\"series\" d=\"{}\" fill=\"none\" stroke=\"{}\" "
                   "stroke-width=\"2\" stroke-linejoin=\"round\"{}><title>{}</title></path>\n",
                   d, s.color, s.dashed ? " stroke-dasharray=\"6 4\"" : "", EscapeHtml(s.name));
  }
  out += "</svg>\n";
  return out;
}

std::string RenderStackedBars(const std::string& id, const std::string& title,
                              const std::vector<StackedBar>& bars,
                              const std::vector<std::string>& part_order, Unit unit) {
  constexpr double kWidth = 1000, kRight = 90, kBarHeight = 22, kGap = 12, kBottom = 30;
  constexpr size_t kMaxLabel = 28;
  double label_width = 90;
  for (const auto& b : bars) {
    label_width = std::max(label_width, TextWidth(Truncate(b.label, kMaxLabel)) + 16);
  }
  const double left = std::min(label_width, 230.0);
  std::map<std::string, size_t> color_of;
  std::vector<LegendItem> legend;
  for (size_t i = 0; i < part_order.size(); ++i) {
    color_of[part_order[i]] = i;
    legend.push_back({part_order[i], SeriesColor(i), false, true});
  }
  double max_total = 0;
  for (const auto& b : bars) {
    double total = 0;
    for (const auto& [name, v] : b.parts) total += std::max(v, 0.0);
    max_total = std::max(max_total, total);
  }
  const Axis xa = MakeAxis(0, max_total > 0 ? max_total : 1, unit, 8);
  const int rows = LegendRows(legend, left, kWidth - kRight);
  const double top = 30 + 18 * rows + 14;
  const double bottom = top + static_cast<double>(bars.size()) * (kBarHeight + kGap);
  const double height = bottom + kBottom;
  const LinearScale xs(xa.ticks.lo, xa.ticks.hi, left, kWidth - kRight);

  std::string out;
  OpenSvg(&out, id, title, kWidth, height);
  DrawLegend(&out, legend, left, 44, kWidth - kRight);
  for (double v : xa.ticks.values) {
    VLine(&out, xs(v), top - 4, bottom, "grid");
    Text(&out, xs(v), bottom + 18, "middle", xa.Label(v), "tick");
  }
  HLine(&out, left, kWidth - kRight, bottom, "axis");
  for (size_t k = 0; k < bars.size(); ++k) {
    const auto& b = bars[k];
    const double y = top + static_cast<double>(k) * (kBarHeight + kGap) + kGap / 2;
    double total = 0;
    for (const auto& [name, v] : b.parts) total += std::max(v, 0.0);
    Text(&out, left - 8, y + kBarHeight / 2 + 4, "end", Truncate(b.label, kMaxLabel), "bar-label");
    double acc = 0;
    for (const auto& [name, v] : b.parts) {
      if (v <= 0) continue;
      auto it = color_of.find(name);
      const char* color = SeriesColor(it == color_of.end() ? part_order.size() : it->second);
      const double x0 = xs(acc), x1 = xs(acc + v);
      fmt::format_to(std::back_inserter(out),
                     "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" "
                     "fill=\"{}\"><title>{} \u00b7 {}: {} ({:.0f}%)</title></rect>",
                     x0, y, std::max(x1 - x0, 0.5), kBarHeight, color, EscapeHtml(b.label),
                     EscapeHtml(name), EscapeHtml(FormatValue(v, unit)),
                     total > 0 ? 100 * v / total : 0);
      acc += v;
    }
    Text(&out, xs(acc) + 6, y + kBarHeight / 2 + 4, "start", FormatValue(total, unit), "bar-total");
    out.push_back('\n');
  }
  out += "</svg>\n";
  return out;
}

std::string RenderHistogram(const std::string& id, const std::string& title,
                            const std::string& x_label, const HistogramReport& h) {
  constexpr double kWidth = 500, kLeft = 56, kRight = 18, kPlotHeight = 150, kBottom = 40;
  constexpr size_t kMaxBars = 40;
  const Unit unit =
      h.unit == "s" ? Unit::kSeconds : (h.unit == "bytes" ? Unit::kBytes : Unit::kCount);

  // Bars: [lower, upper] and a count, empty buckets at both ends dropped, merged to kMaxBars.
  struct Bar {
    double lower, upper;
    int64_t count;
  };
  std::vector<Bar> bars;
  size_t first = 0, last = h.buckets.size();
  while (first < h.buckets.size() && h.buckets[first].second == 0) ++first;
  while (last > first && h.buckets[last - 1].second == 0) --last;
  if (first < last) {
    double lower = first > 0 ? h.buckets[first - 1].first : std::min(0.0, h.min);
    const size_t group = (last - first + kMaxBars - 1) / kMaxBars;
    for (size_t i = first; i < last; i += group) {
      Bar bar{lower, 0, 0};
      for (size_t k = i; k < std::min(i + group, last); ++k) {
        bar.upper = h.buckets[k].first;
        bar.count += std::max<int64_t>(h.buckets[k].second, 0);
      }
      lower = bar.upper;
      bars.push_back(bar);
    }
  }
  int64_t max_count = 0;
  for (const auto& b : bars) max_count = std::max(max_count, b.count);
  const Axis ya =
      MakeAxis(0, static_cast<double>(std::max<int64_t>(max_count, 1)), Unit::kCount, 4);

  const double top = 30 + 20 + 3 * 13 + 4;
  const double bottom = top + kPlotHeight;
  const double height = bottom + kBottom;
  const double plot_width = kWidth - kLeft - kRight;
  const double bw = bars.empty() ? plot_width : plot_width / static_cast<double>(bars.size());
  const LinearScale ys(ya.ticks.lo, ya.ticks.hi, bottom, top);

  std::string out;
  OpenSvg(&out, id, title, kWidth, height);
  Text(&out, 8, 38, "start",
       fmt::format("{} samples \u00b7 p50 {} \u00b7 p95 {} \u00b7 p99 {} \u00b7 max {}",
                   WithCommas(h.count), FormatValue(h.p50, unit), FormatValue(h.p95, unit),
                   FormatValue(h.p99, unit), FormatValue(h.max, unit)),
       "summary");
  for (double v : ya.ticks.values) {
    HLine(&out, kLeft, kWidth - kRight, ys(v), "grid");
    Text(&out, kLeft - 6, ys(v) + 4, "end", ya.Label(v), "tick");
  }
  for (size_t i = 0; i < bars.size(); ++i) {
    const double y = ys(static_cast<double>(bars[i].count));
    fmt::format_to(std::back_inserter(out),
                   "<rect class=\"bucket\" x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" "
                   "height=\"{:.1f}\" fill=\"#4e79a7\"><title>{} \u2013 {}: {}</title></rect>",
                   kLeft + static_cast<double>(i) * bw + (bw > 4 ? 1 : 0), y,
                   std::max(bw - (bw > 4 ? 2 : 0), 0.5), bottom - y,
                   EscapeHtml(FormatValue(bars[i].lower, unit)),
                   EscapeHtml(FormatValue(bars[i].upper, unit)), WithCommas(bars[i].count));
  }
  // Bucket bounds under the bar edges, at most about seven labels.
  const size_t every = std::max<size_t>(1, (bars.size() + 1 + 6) / 7);
  const size_t last_regular = bars.empty() ? 0 : (bars.size() / every) * every;
  for (size_t i = 0; i <= bars.size() && !bars.empty(); ++i) {
    // The last edge gets a label too unless it would touch the previous one.
    const bool is_last = i == bars.size() && bars.size() - last_regular > every / 2;
    if (i % every != 0 && !is_last) continue;
    const double bound = i == 0 ? bars[0].lower : bars[i - 1].upper;
    const double x = kLeft + static_cast<double>(i) * bw;
    VLine(&out, x, bottom, bottom + 4, "axis");
    Text(&out, x, bottom + 16, "middle", FormatValue(bound, unit), "tick");
  }
  HLine(&out, kLeft, kWidth - kRight, bottom, "axis");
  VLine(&out, kLeft, top, bottom, "axis");
  Text(&out, (kLeft + kWidth - kRight) / 2, bottom + 34, "middle", x_label, "axis-label");

  // Percentile markers: interpolated within their bucket.
  auto position = [&](double p) {
    if (bars.empty() || p <= bars[0].lower) return kLeft;
    for (size_t i = 0; i < bars.size(); ++i) {
      if (p <= bars[i].upper) {
        if (!Finite(bars[i].upper) || bars[i].upper <= bars[i].lower) {
          return kLeft + (static_cast<double>(i) + 0.5) * bw;
        }
        const double f = (p - bars[i].lower) / (bars[i].upper - bars[i].lower);
        return kLeft + (static_cast<double>(i) + std::clamp(f, 0.0, 1.0)) * bw;
      }
    }
    return kWidth - kRight;
  };
  struct Marker {
    const char* name;
    double value;
    const char* color;
  };
  const Marker markers[] = {
      {"p50", h.p50, "#2f7d32"}, {"p95", h.p95, "#c26a00"}, {"p99", h.p99, "#c62828"}};
  if (!bars.empty() && h.count > 0) {
    // Labels go right of their lines, p50 on the top row and p99 on the bottom one, so no label
    // crosses another marker's line. When p99's label would leave the chart, everything
    // mirrors: labels left of their lines, p99 on top.
    const std::string p99_label = fmt::format("p99 {}", FormatValue(h.p99, unit));
    const bool mirror = position(h.p99) + 4 + TextWidth(p99_label) > kWidth - 2;
    for (size_t k = 0; k < 3; ++k) {
      const double x = position(markers[k].value);
      const size_t row = mirror ? 2 - k : k;
      const double label_y = top - 6 - static_cast<double>(2 - row) * 13;
      fmt::format_to(std::back_inserter(out),
                     "<line class=\"marker\" x1=\"{0:.1f}\" y1=\"{1:.1f}\" x2=\"{0:.1f}\" "
                     "y2=\"{2:.1f}\" stroke=\"{3}\" stroke-width=\"1.5\" "
                     "stroke-dasharray=\"4 3\"><title>{4} {5}</title></line>",
                     x, label_y + 3, bottom, markers[k].color, markers[k].name,
                     EscapeHtml(FormatValue(markers[k].value, unit)));
      fmt::format_to(std::back_inserter(out),
                     "<text class=\"marker-label\" x=\"{:.1f}\" y=\"{:.1f}\" text-anchor=\"{}\" "
                     "fill=\"{}\">{} {}</text>",
                     x + (mirror ? -4 : 4), label_y, mirror ? "end" : "start", markers[k].color,
                     markers[k].name, EscapeHtml(FormatValue(markers[k].value, unit)));
    }
  }
  if (bars.empty())
    Text(&out, (kLeft + kWidth - kRight) / 2, (top + bottom) / 2, "middle", "no samples", "tick");
  out += "</svg>\n";
  return out;
}

std::string RenderDag(const RunReport& run, const DagLayout& layout,
                      const std::string& bottleneck) {
  constexpr double kBoxW = 190, kBoxH = 74, kGapX = 90, kGapY = 26, kMargin = 20;
  std::vector<std::string> caption = {
      "data flows left to right; the bar in each node is its utilization (busy time per "
      "instance / run time)"};
  if (!layout.has_edges && !run.nodes.empty()) {
    caption.insert(caption.begin(),
                   "edges unknown: this report (version 1) has no node inputs, so nodes are "
                   "grouped by kind");
  }
  const double top = 36 + 16 * static_cast<double>(caption.size());
  size_t max_rows = 1;
  for (const auto& layer : layout.layers) max_rows = std::max(max_rows, layer.size());
  const size_t num_layers = std::max<size_t>(layout.layers.size(), 1);
  double width = 2 * kMargin + static_cast<double>(num_layers) * (kBoxW + kGapX) - kGapX;
  for (const auto& line : caption) width = std::max(width, 2 * kMargin + TextWidth(line) * 0.9);
  const double tall = static_cast<double>(max_rows) * (kBoxH + kGapY) - kGapY;
  const double height = top + tall + kMargin;

  // Box origins; each layer is centred on the tallest one.
  std::vector<double> bx(run.nodes.size()), by(run.nodes.size());
  for (size_t l = 0; l < layout.layers.size(); ++l) {
    const auto& layer = layout.layers[l];
    const double h = static_cast<double>(layer.size()) * (kBoxH + kGapY) - kGapY;
    for (size_t k = 0; k < layer.size(); ++k) {
      bx[layer[k]] = kMargin + static_cast<double>(l) * (kBoxW + kGapX);
      by[layer[k]] = top + (tall - h) / 2 + static_cast<double>(k) * (kBoxH + kGapY);
    }
  }

  std::string out;
  OpenSvg(&out, "chart-dag", "Pipeline graph", width, height, /*visible_title=*/false);
  for (size_t i = 0; i < caption.size(); ++i) {
    Text(&out, kMargin, 18 + 16 * static_cast<double>(i), "start", caption[i], "tick");
  }
  out +=
      "<defs><marker id=\"dag-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" "
      "markerWidth=\"7\" markerHeight=\"7\" orient=\"auto-start-reverse\">"
      "<path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6b7280\"/></marker></defs>\n";
  for (const auto& [from, to] : layout.edges) {
    const double x1 = bx[from] + kBoxW, y1 = by[from] + kBoxH / 2;
    const double x2 = bx[to], y2 = by[to] + kBoxH / 2;
    const double c = std::max(std::abs(x2 - x1) / 2, 30.0);
    fmt::format_to(std::back_inserter(out),
                   "<path class=\"edge\" d=\"M{:.1f},{:.1f} C{:.1f},{:.1f} {:.1f},{:.1f} "
                   "{:.1f},{:.1f}\" fill=\"none\" stroke=\"#6b7280\" stroke-width=\"1.5\" "
                   "marker-end=\"url(#dag-arrow)\"><title>{} \u2192 {}</title></path>\n",
                   x1, y1, x1 + c, y1, x2 - c, y2, x2 - 1, y2, EscapeHtml(run.nodes[from].id),
                   EscapeHtml(run.nodes[to].id));
  }
  for (size_t i = 0; i < run.nodes.size(); ++i) {
    const NodeReport& n = run.nodes[i];
    const bool hot = !bottleneck.empty() && n.id == bottleneck;
    const double x = bx[i], y = by[i];
    const double util = Finite(n.utilization) ? std::clamp(n.utilization, 0.0, 1.0) : 0;
    const int64_t rows = n.kind == "sink" ? n.rows_in : n.rows_out;
    fmt::format_to(std::back_inserter(out),
                   "<g class=\"node{}\"><title>{} ({} {}): {} rows, busy {:.0f}%{}</title>",
                   hot ? " bottleneck" : "", EscapeHtml(n.id), EscapeHtml(n.type),
                   EscapeHtml(n.kind), WithCommas(rows), util * 100, hot ? ", the bottleneck" : "");
    fmt::format_to(std::back_inserter(out),
                   "<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.0f}\" height=\"{:.0f}\" rx=\"6\" "
                   "fill=\"{}\" stroke=\"{}\" stroke-width=\"{}\"/>",
                   x, y, kBoxW, kBoxH, hot ? "#fdecea" : "#ffffff", hot ? "#c62828" : "#9ca3af",
                   hot ? 2.5 : 1);
    if (hot) Text(&out, x + kBoxW, y - 6, "end", "bottleneck", "bottleneck-label");
    Text(&out, x + 10, y + 19, "start", Truncate(n.id, 24), "node-id");
    Text(&out, x + 10, y + 35, "start",
         Truncate(n.type + (n.kind.empty() ? "" : " \u00b7 " + n.kind) +
                      (n.parallelism > 1 ? fmt::format(" \u00d7{}", n.parallelism) : ""),
                  26),
         "node-meta");
    Text(&out, x + 10, y + 51, "start",
         fmt::format("{} rows \u00b7 util {:.0f}%",
                     FormatValue(static_cast<double>(rows), Unit::kCount), util * 100),
         "node-meta");
    const char* bar_color = util >= 0.8 ? "#e15759" : (util >= 0.5 ? "#f28e2b" : "#59a14f");
    fmt::format_to(std::back_inserter(out),
                   "<rect x=\"{0:.1f}\" y=\"{1:.1f}\" width=\"{2:.0f}\" height=\"5\" rx=\"2\" "
                   "fill=\"#e5e7eb\"/><rect x=\"{0:.1f}\" y=\"{1:.1f}\" width=\"{3:.1f}\" "
                   "height=\"5\" rx=\"2\" fill=\"{4}\"/></g>\n",
                   x + 10, y + 60, kBoxW - 20, (kBoxW - 20) * util, bar_color);
  }
  out += "</svg>\n";
  return out;
}

}  // namespace sluice::report::internal
