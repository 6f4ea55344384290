#include "sluice/io/jsonl.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include <simdjson.h>

#include "sluice/core/column.h"
#include "sluice/core/time.h"
#include "sluice/io/text_internal.h"

namespace sluice::io {

using internal::LineError;

namespace {

// Bytes one value of a fixed-width type may take, including "null".
size_t FixedValueBound(TypeId type) {
  switch (type) {
    case TypeId::kBool:
      return 5;
    case TypeId::kInt64:
    case TypeId::kFloat64:
      return internal::kMaxNumberChars;
    case TypeId::kTimestamp:
      return 42;  // quotes + FormatTimestamp's 32-byte bound, rounded up
    default:
      return 6;  // quotes, or "null"
  }
}

// Bytes of output per byte of a var-width value, at worst.
size_t VarFactor(TypeId type) {
  switch (type) {
    case TypeId::kString:
      return 6;  // \u00XX
    case TypeId::kBytes:
    case TypeId::kGeometry:
      return 2;  // hex
    default:
      return 1;  // json, embedded as is
  }
}

}  // namespace

JsonlEncoder::JsonlEncoder(SchemaPtr schema) : schema_(std::move(schema)) {
  std::string buf;
  for (int c = 0; c < schema_->num_fields(); ++c) {
    const Field& f = schema_->field(c);
    buf.resize(f.name.size() * 6 + 4);
    char* p = buf.data();
    *p++ = c == 0 ? '{' : ',';
    p = internal::WriteJsonString(f.name, p);
    *p++ = ':';
    prefixes_.emplace_back(buf.data(), static_cast<size_t>(p - buf.data()));
    fixed_row_bound_ += prefixes_.back().size() + FixedValueBound(f.type);
  }
  fixed_row_bound_ += 3;  // "{" of an empty object, "}\n"
}

void JsonlEncoder::Encode(const Batch& batch, std::string* out, std::vector<size_t>* row_ends) {
  const int nc = batch.num_columns();
  const int64_t rows = batch.num_rows();
  // Columns whose values vary in size, to bound each row's output before writing it.
  struct VarColumn {
    const int32_t* offsets;
    size_t factor;
  };
  std::vector<VarColumn> var_columns;
  for (int c = 0; c < nc; ++c) {
    const Column& col = batch.column(c);
    if (IsVarWidth(col.type())) var_columns.push_back({col.offsets(), VarFactor(col.type())});
  }
  size_t used = out->size();
  for (int64_t r = 0; r < rows; ++r) {
    size_t bound = fixed_row_bound_;
    for (const VarColumn& v : var_columns) {
      bound += v.factor * static_cast<size_t>(v.offsets[r + 1] - v.offsets[r]);
    }
    if (out->size() - used < bound) out->resize(std::max(used + bound, out->size() * 2));
    char* const base = out->data();
    char* p = base + used;
    if (nc == 0) *p++ = '{';
    for (int c = 0; c < nc; ++c) {
      const std::string& prefix = prefixes_[static_cast<size_t>(c)];
      p = internal::CopyBytes(prefix, p);
      const Column& col = batch.column(c);
      if (col.IsNull(r)) {
        p = internal::CopyBytes("null", p);
        continue;
      }
      switch (col.type()) {
        case TypeId::kBool:
          if (col.GetBool(r)) {
            p = internal::CopyBytes("true", p);
          } else {
            p = internal::CopyBytes("false", p);
          }
          break;
        case TypeId::kInt64:
          p = internal::WriteInt64(col.GetInt64(r), p);
          break;
        case TypeId::kFloat64: {
          const double v = col.GetFloat64(r);
          if (std::isfinite(v)) {
            p = internal::WriteDouble(v, p);
          } else if (std::isnan(v)) {
            p = internal::CopyBytes("\"NaN\"", p);
          } else {
            p = internal::CopyBytes(v > 0 ? "\"Infinity\"" : "\"-Infinity\"", p);
          }
          break;
        }
        case TypeId::kTimestamp:
          p = internal::WriteTimestamp(col.GetInt64(r), /*quoted=*/true, p);
          break;
        case TypeId::kString:
          p = internal::WriteJsonString(col.GetView(r), p);
          break;
        case TypeId::kBytes:
        case TypeId::kGeometry:
          *p++ = '"';
          p = internal::WriteHex(col.GetView(r), p);
          *p++ = '"';
          break;
        case TypeId::kJson: {
          const std::string_view v = col.GetView(r);
          if (v.empty()) {
            p = internal::CopyBytes("null", p);
            break;
          }
          internal::CopyBytes(v, p);
          // A line break in JSON text is whitespace outside strings (and invalid inside them),
          // so a space keeps the value and the one-record-per-line framing.
          for (char* q = p; (q = static_cast<char*>(std::memchr(q, '\n', p + v.size() - q)));) {
            *q = ' ';
          }
          for (char* q = p; (q = static_cast<char*>(std::memchr(q, '\r', p + v.size() - q)));) {
            *q = ' ';
          }
          p += v.size();
          break;
        }
      }
    }
    *p++ = '}';
    *p++ = '\n';
    used = static_cast<size_t>(p - base);
    if (row_ends != nullptr) row_ends->push_back(used);
  }
  out->resize(used);
}

namespace {

constexpr int64_t kMaxBatchBytes = int64_t{256} << 20;  // keeps int32 column offsets safe
constexpr size_t kMaxLineBytes = size_t{1} << 30;

std::string_view JsonTypeName(simdjson::dom::element_type t) {
  using simdjson::dom::element_type;
  switch (t) {
    case element_type::ARRAY:
      return "array";
    case element_type::OBJECT:
      return "object";
    case element_type::INT64:
      return "int64";
    case element_type::UINT64:
      return "uint64";
    case element_type::DOUBLE:
      return "float64";
    case element_type::STRING:
      return "string";
    case element_type::BOOL:
      return "bool";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "?";
}

// Appends `e` to `out` as compact JSON.
void AppendJson(simdjson::dom::element e, std::string* out) {
  using simdjson::dom::element_type;
  char num[internal::kMaxNumberChars + 2];
  switch (e.type()) {
    case element_type::ARRAY: {
      out->push_back('[');
      bool first = true;
      const simdjson::dom::array array = e.get_array().value_unsafe();
      for (simdjson::dom::element v : array) {
        if (!first) out->push_back(',');
        first = false;
        AppendJson(v, out);
      }
      out->push_back(']');
      break;
    }
    case element_type::OBJECT: {
      out->push_back('{');
      bool first = true;
      const simdjson::dom::object object = e.get_object().value_unsafe();
      for (simdjson::dom::key_value_pair kv : object) {
        if (!first) out->push_back(',');
        first = false;
        const size_t start = out->size();
        out->resize(start + kv.key.size() * 6 + 2);
        char* end = internal::WriteJsonString(kv.key, out->data() + start);
        out->resize(static_cast<size_t>(end - out->data()));
        out->push_back(':');
        AppendJson(kv.value, out);
      }
      out->push_back('}');
      break;
    }
    case element_type::INT64:
      out->append(num, internal::WriteInt64(e.get_int64().value_unsafe(), num));
      break;
    case element_type::UINT64: {
      const uint64_t v = e.get_uint64().value_unsafe();
      out->append(num, std::to_chars(num, num + sizeof(num), v).ptr);
      break;
    }
    case element_type::DOUBLE:
      out->append(num, internal::WriteDouble(e.get_double().value_unsafe(), num));
      break;
    case element_type::STRING: {
      const std::string_view s = e.get_string().value_unsafe();
      const size_t start = out->size();
      out->resize(start + s.size() * 6 + 2);
      char* end = internal::WriteJsonString(s, out->data() + start);
      out->resize(static_cast<size_t>(end - out->data()));
      break;
    }
    case element_type::BOOL:
      out->append(e.get_bool().value_unsafe() ? "true" : "false");
      break;
    case element_type::NULL_VALUE:
      out->append("null");
      break;
  }
}

// Hashes std::string and std::string_view alike, so lookups by a view need no copy.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
}

// What inference has seen of one key so far.
enum class Seen : uint8_t { kNull, kBool, kInt, kFloat, kString, kJson };

Seen Classify(simdjson::dom::element_type t) {
  using simdjson::dom::element_type;
  switch (t) {
    case element_type::NULL_VALUE:
      return Seen::kNull;
    case element_type::BOOL:
      return Seen::kBool;
    case element_type::INT64:
      return Seen::kInt;
    case element_type::UINT64:
    case element_type::DOUBLE:
      return Seen::kFloat;
    case element_type::STRING:
      return Seen::kString;
    default:
      return Seen::kJson;
  }
}

Seen Merge(Seen a, Seen b) {
  if (a == Seen::kNull || a == b) return b;
  if (b == Seen::kNull) return a;
  if ((a == Seen::kInt && b == Seen::kFloat) || (a == Seen::kFloat && b == Seen::kInt)) {
    return Seen::kFloat;
  }
  return Seen::kJson;
}

TypeId TypeOf(Seen s) {
  switch (s) {
    case Seen::kBool:
      return TypeId::kBool;
    case Seen::kInt:
      return TypeId::kInt64;
    case Seen::kFloat:
      return TypeId::kFloat64;
    case Seen::kJson:
      return TypeId::kJson;
    default:
      return TypeId::kString;
  }
}

}  // namespace

class JsonlDecoder::Impl {
 public:
  explicit Impl(DecodeOptions options) : options_(std::move(options)) {
    options_.batch_rows = std::max<int64_t>(options_.batch_rows, 1);
    options_.infer_rows = std::max<int64_t>(options_.infer_rows, 1);
    infer_gate_ = options_.infer_rows;
    if (options_.schema != nullptr) {
      SetSchema(options_.schema);
      schema_known_ = true;
    }
  }

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
    buf_.append(bytes);
    return Process(false, out);
  }

