#include "sluice/connectors/generate/generate.h"

#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "sluice/core/decimal.h"
#include "sluice/core/time.h"
#include "sluice/core/units.h"
#include "sluice/engine/message.h"

namespace sluice {

namespace {

/// SplitMix64: tiny, fast and good enough for synthetic data; reseeded per batch so that a
/// batch's content depends only on (seed, batch number), whatever the batch size history.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  /// Uniform in [0, n).
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<__uint128_t>(Next()) * n) >> 64);
  }
  double Unit() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t state_;
};

/// Draw ranks 0..n-1 with P(k) proportional to (k + 1)^-s (Zipf's law) in O(1) a draw:
/// Vose's alias table, built once. Draw k uniformly; keep it with its column's probability,
/// else take the column's alias. Deterministic for a given Rng.
class ZipfTable {
 public:
  ZipfTable(int64_t n, double s) : columns_(static_cast<size_t>(n)) {
    std::vector<double> scaled(columns_.size());
    double total = 0;
    for (size_t k = 0; k < scaled.size(); ++k) {
      scaled[k] = std::pow(static_cast<double>(k + 1), -s);
      total += scaled[k];
    }
    for (double& p : scaled) p *= static_cast<double>(n) / total;  // mean 1
    std::vector<uint32_t> small, large;
    for (uint32_t k = 0; k < scaled.size(); ++k) (scaled[k] < 1.0 ? small : large).push_back(k);
    while (!small.empty() && !large.empty()) {
      const uint32_t under = small.back();
      small.pop_back();
      const uint32_t over = large.back();
      columns_[under] = {KeepThreshold(scaled[under]), over};
      scaled[over] -= 1.0 - scaled[under];
      if (scaled[over] < 1.0) {
        large.pop_back();
        small.push_back(over);
      }
    }
    // Whatever is left holds 1 up to rounding: the column always keeps its own rank.
    for (uint32_t k : large) columns_[k] = {0, k};
    for (uint32_t k : small) columns_[k] = {0, k};
  }

  int64_t Draw(Rng* rng) const {
    const uint64_t k = rng->Below(columns_.size());
    const Column& c = columns_[k];
    return (rng->Next() >> 32) < c.keep ? static_cast<int64_t>(k) : c.alias;
  }

 private:
  struct Column {
    uint32_t keep;   // keep the drawn rank when a 32-bit uniform is below this
    uint32_t alias;  // else this rank
  };
  static uint32_t KeepThreshold(double p) {
    if (p <= 0) return 0;
    return p >= 1 ? UINT32_MAX : static_cast<uint32_t>(p * 0x1.0p32);
  }
  std::vector<Column> columns_;
};

enum class Shape : uint8_t { kAudit, kNarrow, kMeter, kCustom };

constexpr std::string_view kActions[] = {"login", "logout", "create", "update", "delete",
                                         "read",  "export", "grant",  "revoke", "password_reset"};
constexpr std::string_view kPaths[] = {"/api/v1/orders",  "/api/v1/users",   "/api/v1/invoices",
                                       "/api/v1/reports", "/admin/settings", "/api/v1/sessions"};
constexpr std::string_view kAgents[] = {
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 "
    "Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Safari/605.1.15",
    "curl/8.5.0", "python-requests/2.32.3", "okhttp/4.12.0"};
/// Copy `text` to `p`; return the end.
char* Put(char* p, std::string_view text) {
  std::memcpy(p, text.data(), text.size());
  return p + text.size();
}

/// Write the 8 nibbles of `v` as lowercase hex digits, lowest nibble first; return the end.
/// All eight at once in a 64-bit word (byte k gets nibble k, then '0'-'9' or 'a'-'f').
char* PutHex8(char* p, uint32_t v) {
  uint64_t x = v;
  x = (x | (x << 16)) & 0x0000FFFF0000FFFFULL;
  x = (x | (x << 8)) & 0x00FF00FF00FF00FFULL;
  x = (x | (x << 4)) & 0x0F0F0F0F0F0F0F0FULL;
  const uint64_t letters = ((x + 0x0606060606060606ULL) >> 4) & 0x0101010101010101ULL;
  x += 0x3030303030303030ULL + letters * ('a' - '0' - 10);
  static_assert(std::endian::native == std::endian::little, "byte k of x must be nibble k");
  std::memcpy(p, &x, 8);
  return p + 8;
}

