#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string_view>

#include <nlohmann/json.hpp>

#include "sluice/core/time.h"
#include "sluice/expr/expr.h"
#include "sluice/io/format.h"
#include "sluice/io/geojson.h"
#include "sluice/io/geometry.h"
#include "sluice/transforms/transforms_internal.h"

namespace sluice::transforms_internal {

namespace {

bool CanCast(TypeId from, TypeId to) {
  if (from == to) return true;
  const auto scalar = [](TypeId t) {
    return t == TypeId::kBool || t == TypeId::kInt64 || t == TypeId::kFloat64 ||
           t == TypeId::kString || t == TypeId::kTimestamp;
  };
  if (scalar(from) && scalar(to)) {
    // A bool is not a point in time, nor the other way round.
    return !((from == TypeId::kBool && to == TypeId::kTimestamp) ||
             (from == TypeId::kTimestamp && to == TypeId::kBool));
  }
  switch (from) {
    case TypeId::kString:
      return to == TypeId::kBytes || to == TypeId::kJson || to == TypeId::kGeometry;
    case TypeId::kBytes:
      return to == TypeId::kString || to == TypeId::kGeometry;
    case TypeId::kJson:
      return to == TypeId::kString || to == TypeId::kGeometry;
    case TypeId::kGeometry:
      return to == TypeId::kBytes || to == TypeId::kString;
    default:
      return false;
  }
}

// A cleared string for one conversion, reused by the thread.
std::string& Scratch() {
  thread_local std::string scratch;
  scratch.clear();
  return scratch;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool ParseInt(std::string_view s, int64_t* out) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseFloat(std::string_view s, double* out) {
  s = Trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return !s.empty() && ec == std::errc() && ptr == s.data() + s.size();
}

bool ParseBool(std::string_view s, bool* out) {
  s = Trim(s);
  if (s.size() > 5) return false;
  char lower[6] = {};
  for (size_t i = 0; i < s.size(); ++i) {
    lower[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  }
  const std::string_view l(lower, s.size());
  if (l == "true" || l == "t" || l == "yes" || l == "y" || l == "1") {
    *out = true;
    return true;
  }
  if (l == "false" || l == "f" || l == "no" || l == "n" || l == "0") {
    *out = false;
    return true;
  }
  return false;
}

// float64 -> int64 truncates toward zero; NaN, infinities and values out of range fail.
bool FloatToInt(double v, int64_t* out) {
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) return false;
  *out = static_cast<int64_t>(v);
  return true;
}

void AppendFormatted(ColumnBuilder* out, int64_t v) {
  char buf[24];
  auto r = fmt::format_to_n(buf, sizeof(buf), "{}", v);
  out->AppendString(std::string_view(buf, r.size));
}

void AppendFormatted(ColumnBuilder* out, double v) {
  char buf[40];
  auto r = fmt::format_to_n(buf, sizeof(buf), "{}", v);
  out->AppendString(std::string_view(buf, std::min(r.size, sizeof(buf))));
}

std::string ShowValue(const Column& c, int64_t row) {
  switch (c.type()) {
    case TypeId::kBool:
      return c.GetBool(row) ? "true" : "false";
    case TypeId::kInt64:
      return fmt::format("{}", c.GetInt64(row));
    case TypeId::kFloat64:
      return fmt::format("{}", c.GetFloat64(row));
    case TypeId::kTimestamp:
      return FormatTimestamp(c.GetInt64(row));
    default: {
      std::string_view v = c.GetView(row);
      if (v.size() > 64) return fmt::format("'{}...'", v.substr(0, 64));
      return fmt::format("'{}'", v);
    }
  }
}

/// What a value that cannot be converted does: fail the batch; become null (counted in
/// `failures`); or, with `bad_rows`, mark its row (row, why) for the dead-letter output.
struct CastErrors {
  bool null_on_error = false;
  int64_t* failures = nullptr;
  std::vector<std::pair<int64_t, std::string>>* bad_rows = nullptr;
};

/// Convert one column; `convert(row, out)` appends the converted value and returns true, or
/// returns false when the value cannot be converted.
template <typename Convert>
Result<Column> Run(const Column& in, TypeId to, const CastErrors& errors, const std::string& name,
                   Convert convert) {
  ColumnBuilder out(to, in.length());
  for (int64_t i = 0; i < in.length(); ++i) {
    if (in.IsNull(i)) {
      out.AppendNull();
    } else if (!convert(i, &out)) {
      if (errors.bad_rows != nullptr) {
        errors.bad_rows->emplace_back(
            i, fmt::format("column '{}': cannot convert {} {} to {}", name, TypeName(in.type()),
                           ShowValue(in, i), TypeName(to)));
      } else if (!errors.null_on_error) {
        return Status::Invalid(
            "column '{}' row {}: cannot convert {} {} to {} (set on_error: null to turn such "
            "values into nulls, or dead_letter to route their rows)",
            name, i, TypeName(in.type()), ShowValue(in, i), TypeName(to));
      } else {
        ++*errors.failures;
      }
      out.AppendNull();
    }
  }
  return out.Finish();
}

Result<Column> CastColumn(const Column& in, TypeId to, const CastErrors& errors,
                          const std::string& name) {
  const TypeId from = in.type();
  auto run = [&](auto convert) { return Run(in, to, errors, name, convert); };
  // The same bytes under another type (JSON text as a string, a string or EWKB as bytes, bytes
  // as a string): share the buffers. A copy made this node a serial stage as costly as the data
  // is large (bench/diamond's cast of 1 M JSON payloads to strings was 16 % of its work).
  auto same_bytes = [&]() -> Result<Column> {
    return Column(to, in.length(), in.null_count(), in.validity_buffer(), in.values_buffer(),
                  in.data_buffer(), in.offset());
  };
  switch (from) {
    case TypeId::kBool:
      return run([&](int64_t i, ColumnBuilder* o) {
        const bool v = in.GetBool(i);
        if (to == TypeId::kInt64)
          o->AppendInt64(v ? 1 : 0);
        else if (to == TypeId::kFloat64)
          o->AppendFloat64(v ? 1.0 : 0.0);
        else
          o->AppendString(v ? "true" : "false");
        return true;
      });
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return run([&](int64_t i, ColumnBuilder* o) {
        const int64_t v = in.GetInt64(i);
        switch (to) {
          case TypeId::kBool:
            o->AppendBool(v != 0);
            break;
          case TypeId::kFloat64:
            o->AppendFloat64(static_cast<double>(v));
            break;
          case TypeId::kString:
            if (from == TypeId::kTimestamp) {
              char buf[40];
              o->AppendString(std::string_view(buf, static_cast<size_t>(FormatTimestamp(v, buf))));
            } else {
              AppendFormatted(o, v);
            }
            break;
          default:
            o->AppendInt64(v);
            break;  // int64 <-> timestamp share µs
        }
        return true;
      });
    case TypeId::kFloat64:
      return run([&](int64_t i, ColumnBuilder* o) {
        const double v = in.GetFloat64(i);
        int64_t n;
        switch (to) {
          case TypeId::kBool:
            if (std::isnan(v)) return false;
            o->AppendBool(v != 0);
            return true;
          case TypeId::kString:
            AppendFormatted(o, v);
            return true;
          default:  // int64, timestamp (µs)
            if (!FloatToInt(v, &n)) return false;
            o->AppendInt64(n);
            return true;
        }
      });
    case TypeId::kString:
      switch (to) {
        case TypeId::kBool:
          return run([&](int64_t i, ColumnBuilder* o) {
            bool b;
            if (!ParseBool(in.GetView(i), &b)) return false;
            o->AppendBool(b);
            return true;
          });
        case TypeId::kInt64:
          return run([&](int64_t i, ColumnBuilder* o) {
            int64_t n;
            if (!ParseInt(in.GetView(i), &n)) return false;
            o->AppendInt64(n);
            return true;
          });
        case TypeId::kFloat64:
          return run([&](int64_t i, ColumnBuilder* o) {
            double d;
            if (!ParseFloat(in.GetView(i), &d)) return false;
            o->AppendFloat64(d);
            return true;
          });
        case TypeId::kTimestamp:
          return run([&](int64_t i, ColumnBuilder* o) {
            auto ts = ParseTimestamp(Trim(in.GetView(i)));
            if (!ts.ok()) return false;
            o->AppendTimestamp(*ts);
            return true;
          });
        case TypeId::kJson:
          return run([&](int64_t i, ColumnBuilder* o) {
            const std::string_view v = in.GetView(i);
            if (!nlohmann::json::accept(v)) return false;
            o->AppendString(v);
            return true;
          });
        case TypeId::kGeometry:  // WKT, EWKT or hex EWKB
          return run([&](int64_t i, ColumnBuilder* o) {
            std::string& ewkb = Scratch();
            if (!io::geom::TextToEwkb(Trim(in.GetView(i)), 0, &ewkb).ok()) return false;
            o->AppendString(ewkb);
            return true;
          });
        default:
          return same_bytes();
      }
    case TypeId::kBytes:
      if (to != TypeId::kGeometry) return same_bytes();
      // A GeoPackage geometry blob, or (E)WKB: checked, so that nothing malformed goes on.
      return run([&](int64_t i, ColumnBuilder* o) {
        const std::string_view v = in.GetView(i);
        if (io::geom::IsGeoPackageBlob(v)) {
          std::string& ewkb = Scratch();
          if (!io::geom::GeoPackageToEwkb(v, &ewkb).ok()) return false;
          o->AppendString(ewkb);
          return true;
        }
        if (!io::geom::InspectEwkb(v).ok()) return false;
        o->AppendString(v);
        return true;
      });
    case TypeId::kGeometry:
      if (to != TypeId::kString) return same_bytes();
      return run([&](int64_t i, ColumnBuilder* o) {  // EWKT
        std::string& wkt = Scratch();
        if (!io::geom::AppendWkt(in.GetView(i), /*with_srid=*/true, &wkt).ok()) return false;
        o->AppendString(wkt);
        return true;
      });
    case TypeId::kJson:
      if (to != TypeId::kGeometry) return same_bytes();
      // A GeoJSON geometry object (WGS 84, as RFC 7946 says).
      return run([&](int64_t i, ColumnBuilder* o) {
        std::string& ewkb = Scratch();
        if (!io::GeoJsonGeometryToEwkb(in.GetView(i), io::geom::kWgs84, &ewkb).ok()) return false;
        o->AppendString(ewkb);
        return true;
      });
    default:
      return same_bytes();
  }
}

/// Convert the listed columns to other types.
class CastTransform final : public Transform {
 public:
  enum class OnError : uint8_t { kFail, kNull, kDeadLetter };
  CastTransform(NodeOptions options, std::vector<std::pair<std::string, TypeId>> casts,
                OnError on_error)
      : options_(std::move(options)), casts_(std::move(casts)), on_error_(on_error) {}

  Status Open(NodeContext* ctx) override {
    ctx_ = ctx;
    return Status::OK();
  }

  Result<SchemaPtr> Bind(const std::vector<SchemaPtr>& inputs) override {
    if (inputs.empty() || inputs[0] == nullptr) return SchemaPtr{};
    SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(inputs[0]));
    return plan->output;
  }

  Status Process(const BatchPtr& batch, int input, Emitter* out) override {
    SLUICE_ASSIGN_OR_RETURN(const Plan* plan, PlanFor(batch->schema()));
    std::vector<Column> columns = batch->columns();
    int64_t failures = 0;
    bad_rows_.clear();
    CastErrors errors{on_error_ == OnError::kNull, &failures,
                      on_error_ == OnError::kDeadLetter ? &bad_rows_ : nullptr};
    for (const auto& [index, to] : plan->casts) {
      Column& c = columns[static_cast<size_t>(index)];
      auto converted = CastColumn(c, to, errors, batch->schema()->field(index).name);
      if (!converted.ok()) return converted.status().WithContext("node '{}'", options_.id());
      c = std::move(*converted);
    }
    if (failures > 0 && ctx_ != nullptr) ctx_->stats()->AddCounter("cast_nulls", failures);
    const int64_t first_row = rows_seen_;
    rows_seen_ += batch->num_rows();
    BatchPtr cast = Batch::MakeUnchecked(plan->output, std::move(columns), batch->num_rows());
    if (bad_rows_.empty()) return out->Emit(std::move(cast));
    SLUICE_RETURN_NOT_OK(DeadLetterBadRows(*batch, first_row));
    return out->Emit(cast->Take(RowsWithout(batch->num_rows())));
  }

  // Dead letters number rows across the instance's batches ("row N").
  bool BatchLocal() const override { return on_error_ != OnError::kDeadLetter; }

  std::string LossyBecause() const override {
    return on_error_ == OnError::kNull
               ? "turns values it cannot convert into nulls (on_error: null)"
               : "";
  }

 private:
  struct Plan {
    std::vector<std::pair<int, TypeId>> casts;  // columns whose type changes
    SchemaPtr output;
  };

  Result<const Plan*> PlanFor(const SchemaPtr& input) {
    return cache_.Get(input, [&]() -> Result<Plan> {
      Plan plan;
      std::vector<Field> fields = input->fields();
      for (const auto& [name, to] : casts_) {
        const int i = input->FieldIndex(name);
        if (i < 0) return options_.ErrorAt("columns", UnknownFieldMessage(name, *input));
        Field& f = fields[static_cast<size_t>(i)];
        if (!CanCast(f.type, to)) {
          return options_.ErrorAt("columns", fmt::format("cannot cast {} column '{}' to {}",
                                                         TypeName(f.type), name, TypeName(to)));
        }
        if (f.type == to) continue;
        plan.casts.emplace_back(i, to);
        f.type = to;
        if (on_error_ == OnError::kNull) f.nullable = true;
      }
      plan.output = MakeSchema(std::move(fields));
      return plan;
    });
  }

  // Send each row of bad_rows_ (first error only), as the input had it, to the dead-letter
  // output; `first_row` is the batch's first row number in this instance's input.
  Status DeadLetterBadRows(const Batch& input, int64_t first_row) {
    std::stable_sort(bad_rows_.begin(), bad_rows_.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    bad_rows_.erase(std::unique(bad_rows_.begin(), bad_rows_.end(),
                                [](const auto& a, const auto& b) { return a.first == b.first; }),
                    bad_rows_.end());
    std::vector<int32_t> rows;
    for (const auto& bad : bad_rows_) rows.push_back(static_cast<int32_t>(bad.first));
    SLUICE_ASSIGN_OR_RETURN(auto encoder, io::MakeEncoder(io::Format::kJsonl, input.schema()));
    std::string text;
    std::vector<size_t> ends;
    encoder->Encode(*input.Take(rows), &text, &ends);
    size_t begin = 0;
    for (size_t k = 0; k < bad_rows_.size(); ++k) {
      const std::string_view line(text.data() + begin, ends[k] - begin - 1);  // without '\n'
      ctx_->DeadLetter(fmt::format("row {}", first_row + bad_rows_[k].first), bad_rows_[k].second,
                       line);
      begin = ends[k];
    }
    return Status::OK();
  }

  // The rows of a batch of `num_rows` rows that are not in bad_rows_ (sorted, unique).
  std::vector<int32_t> RowsWithout(int64_t num_rows) const {
    std::vector<int32_t> keep;
    keep.reserve(static_cast<size_t>(num_rows) - bad_rows_.size());
    size_t next_bad = 0;
    for (int64_t r = 0; r < num_rows; ++r) {
      if (next_bad < bad_rows_.size() && bad_rows_[next_bad].first == r) {
        ++next_bad;
      } else {
        keep.push_back(static_cast<int32_t>(r));
      }
    }
    return keep;
  }

  NodeOptions options_;
  std::vector<std::pair<std::string, TypeId>> casts_;
  OnError on_error_;
  NodeContext* ctx_ = nullptr;
  int64_t rows_seen_ = 0;  // rows of this instance's input before the current batch
  std::vector<std::pair<int64_t, std::string>> bad_rows_;  // (row, why) of the current batch
  SchemaCache<Plan> cache_;
};

}  // namespace

Result<std::unique_ptr<Transform>> MakeCast(const NodeOptions& options) {
  SLUICE_ASSIGN_OR_RETURN(auto pairs, ReadPairs(options, "columns"));
  if (pairs.empty()) return options.ErrorAt("columns", "give at least one column: type pair");
  std::vector<std::pair<std::string, TypeId>> casts;
  for (const auto& [name, type_name] : pairs) {
    auto type = ParseTypeName(type_name);
    if (!type.ok()) {
      return options.ErrorAt("columns",
                             fmt::format("column '{}': {}", name, type.status().message()));
    }
    casts.emplace_back(name, *type);
  }
  const std::string on_error = options.Has("on_error") ? options.GetString("on_error") : "fail";
  using OnError = CastTransform::OnError;
  OnError mode = OnError::kFail;
  if (on_error == "null") {
    mode = OnError::kNull;
  } else if (on_error == "dead_letter") {
    mode = OnError::kDeadLetter;
  } else if (on_error != "fail") {
    return options.ErrorAt("on_error",
                           fmt::format("must be fail, null or dead_letter, got '{}'", on_error));
  }
  return std::unique_ptr<Transform>(
      std::make_unique<CastTransform>(options, std::move(casts), mode));
}

}  // namespace sluice::transforms_internal