  Status Finish(std::vector<BatchPtr>* out) {
    SLUICE_RETURN_NOT_OK(Process(true, out));
    if (batch_rows_ > 0) FinishBatch(out);
    return Status::OK();
  }

  SchemaPtr schema() const { return schema_known_ ? schema_ : nullptr; }
  int64_t skipped_rows() const { return skipped_; }

 private:
  // One parsed value of the current row, held until the whole row is known to be good.
  struct Slot {
    bool set = false;  // false: missing or null
    int64_t i = 0;     // bool, int64, timestamp
    double d = 0;
    std::string_view s;   // var-width types: points into the parser's document or `scratch`
    std::string scratch;  // decoded hex, re-serialized json
  };

  Status Process(bool final, std::vector<BatchPtr>* out) {
    if (!started_) {
      if (buf_.size() < 3 && !final) return Status::OK();
      if (buf_.starts_with("\xEF\xBB\xBF")) buf_.erase(0, 3);
      started_ = true;
    }
    if (schema_ == nullptr) {
      if (!final) {
        for (size_t p = infer_scanned_;
             (p = buf_.find('\n', p)) != std::string::npos && lines_seen_ < infer_gate_; ++p) {
          ++lines_seen_;
          infer_scanned_ = p + 1;
        }
        if (lines_seen_ < infer_gate_) {
          infer_scanned_ = buf_.size();
          return CheckLineLength();
        }
      }
      if (!InferSchema(final)) return CheckLineLength();
    }
    size_t pos = 0;
    Status status;
    while (true) {
      const size_t from = std::max(pos, scanned_);
      const size_t hit = buf_.find('\n', from);
      size_t end;
      if (hit != std::string::npos) {
        end = hit;
      } else if (final && pos < buf_.size()) {
        end = buf_.size();
      } else {
        break;
      }
      std::string_view line(buf_.data() + pos, end - pos);
      if (line.ends_with('\r')) line.remove_suffix(1);
      const int64_t line_no = line_++;
      pos = std::min(end + 1, buf_.size());
      status = DecodeLine(line, line_no);
      if (!status.ok()) {
        if (options_.on_error == OnError::kFail) break;
        ++skipped_;
        if (options_.on_skip) options_.on_skip(line_no, status, line);
        status = Status::OK();
      }
      if (batch_rows_ >= options_.batch_rows || batch_bytes_ >= kMaxBatchBytes) FinishBatch(out);
    }
    buf_.erase(0, pos);
    scanned_ = buf_.size();
    SLUICE_RETURN_NOT_OK(status);
    return CheckLineLength();
  }