const char kLorem[] =
    "Lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua Ut enim ad minim veniam quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat Duis aute irure dolor in reprehenderit in "
    "voluptate velit esse cillum dolore eu fugiat nulla pariatur";

class GenerateSource final : public Source {
 public:
  static Result<std::unique_ptr<Source>> Make(const NodeOptions& o) {
    auto s = std::unique_ptr<GenerateSource>(new GenerateSource());
    s->rows_ = o.GetInt("rows");
    s->batch_rows_ = o.GetInt("batch_rows");
    s->seed_ = static_cast<uint64_t>(o.GetInt("seed"));
    s->rate_ = o.GetFloat("rate");
    s->start_id_ = o.GetInt("start_id");
    s->span_us_ = o.GetDurationMicros("span");
    if (s->batch_rows_ < 1) return o.ErrorAt("batch_rows", "must be at least 1");
    if (s->rows_ < 0) return o.ErrorAt("rows", "must be >= 0");
    if (s->rate_ < 0) return o.ErrorAt("rate", "must be >= 0 (0 means as fast as possible)");
    const std::string end = o.GetString("end");
    if (end.empty() || end == "now") {
      s->end_us_ = NowMicros();
    } else {
      auto t = ParseTimestamp(end);
      if (!t.ok()) return o.ErrorAt("end", t.status().message());
      s->end_us_ = *t;
    }
    const std::string shape = o.GetString("shape");
    std::vector<Field> fields;
    if (shape == "audit") {
      s->shape_ = Shape::kAudit;
      fields = {{"id", TypeId::kInt64, false},
                {"created_at", TypeId::kTimestamp, false},
                {"actor", TypeId::kString, false},
                {"action", TypeId::kString, false},
                {"payload", TypeId::kJson, false}};
    } else if (shape == "narrow") {
      s->shape_ = Shape::kNarrow;
      fields = {{"id", TypeId::kInt64, false}, {"value", TypeId::kInt64, false}};
    } else if (shape == "meter") {
      s->shape_ = Shape::kMeter;
      s->meters_ = o.GetInt("meters");
      s->interval_us_ = o.GetDurationMicros("interval");
      if (s->meters_ < 1 || s->meters_ > 999'999) {
        return o.ErrorAt("meters", "must be between 1 and 999999");
      }
      if (s->interval_us_ < 1) return o.ErrorAt("interval", "must be positive");
      s->anomalies_ = o.GetFloat("anomalies");
      s->late_ = o.GetFloat("late");
      s->lateness_us_ = o.GetDurationMicros("lateness");
      if (!(s->anomalies_ >= 0 && s->anomalies_ <= 1)) {
        return o.ErrorAt("anomalies", "must be a share between 0 and 1");
      }
      if (!(s->late_ >= 0 && s->late_ <= 1)) {
        return o.ErrorAt("late", "must be a share between 0 and 1");
      }
      if (s->lateness_us_ < 0) return o.ErrorAt("lateness", "must not be negative");
      const double zipf = o.GetFloat("meter_zipf");
      if (!(zipf >= 0 && std::isfinite(zipf))) {
        return o.ErrorAt("meter_zipf", "must be 0 (the meters take turns) or a positive exponent");
      }
      if (zipf > 0) s->zipf_.emplace(s->meters_, zipf);
      if (s->late_ > 0 && s->lateness_us_ == 0) {
        return o.ErrorAt("lateness", "must be positive when `late` is above 0");
      }
      fields = {{"meter_id", TypeId::kString, false}, {"ts", TypeId::kTimestamp, false},
                {"kwh", TypeId::kFloat64, false},     {"voltage", TypeId::kFloat64, false},
                {"current", TypeId::kFloat64, false}, {"power_factor", TypeId::kFloat64, false}};
    } else {
      s->shape_ = Shape::kCustom;
      const auto& cols = o.GetJson("columns");
      if (!cols.is_object() || cols.empty()) {
        return o.ErrorAt("columns",
                         "shape 'custom' needs `columns:` mapping names to types, e.g. "
                         "{id: int64, name: string, at: timestamp}");
      }
      for (auto it = cols.begin(); it != cols.end(); ++it) {
        if (!it.value().is_string()) return o.ErrorAt("columns", "each column maps to a type name");
        auto t = ParseTypeName(it.value().get<std::string>());
        if (!t.ok())
          return o.ErrorAt("columns", "column '" + it.key() + "': " + t.status().message());
        fields.push_back({it.key(), *t, true});
      }
      s->null_ratio_ = o.GetFloat("null_ratio");
    }
    s->schema_ = MakeSchema(std::move(fields));
    return std::unique_ptr<Source>(std::move(s));
  }

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    started_ = std::chrono::steady_clock::now();
    return Status::OK();
  }

  Result<BatchPtr> Next(uint64_t seq) override {
    // Batch `seq` holds the rows from seq * batch_rows on (every batch is full but the last) and
    // is seeded from (seed, seq): it depends on its number alone, so batches may be made on
    // several threads at once (ConcurrentNext) and a seed gives the same rows either way.
    if (seq >= static_cast<uint64_t>(rows_ / batch_rows_ + (rows_ % batch_rows_ != 0))) {
      return BatchPtr{};
    }
    const int64_t first = static_cast<int64_t>(seq) * batch_rows_;
    const int64_t n = std::min(batch_rows_, rows_ - first);
    if (rate_ > 0) Pace(first + n);
    const uint64_t batch_seed = seed_ * 0x100000001b3ULL + seq;
    Rng rng(batch_seed);
    BatchPtr out;
    switch (shape_) {
      case Shape::kAudit:
        out = MakeAudit(n, first, &rng);
        break;
      case Shape::kNarrow:
        out = MakeNarrow(n, first);
        break;
      case Shape::kMeter:
        out = MakeMeter(n, first, &rng, batch_seed);
        produced_ = first + n;  // for Watermark: the meter shape is read on one thread
        break;
      case Shape::kCustom:
        out = MakeCustom(n, first, &rng);
        break;
    }
    return out;
  }

  // Not the meter shape, whose watermark follows the rows made so far, nor `rate`, which paces
  // one reader.
  bool ConcurrentNext() const override { return shape_ != Shape::kMeter && rate_ == 0; }

  SchemaPtr schema() const override { return schema_; }
  int64_t EstimatedRows() const override { return rows_; }

  // Every row still to come is at a round no earlier than the last one emitted, and a row's ts
  // is at most `lateness` before its round's time: so none is older than this.
  bool HasWatermark() const override { return shape_ == Shape::kMeter; }
  int64_t Watermark() const override {
    if (shape_ != Shape::kMeter || produced_ == 0) return kNoWatermark;
    return end_us_ + (produced_ - 1) / meters_ * interval_us_ - lateness_us_;
  }

 private:
  void Pace(int64_t target_rows) {
    // Sleep until `target_rows` are due at `rate_` rows/s, in short steps so cancel is prompt.
    const auto due = started_ + std::chrono::microseconds(static_cast<int64_t>(
                                    static_cast<double>(target_rows) / rate_ * 1e6));
    while (!ctx_->cancelled() && std::chrono::steady_clock::now() < due) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
          due - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
    }
  }

  BatchPtr MakeNarrow(int64_t n, int64_t first) {
    std::vector<int64_t> ids(static_cast<size_t>(n)), values(static_cast<size_t>(n));
    const int64_t base = start_id_ + first;
    for (int64_t i = 0; i < n; ++i) {
      ids[static_cast<size_t>(i)] = base + i;
      // A cheap deterministic mix so filters have something to select on.
      values[static_cast<size_t>(i)] =
          static_cast<int64_t>((static_cast<uint64_t>(base + i) * 0x9e3779b97f4a7c15ULL) >> 44);
    }
    std::vector<Column> cols;
    cols.emplace_back(TypeId::kInt64, n, 0, nullptr, Buffer::FromVector(std::move(ids)));
    cols.emplace_back(TypeId::kInt64, n, 0, nullptr, Buffer::FromVector(std::move(values)));
    return Batch::MakeUnchecked(schema_, std::move(cols), n);
  }

  BatchPtr MakeAudit(int64_t n, int64_t first, Rng* rng) {
    ColumnBuilder id(TypeId::kInt64, n), at(TypeId::kTimestamp, n), actor(TypeId::kString, n),
        action(TypeId::kString, n), payload(TypeId::kJson, n);
    // Room for the strings ahead, so that the column's bytes are not copied again each time
    // they double. Payloads are 342-563 bytes, 447 on average: a batch's sum stays within 3 %
    // of n * 447, and a buffer that doubled past M_MMAP_THRESHOLD (4 MiB: 8192 rows' payloads
    // reserved too short) was mapped and unmapped afresh for every batch.
    actor.ReserveBytes(n * 10);
    action.ReserveBytes(n * 8);
    // A payload is written in place (BeginString), at most 563 bytes.
    constexpr size_t kMaxPayload = 1024;
    payload.ReserveBytes(n * 460 + kMaxPayload);  // the last row's room too
    // Rows are written a piece at a time (memcpy and WriteDecimal): this source is the serial
    // stage of bench/diamond, and fmt's formatting (with FMT_COMPILE) and strlen of the
    // constants were most of its time.
    char text[32];  // an actor
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row_id = start_id_ + first + i;
      id.AppendInt64(row_id);
      at.AppendTimestamp(end_us_ -
                         static_cast<int64_t>(rng->Below(static_cast<uint64_t>(span_us_) + 1)));
      char* p = Put(text, "user-");
      p = WriteDecimal(p, rng->Below(5000));
      actor.AppendString(std::string_view(text, static_cast<size_t>(p - text)));
      action.AppendString(kActions[rng->Below(std::size(kActions))]);
      char* const row = payload.BeginString(kMaxPayload);
      p = Put(row, R"({"request_id":")");
      // 32 random hex digits: the nibbles of two draws, not a draw per digit.
      for (int half = 0; half < 2; ++half) {
        const uint64_t bits = rng->Next();
        p = PutHex8(p, static_cast<uint32_t>(bits));
        p = PutHex8(p, static_cast<uint32_t>(bits >> 32));
      }
      const uint64_t ip = rng->Next();
      const size_t lorem_len = 150 + rng->Below(100);
      p = Put(p, R"(","ip":"10.)");
      p = WriteDecimal(p, ip & 255);
      *p++ = '.';
      p = WriteDecimal(p, (ip >> 8) & 255);
      *p++ = '.';
      p = WriteDecimal(p, (ip >> 16) & 255);
      p = Put(p, R"(","method":")");
      p = Put(p, (ip >> 24) % 3 == 0 ? std::string_view("POST") : std::string_view("GET"));
      p = Put(p, R"(","path":")");
      p = Put(p, kPaths[rng->Below(std::size(kPaths))]);
      *p++ = '/';
      p = WriteDecimal(p, rng->Below(100000));
      p = Put(p, R"(","status":)");
      p = Put(p, rng->Below(10) == 0 ? std::string_view("500") : std::string_view("200"));
      p = Put(p, R"(,"latency_ms":)");
      p = WriteDecimal(p, rng->Below(2000));
      p = Put(p, R"(,"user_agent":")");
      p = Put(p, kAgents[rng->Below(std::size(kAgents))]);
      p = Put(p, R"(","tenant":"tenant-)");
      p = WriteDecimal(p, rng->Below(50));
      p = Put(p, R"(","details":")");
      p = Put(p, std::string_view(kLorem, lorem_len));
      p = Put(p, R"("})");
      payload.EndString(static_cast<size_t>(p - row));
    }
    std::vector<Column> cols;
    cols.push_back(id.Finish());
    cols.push_back(at.Finish());
    cols.push_back(actor.Finish());
    cols.push_back(action.Finish());
    cols.push_back(payload.Finish());
    return Batch::MakeUnchecked(schema_, std::move(cols), n);
  }

  // Row r is meter (r % meters) + 1 at round r / meters: every meter reports once per
  // `interval`, rounds starting at `end`. With `meter_zipf`, row r's meter is drawn instead, from
  // a second generator, so that the rounds and the readings' values stay those of the same seed
  // without it. Voltage 230 V ± 4 %, current 0-40 A, power factor
  // 0.80-1.00, and kwh the energy of that power over the interval. The draws for anomalies and
  // late rows are made only when those options are on, so that with both at 0 a seed gives the
  // same rows as before they existed.
  /// "m-000042" for meter 42 (six digits, zero-padded; meters <= 999999): written by hand, as
  /// fmt's "m-{:06}" was a third of a lookup bench's time.
  static std::string_view MeterName(int64_t meter, char (&out)[16]) {
    out[0] = 'm';
    out[1] = '-';
    for (int d = 7; d >= 2; --d) {
      out[d] = static_cast<char>('0' + meter % 10);
      meter /= 10;
    }
    return std::string_view(out, 8);
  }

  BatchPtr MakeMeter(int64_t n, int64_t first, Rng* rng, uint64_t batch_seed) {
    ColumnBuilder id(TypeId::kString, n), ts(TypeId::kTimestamp, n), kwh(TypeId::kFloat64, n),
        voltage(TypeId::kFloat64, n), current(TypeId::kFloat64, n), pf(TypeId::kFloat64, n);
    char name[16];
    const double hours = static_cast<double>(interval_us_) / 3.6e9;
    Rng meter_rng(Rng(~batch_seed).Next());
    for (int64_t i = 0; i < n; ++i) {
      const int64_t row = first + i;
      const int64_t meter = zipf_ ? zipf_->Draw(&meter_rng) : row % meters_;
      const int64_t round = row / meters_;
      id.AppendString(MeterName(meter + 1, name));
      const double v = 230.0 * (0.96 + 0.08 * rng->Unit());
      const double a = 40.0 * rng->Unit();
      const double f = 0.8 + 0.2 * rng->Unit();
      double e = v * a * f * hours / 1000.0;
      if (anomalies_ > 0 && rng->Unit() < anomalies_) {
        const double factor = 8.0 + 4.0 * rng->Unit();
        voltage.AppendFloat64(280.0 + 40.0 * rng->Unit());
        current.AppendFloat64(a * factor);
        e *= factor;
      } else {
        voltage.AppendFloat64(v);
        current.AppendFloat64(a);
      }
      pf.AppendFloat64(f);
      kwh.AppendFloat64(e);
      int64_t t = end_us_ + round * interval_us_;
      if (late_ > 0 && rng->Unit() < late_) {
        t -= 1 + static_cast<int64_t>(rng->Below(static_cast<uint64_t>(lateness_us_)));
      }
      ts.AppendTimestamp(t);
    }
    std::vector<Column> cols;
    cols.push_back(id.Finish());
    cols.push_back(ts.Finish());
    cols.push_back(kwh.Finish());
    cols.push_back(voltage.Finish());
    cols.push_back(current.Finish());
    cols.push_back(pf.Finish());
    return Batch::MakeUnchecked(schema_, std::move(cols), n);
  }

  BatchPtr MakeCustom(int64_t n, int64_t first, Rng* rng) {
    std::vector<Column> cols;
    for (const auto& f : schema_->fields()) {
      ColumnBuilder b(f.type, n);
      for (int64_t i = 0; i < n; ++i) {
        if (null_ratio_ > 0 && rng->Unit() < null_ratio_) {
          b.AppendNull();
          continue;
        }
        const int64_t row = start_id_ + first + i;
        switch (f.type) {
          case TypeId::kBool:
            b.AppendBool(rng->Below(2) == 1);
            break;
          case TypeId::kInt64:
            b.AppendInt64(row);
            break;
          case TypeId::kFloat64:
            b.AppendFloat64(rng->Unit() * 1000.0);
            break;
          case TypeId::kTimestamp:
            b.AppendTimestamp(
                end_us_ - static_cast<int64_t>(rng->Below(static_cast<uint64_t>(span_us_) + 1)));
            break;
          case TypeId::kString: {
            char s[12];
            for (char& c : s) c = static_cast<char>('a' + rng->Below(26));
            b.AppendString(std::string_view(s, 4 + rng->Below(8)));
            break;
          }
          case TypeId::kBytes:
          case TypeId::kGeometry: {
            uint64_t v = rng->Next();
            b.AppendString(std::string_view(reinterpret_cast<const char*>(&v), sizeof(v)));
            break;
          }
          case TypeId::kJson:
            b.AppendString(fmt::format(R"({{"n":{}}})", row));
            break;
        }
      }
      cols.push_back(b.Finish());
    }
    return Batch::MakeUnchecked(schema_, std::move(cols), n);
  }

  NodeContext* ctx_ = nullptr;
  SchemaPtr schema_;
  Shape shape_ = Shape::kAudit;
  int64_t rows_ = 0;
  int64_t batch_rows_ = 8192;
  uint64_t seed_ = 42;
  double rate_ = 0;
  double null_ratio_ = 0;
  int64_t start_id_ = 1;
  int64_t end_us_ = 0;
  int64_t span_us_ = 0;
  int64_t meters_ = 1000;
  int64_t interval_us_ = 1'000'000;
  double anomalies_ = 0;
  double late_ = 0;
  int64_t lateness_us_ = 0;
  std::optional<ZipfTable> zipf_;  // shape meter with meter_zipf > 0
  int64_t produced_ = 0;           // shape meter: rows made so far (its watermark)
  std::chrono::steady_clock::time_point started_;
};

}  // namespace

