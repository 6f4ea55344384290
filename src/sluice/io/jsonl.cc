#include "sluice/io/jsonl.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include <simdjson.h>

#include "sluice/core/column.h"
#include "sluice/core/time.h"
#include "sluice/io/json_rows.h"
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

constexpr size_t kMaxLineBytes = size_t{1} << 30;

bool IsBlank(std::string_view line) {
  for (char c : line) {
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;
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
    if (rows_.rows() > 0) FinishBatch(out);
    return Status::OK();
  }

  SchemaPtr schema() const { return schema_known_ ? schema_ : nullptr; }
  int64_t skipped_rows() const { return skipped_; }

 private:
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
      if (rows_.rows() >= options_.batch_rows || rows_.bytes() >= internal::kMaxBatchBytes) {
        FinishBatch(out);
      }
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
    internal::JsonSchemaInference inference;
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
      inference.AddObject(obj);
    }
    const bool fails_anyway = saw_bad && options_.on_error == OnError::kFail;
    if (rows < options_.infer_rows && !final && !fails_anyway) {
      infer_gate_ = lines_seen_ + (options_.infer_rows - rows);
      return false;
    }
    SetSchema(MakeSchema(inference.Fields()));
    // Without a single object there is no schema to report (the pass still reports bad lines).
    schema_known_ = rows > 0;
    return true;
  }

  void SetSchema(SchemaPtr schema) {
    schema_ = std::move(schema);
    rows_.SetSchema(schema_);
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
      return Error(line_no, fmt::format("expected a JSON object, got {}",
                                        internal::JsonTypeName(root.type())));
    }
    rows_.BeginRow();
    int expected = 0;
    const simdjson::dom::object object = root.get_object().value_unsafe();
    for (simdjson::dom::key_value_pair kv : object) {
      const int c = rows_.FindColumn(kv.key, expected);
      if (c < 0) continue;
      expected = c + 1;
      if (rows_.IsSeen(c)) continue;  // the first of duplicate keys wins
      Status st = rows_.Set(c, kv.value);
      if (!st.ok()) return Error(line_no, st.message());
    }
    Status st = rows_.EndRow();
    if (!st.ok()) return Error(line_no, st.message());
    return Status::OK();
  }

  void FinishBatch(std::vector<BatchPtr>* out) { out->push_back(rows_.Finish()); }

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
  internal::JsonRowBuilder rows_;
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