  Status CheckLineLength() const {
    if (buf_.size() <= kMaxLineBytes) return Status::OK();
    return LineError(options_.source_name, line_, "line longer than 1 GiB");
  }

  // Infers the schema from the complete lines at the front of buf_ (and the last, incomplete,
  // line when `final`). Lines that do not parse are left for the decoding pass to report.
  // Returns false, raising the gate, when fewer than `infer_rows` objects were found and more
  // input may come (unless a bad line will fail the run anyway).
  bool InferSchema(bool final) {
    std::vector<std::pair<std::string, Seen>> columns;
    StringMap<size_t> index;
    int64_t rows = 0;
    bool saw_bad = false;
    size_t pos = 0;
    while (pos < buf_.size() && rows < options_.infer_rows) {
      size_t end = buf_.find('\n', pos);
      if (end == std::string::npos) {
        if (!final) break;
        end = buf_.size();
      }
      const std::string_view line(buf_.data() + pos, end - pos);
      pos = end + 1;
      if (IsBlank(line)) continue;
      simdjson::dom::object obj;
      if (parser_.parse(line.data(), line.size()).get(obj) != simdjson::SUCCESS) {
        saw_bad = true;
        continue;
      }
      ++rows;
      for (simdjson::dom::key_value_pair kv : obj) {
        auto it = index.find(kv.key);
        if (it == index.end()) {
          it = index.emplace(std::string(kv.key), columns.size()).first;
          columns.emplace_back(std::string(kv.key), Seen::kNull);
        }
        Seen& seen = columns[it->second].second;
        seen = Merge(seen, Classify(kv.value.type()));
      }
    }
    const bool fails_anyway = saw_bad && options_.on_error == OnError::kFail;
    if (rows < options_.infer_rows && !final && !fails_anyway) {
      infer_gate_ = lines_seen_ + (options_.infer_rows - rows);
      return false;
    }
    std::vector<Field> fields;
    fields.reserve(columns.size());
    for (auto& [name, seen] : columns) fields.push_back({std::move(name), TypeOf(seen), true});
    SetSchema(MakeSchema(std::move(fields)));
    // Without a single object there is no schema to report (the pass still reports bad lines).
    schema_known_ = rows > 0;
    return true;
  }