void RegisterGenerateNodes(NodeRegistry* registry) {
  registry->AddSource(
      "generate",
      "Produce seeded synthetic rows (the audit-log shape, narrow rows, smart-meter readings, or "
      "typed columns).",
      {
          {"shape",
           OptionType::kEnum,
           "audit",
           "audit: id, created_at, actor, action, ~500-byte JSON payload; narrow: id, value "
           "(int64); meter: meter_id, ts, kwh, voltage, current, power_factor (smart-meter "
           "readings); custom: the types in `columns`.",
           false,
           {"audit", "narrow", "meter", "custom"}},
          {"rows", OptionType::kInt, "1000000", "Rows to produce in total.", false, {}},
          {"batch_rows", OptionType::kInt, "8192", "Rows per batch.", false, {}},
          {"seed", OptionType::kInt, "42", "Seed: the same seed gives the same rows.", false, {}},
          {"rate",
           OptionType::kFloat,
           "0",
           "Rows per second to pace at; 0 = as fast as possible.",
           false,
           {}},
          {"start_id", OptionType::kInt, "1", "First id.", false, {}},
          {"end",
           OptionType::kString,
           "now",
           "Latest created_at (ISO-8601 or 'now'); timestamps spread over `span` before it.",
           false,
           {}},
          {"span", OptionType::kDuration, "365d", "How far back timestamps reach.", false, {}},
          {"meters",
           OptionType::kInt,
           "1000",
           "For shape meter: how many meters (m-000001 ...) report in turn.",
           false,
           {}},
          {"interval",
           OptionType::kDuration,
           "1s",
           "For shape meter: time between two readings of one meter; readings start at `end`.",
           false,
           {}},
          {"anomalies",
           OptionType::kFloat,
           "0",
           "For shape meter: share of readings that are outliers, drawn from the seed: such a "
           "reading's current and kwh are multiplied by one factor uniform in [8, 12) and its "
           "voltage is uniform in [280, 320) V (normal: 220.8-239.2 V, 0-40 A).",
           false,
           {}},
          {"late",
           OptionType::kFloat,
           "0",
           "For shape meter: share of readings delivered out of order, drawn from the seed: "
           "such a reading's ts is its round's time less a random amount in (0, `lateness`].",
           false,
           {}},
          {"lateness",
           OptionType::kDuration,
           "30s",
           "For shape meter: how far before its round's time a late reading may be. The "
           "watermark is the latest round's time emitted so far less `lateness`: no later "
           "reading is older.",
           false,
           {}},
          {"meter_zipf",
           OptionType::kFloat,
           "0",
           "For shape meter: 0 = the meters take turns; above 0, each reading's meter is drawn "
           "from the seed by Zipf's law with this exponent s: meter k (m-000001 the most "
           "frequent) with a probability proportional to 1/k^s. The times still advance one "
           "`interval` every `meters` readings.",
           false,
           {}},
          {"columns", OptionType::kMap, "", "For shape custom: column name -> type.", false, {}},
          {"null_ratio",
           OptionType::kFloat,
           "0",
           "For shape custom: fraction of nulls.",
           false,
           {}},
      },
      &GenerateSource::Make);
}

}  // namespace sluice