  void SetSchema(SchemaPtr schema) {
    schema_ = std::move(schema);
    const int n = schema_->num_fields();
    index_.clear();
    for (int c = 0; c < n; ++c) index_.try_emplace(schema_->field(c).name, c);
    builders_.clear();
    for (int c = 0; c < n; ++c) builders_.emplace_back(schema_->field(c).type);
    slots_.assign(static_cast<size_t>(n), Slot());
    seen_.assign(static_cast<size_t>(n), 0);
  }

  int FindColumn(std::string_view key, int expected) const {
    // Rows usually list keys in the same order: try the column after the previous key first.
    if (expected < schema_->num_fields() && schema_->field(expected).name == key) return expected;
    auto it = index_.find(key);
    return it == index_.end() ? -1 : it->second;
  }

  Status Error(int64_t line_no, std::string_view message) const {
    return LineError(options_.source_name, line_no, message);
  }

  Status DecodeLine(std::string_view line, int64_t line_no) {
    if (IsBlank(line)) return Status::OK();
    simdjson::dom::element root;
    if (auto err = parser_.parse(line.data(), line.size()).get(root); err != simdjson::SUCCESS) {
      return Error(line_no, fmt::format("invalid JSON: {}", simdjson::error_message(err)));
    }
    if (root.type() != simdjson::dom::element_type::OBJECT) {
      return Error(line_no,
                   fmt::format("expected a JSON object, got {}", JsonTypeName(root.type())));
    }
    const int n = schema_->num_fields();
    for (int c = 0; c < n; ++c) slots_[static_cast<size_t>(c)].set = false;
    std::fill(seen_.begin(), seen_.end(), 0);
    int expected = 0;
    const simdjson::dom::object object = root.get_object().value_unsafe();
    for (simdjson::dom::key_value_pair kv : object) {
      const int c = FindColumn(kv.key, expected);
      if (c < 0) continue;
      expected = c + 1;
      if (seen_[static_cast<size_t>(c)]) continue;  // the first of duplicate keys wins
      seen_[static_cast<size_t>(c)] = 1;
      SLUICE_RETURN_NOT_OK(ConvertValue(c, kv.value, line_no));
    }
    for (int c = 0; c < n; ++c) {
      const Field& f = schema_->field(c);
      if (!f.nullable && !slots_[static_cast<size_t>(c)].set) {
        return Error(line_no, fmt::format("missing value for non-nullable '{}'", f.name));
      }
    }
    AppendRow();
    return Status::OK();
  }

  Status ConvertValue(int c, simdjson::dom::element value, int64_t line_no) {
    using simdjson::dom::element_type;
    const Field& f = schema_->field(c);
    Slot& s = slots_[static_cast<size_t>(c)];
    const element_type t = value.type();
    if (t == element_type::NULL_VALUE) return Status::OK();
    bool ok = true;
    switch (f.type) {
      case TypeId::kBool:
        ok = t == element_type::BOOL;
        if (ok) s.i = value.get_bool().value_unsafe();
        break;
      case TypeId::kInt64:
        ok = t == element_type::INT64;
        if (ok) s.i = value.get_int64().value_unsafe();
        break;
      case TypeId::kFloat64:
        if (t == element_type::INT64) {
          s.d = static_cast<double>(value.get_int64().value_unsafe());
        } else if (t == element_type::UINT64) {
          s.d = static_cast<double>(value.get_uint64().value_unsafe());
        } else if (t == element_type::DOUBLE) {
          s.d = value.get_double().value_unsafe();
        } else if (t == element_type::STRING) {
          if (!internal::ParseNonFinite(value.get_string().value_unsafe(), &s.d)) {
            return Error(line_no,
                         fmt::format("expected float64 for '{}', got \"{}\" (numbers, \"NaN\", "
                                     "\"Infinity\" and \"-Infinity\" are floats)",
                                     f.name, internal::Excerpt(value.get_string().value_unsafe())));
          }
        } else {
          ok = false;
        }
        break;
      case TypeId::kTimestamp:
        if (t == element_type::INT64) {
          s.i = value.get_int64().value_unsafe();
        } else if (t == element_type::STRING &&
                   internal::ParseInfiniteTimestamp(value.get_string().value_unsafe(), &s.i)) {
          break;
        } else if (t == element_type::STRING) {
          auto ts = ParseTimestamp(value.get_string().value_unsafe());
          if (!ts.ok()) {
            return Error(line_no, fmt::format("invalid timestamp for '{}': {}", f.name,
                                              ts.status().message()));
          }
          s.i = *ts;
        } else {
          ok = false;
        }
        break;
      case TypeId::kString:
        ok = t == element_type::STRING;
        if (ok) s.s = value.get_string().value_unsafe();
        break;
      case TypeId::kBytes:
      case TypeId::kGeometry:
        if (t != element_type::STRING) {
          ok = false;
        } else if (!internal::ParseHex(value.get_string().value_unsafe(), &s.scratch)) {
          return Error(line_no, fmt::format("expected a hex string for '{}', got \"{}\"", f.name,
                                            internal::Excerpt(value.get_string().value_unsafe())));
        } else {
          s.s = s.scratch;
        }
        break;
      case TypeId::kJson:
        s.scratch.clear();
        AppendJson(value, &s.scratch);
        s.s = s.scratch;
        break;
    }
    if (!ok) {
      return Error(line_no, fmt::format("expected {} for '{}', got {}", TypeName(f.type), f.name,
                                        JsonTypeName(t)));
    }
    s.set = true;
    return Status::OK();
  }

  void AppendRow() {
    const int n = schema_->num_fields();
    for (int c = 0; c < n; ++c) {
      const Slot& s = slots_[static_cast<size_t>(c)];
      ColumnBuilder& b = builders_[static_cast<size_t>(c)];
      if (!s.set) {
        b.AppendNull();
        continue;
      }
      switch (b.type()) {
        case TypeId::kBool:
          b.AppendBool(s.i != 0);
          break;
        case TypeId::kInt64:
          b.AppendInt64(s.i);
          break;
        case TypeId::kTimestamp:
          b.AppendTimestamp(s.i);
          break;
        case TypeId::kFloat64:
          b.AppendFloat64(s.d);
          break;
        default:
          b.AppendString(s.s);
          batch_bytes_ += static_cast<int64_t>(s.s.size());
      }
    }
    ++batch_rows_;
  }

  void FinishBatch(std::vector<BatchPtr>* out) {
    std::vector<Column> columns;
    columns.reserve(builders_.size());
    for (ColumnBuilder& b : builders_) columns.push_back(b.Finish());
    out->push_back(Batch::MakeUnchecked(schema_, std::move(columns), batch_rows_));
    batch_rows_ = 0;
    batch_bytes_ = 0;
  }

  DecodeOptions options_;
  SchemaPtr schema_;
  simdjson::dom::parser parser_;
  std::string buf_;            // unconsumed input, starting at the beginning of a line
  size_t scanned_ = 0;         // buf_[0, scanned_) holds no newline
  size_t infer_scanned_ = 0;   // buf_[0, infer_scanned_) was counted into lines_seen_
  int64_t lines_seen_ = 0;     // complete lines buffered while waiting to infer
  int64_t infer_gate_ = 0;     // lines to buffer before trying to infer
  bool schema_known_ = false;  // declared, or inferred from at least one object
  int64_t line_ = 1;           // line number of buf_[0]
  bool started_ = false;       // a leading byte-order mark was looked for
  StringMap<int> index_;       // field name -> column
  std::vector<ColumnBuilder> builders_;
  std::vector<Slot> slots_;
  std::vector<uint8_t> seen_;  // per column: its key was seen in the current row
  int64_t batch_rows_ = 0;     // rows in builders_
  int64_t batch_bytes_ = 0;    // var-width bytes in builders_
  int64_t skipped_ = 0;
};

JsonlDecoder::JsonlDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonlDecoder::~JsonlDecoder() = default;

Result<std::unique_ptr<JsonlDecoder>> JsonlDecoder::Make(DecodeOptions options) {
  if (options.batch_rows <= 0) return Status::Invalid("batch_rows must be positive");
  return std::unique_ptr<JsonlDecoder>(
      new JsonlDecoder(std::make_unique<Impl>(std::move(options))));
}

Status JsonlDecoder::Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
  return impl_->Feed(bytes, out);
}
Status JsonlDecoder::Finish(std::vector<BatchPtr>* out) { return impl_->Finish(out); }
SchemaPtr JsonlDecoder::schema() const { return impl_->schema(); }
int64_t JsonlDecoder::skipped_rows() const { return impl_->skipped_rows(); }

}  // namespace sluice::io
