#include "sluice/io/csv.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <unordered_set>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <simdjson.h>

#include "sluice/core/column.h"
#include "sluice/core/time.h"
#include "sluice/io/geometry.h"
#include "sluice/io/text_internal.h"

namespace sluice::io {

using internal::Excerpt;
using internal::LineError;

Status ValidateDelimiter(char delimiter, char quote) {
  const auto u = static_cast<unsigned char>(delimiter);
  if (std::isalnum(u) || delimiter == quote || delimiter == '\n' || delimiter == '\r' ||
      delimiter == '\0' || std::strchr("-+.:", delimiter) != nullptr || u >= 0x80) {
    return Status::Invalid("'{}' cannot be a CSV delimiter", delimiter);
  }
  if (quote == '\n' || quote == '\r' || quote == '\0') {
    return Status::Invalid("a line break cannot be the CSV quote character");
  }
  return Status::OK();
}

namespace {

// Returns true if `s` must be quoted: it is empty (an empty unquoted field means null) or holds
// the delimiter, a quote or a line break.
bool NeedsQuotes(std::string_view s, char delim) {
  if (s.empty()) return true;
  const char* p = s.data();
  const size_t n = s.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    if (internal::HasZeroByte(internal::XorBytes(w, static_cast<unsigned char>(delim))) ||
        internal::HasZeroByte(internal::XorBytes(w, '"')) ||
        internal::HasZeroByte(internal::XorBytes(w, '\n')) ||
        internal::HasZeroByte(internal::XorBytes(w, '\r'))) {
      return true;
    }
  }
  for (; i < n; ++i) {
    const char c = p[i];
    if (c == delim || c == '"' || c == '\n' || c == '\r') return true;
  }
  return false;
}

// Writes `s` as a CSV field at `p` (at most 2 * s.size() + 2 bytes); returns the end.
char* WriteCsvField(std::string_view s, char delim, char* p) {
  if (!NeedsQuotes(s, delim)) {
    std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }
  *p++ = '"';
  const char* in = s.data();
  const char* end = in + s.size();
  while (in < end) {
    const char* q = static_cast<const char*>(std::memchr(in, '"', static_cast<size_t>(end - in)));
    const char* stop = q == nullptr ? end : q + 1;
    std::memcpy(p, in, static_cast<size_t>(stop - in));
    p += stop - in;
    if (q != nullptr) *p++ = '"';  // double the quote
    in = stop;
  }
  *p++ = '"';
  return p;
}

}  // namespace

CsvEncoder::CsvEncoder(SchemaPtr schema, EncodeOptions options)
    : schema_(std::move(schema)), options_(options) {}

void CsvEncoder::Begin(std::string* out) {
  if (!options_.header) return;
  const char delim = options_.delimiter;
  std::string line;
  for (int c = 0; c < schema_->num_fields(); ++c) {
    const std::string& name = schema_->field(c).name;
    const size_t start = line.size();
    line.resize(start + name.size() * 2 + 3);
    char* p = line.data() + start;
    if (c > 0) *p++ = delim;
    p = WriteCsvField(name, delim, p);
    line.resize(static_cast<size_t>(p - line.data()));
  }
  line.push_back('\n');
  out->append(line);
}

void CsvEncoder::Encode(const Batch& batch, std::string* out, std::vector<size_t>* row_ends) {
  const int nc = batch.num_columns();
  const int64_t rows = batch.num_rows();
  const char delim = options_.delimiter;
  size_t fixed_bound = 2;  // line end, with room to spare
  std::vector<const int32_t*> var_offsets;
  for (int c = 0; c < nc; ++c) {
    const Column& col = batch.column(c);
    fixed_bound += 1 + (IsVarWidth(col.type()) ? 2 : internal::kMaxNumberChars + 8);
    if (IsVarWidth(col.type())) var_offsets.push_back(col.offsets());
  }
  size_t used = out->size();
  for (int64_t r = 0; r < rows; ++r) {
    size_t bound = fixed_bound;
    for (const int32_t* off : var_offsets) bound += 2 * static_cast<size_t>(off[r + 1] - off[r]);
    if (out->size() - used < bound) out->resize(std::max(used + bound, out->size() * 2));
    char* const base = out->data();
    char* p = base + used;
    for (int c = 0; c < nc; ++c) {
      if (c > 0) *p++ = delim;
      const Column& col = batch.column(c);
      if (col.IsNull(r)) continue;
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
        case TypeId::kFloat64:
          p = internal::WriteDouble(col.GetFloat64(r), p);
          break;
        case TypeId::kTimestamp:
          p = internal::WriteTimestamp(col.GetInt64(r), /*quoted=*/false, p);
          break;
        case TypeId::kBytes:
        case TypeId::kGeometry: {
          const std::string_view v = col.GetView(r);
          if (v.empty()) {
            p = internal::CopyBytes("\"\"", p);
          } else {
            p = internal::WriteHex(v, p);
          }
          break;
        }
        case TypeId::kString:
        case TypeId::kJson:
          p = WriteCsvField(col.GetView(r), delim, p);
          break;
      }
    }
    *p++ = '\n';
    used = static_cast<size_t>(p - base);
    if (row_ends != nullptr) row_ends->push_back(used);
  }
  out->resize(used);
}

namespace {

constexpr size_t kMaxRecordBytes = size_t{1} << 30;
constexpr size_t kFeedSlice = size_t{64} << 20;         // bounds the buffer past one record
constexpr int64_t kMaxBatchBytes = int64_t{256} << 20;  // keeps int32 column offsets safe
constexpr size_t kMaxRoundBytes = size_t{64} << 20;

// Returns the first byte in [p, end) equal to a, b, c or d, or end.
inline const char* FindAny(const char* p, const char* end, char a, char b, char c, char d) {
#if defined(__SSE2__)
  const __m128i va = _mm_set1_epi8(a);
  const __m128i vb = _mm_set1_epi8(b);
  const __m128i vc = _mm_set1_epi8(c);
  const __m128i vd = _mm_set1_epi8(d);
  while (end - p >= 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, va), _mm_cmpeq_epi8(x, vb)),
                                   _mm_or_si128(_mm_cmpeq_epi8(x, vc), _mm_cmpeq_epi8(x, vd)));
    const int mask = _mm_movemask_epi8(m);
    if (mask != 0) return p + __builtin_ctz(static_cast<unsigned>(mask));
    p += 16;
  }
#endif
  for (; p < end; ++p) {
    const char x = *p;
    if (x == a || x == b || x == c || x == d) return p;
  }
  return end;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool ParseInt64(std::string_view s, int64_t* out) {
  s = Trim(s);
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

bool ParseFloat64(std::string_view s, double* out) {
  s = Trim(s);
  if (s.size() > 1 && s[0] == '+' && s[1] != '-') s.remove_prefix(1);
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size() && !s.empty();
}

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != b[i]) return false;
  }
  return true;
}

// Parses true/false, t/f, yes/no, 1/0 in any case.
bool ParseBool(std::string_view s, bool* out) {
  s = Trim(s);
  if (EqualsNoCase(s, "true") || EqualsNoCase(s, "t") || EqualsNoCase(s, "yes") || s == "1") {
    *out = true;
    return true;
  }
  if (EqualsNoCase(s, "false") || EqualsNoCase(s, "f") || EqualsNoCase(s, "no") || s == "0") {
    *out = false;
    return true;
  }
  return false;
}

// Returns true if `s` looks like a float for inference: a number, or the encoder's spellings
// of non-finite values. Words such as "Nan" or "infinity" stay strings.
bool LooksFloat(std::string_view s) {
  s = Trim(s);
  if (s == "nan" || s == "inf" || s == "-inf") return true;
  if (s.empty()) return false;
  const char c = s[0];
  if (!(c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9'))) return false;
  double d;
  return ParseFloat64(s, &d) && std::isfinite(d);
}

// One field of a record: bytes of the input buffer or, when it had doubled quotes and was
// unescaped, bytes of the scratch buffer.
struct FieldRef {
  uint32_t begin;
  uint32_t len;
  uint8_t flags;
};
constexpr uint8_t kQuoted = 1;
constexpr uint8_t kInScratch = 2;

}  // namespace

class CsvDecoder::Impl {
 public:
  explicit Impl(DecodeOptions options) : options_(std::move(options)) {
    options_.batch_rows = std::max<int64_t>(options_.batch_rows, 1);
    ready_ = options_.schema != nullptr;
    if (ready_) SetSchema(options_.schema);
  }

  Status Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
    do {
      const size_t n = std::min(bytes.size(), kFeedSlice);
      buf_.append(bytes.substr(0, n));
      bytes.remove_prefix(n);
      SLUICE_RETURN_NOT_OK(Process(false, out));
    } while (!bytes.empty());
    return Status::OK();
  }

  Status Finish(std::vector<BatchPtr>* out) {
    SLUICE_RETURN_NOT_OK(Process(true, out));
    if (batch_rows_ > 0) FinishBatch(out);
    return Status::OK();
  }

  SchemaPtr schema() const { return schema_; }
  int64_t skipped_rows() const { return skipped_; }

 private:
  enum class Parse : uint8_t { kRecord, kNeedMore, kError };

  Status Process(bool final, std::vector<BatchPtr>* out) {
    if (!started_) {
      if (buf_.size() < 3 && !final) return Status::OK();
      if (buf_.starts_with("\xEF\xBB\xBF")) buf_.erase(0, 3);
      started_ = true;
    }
    if (pending_ && !AdvancePending(final)) return CheckRecordLength();
    pending_ = false;
    if (!ready_) {
      if (!final && !EnoughToInfer()) return CheckRecordLength();
      Infer(final);
      ready_ = true;
    }
    size_t pos = 0;
    size_t round_start = 0;
    Status status;
    while (pos < buf_.size()) {
      const size_t field_mark = fields_.size();
      const size_t scratch_mark = scratch_.size();
      size_t next = 0;
      int64_t newlines = 0;
      const Parse r = ParseRecord(pos, final, &next, &newlines);
      if (r == Parse::kNeedMore) {
        fields_.resize(field_mark);
        scratch_.resize(scratch_mark);
        pending_ = true;
        pending_scan_ = pos;
        pending_in_quotes_ = false;
        break;
      }
      if (r == Parse::kError) {
        fields_.resize(field_mark);
        scratch_.resize(scratch_mark);
        if (options_.on_error == OnError::kFail) {
          status = error_;
          break;
        }
        // Skip to where the record ends by quote parity: the parser and the parity scan agree
        // up to the first anomaly, so this is where a reader of the file would resume.
        if (!FindRecordEnd(pos, final, &next, &newlines)) {
          pending_ = true;
          pending_scan_ = pos;
          pending_in_quotes_ = false;
          break;
        }
        ++skipped_;
        if (options_.on_skip) options_.on_skip(line_, error_, RecordText(pos, next));
        line_ += newlines;
        pos = next;
        continue;
      }
      const int64_t record_line = line_;
      const size_t record_start = pos;
      line_ += newlines;
      pos = next;
      const size_t num_fields = fields_.size() - field_mark;
      const bool blank =
          num_fields == 1 && fields_[field_mark].len == 0 && fields_[field_mark].flags == 0;
      if (!header_done_ && blank) {  // before the first record: nothing to tell columns from
        fields_.resize(field_mark);
        scratch_.resize(scratch_mark);
        continue;
      }
      if (!header_done_) {
        header_done_ = true;
        if (options_.header) {
          status = SetupColumns(field_mark, num_fields, record_line);
          fields_.resize(field_mark);
          scratch_.resize(scratch_mark);
          if (!status.ok()) break;
          continue;
        }
        status = SetupColumns(field_mark, num_fields, record_line);
        if (!status.ok()) break;
      }
      if (static_cast<int64_t>(num_fields) != ncols_) {
        fields_.resize(field_mark);
        scratch_.resize(scratch_mark);
        if (blank) continue;
        Status wrong = LineError(options_.source_name, record_line,
                                 fmt::format("expected {} fields, got {}", ncols_, num_fields));
        if (options_.on_error == OnError::kFail) {
          status = std::move(wrong);
          break;
        }
        ++skipped_;
        if (options_.on_skip) options_.on_skip(record_line, wrong, RecordText(record_start, next));
        continue;
      }
      row_lines_.push_back(record_line);
      if (options_.on_skip) row_spans_.emplace_back(record_start, next);
      if (batch_rows_ + static_cast<int64_t>(row_lines_.size()) >= options_.batch_rows ||
          pos - round_start >= kMaxRoundBytes) {
        SLUICE_RETURN_NOT_OK(ConvertRows(out));
        round_start = pos;
      }
    }
    // Rows before an error are converted first, so that the earliest bad line is reported.
    SLUICE_RETURN_NOT_OK(ConvertRows(out));
    SLUICE_RETURN_NOT_OK(status);
    buf_.erase(0, pos);
    if (pending_) pending_scan_ -= pos;
    return CheckRecordLength();
  }

  // The text of the record at buf_[begin, end), without its line end.
  std::string_view RecordText(size_t begin, size_t end) const {
    std::string_view text(buf_.data() + begin, end - begin);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
    return text;
  }

  Status CheckRecordLength() const {
    if (buf_.size() <= kMaxRecordBytes) return Status::OK();
    return LineError(options_.source_name, line_, "record longer than 1 GiB");
  }

  // Looks for the end of the record that starts at buf_[0] and did not fit in the buffer,
  // resuming where the last call stopped. Returns true when the record is complete.
  bool AdvancePending(bool final) {
    const char quote = options_.quote;
    const char* const base = buf_.data();
    const char* const end = base + buf_.size();
    const char* p = base + pending_scan_;
    while (p < end) {
      p = FindAny(p, end, quote, '\n', quote, '\n');
      if (p == end) break;
      if (*p == quote) {
        pending_in_quotes_ = !pending_in_quotes_;
      } else if (!pending_in_quotes_) {
        return true;
      }
      ++p;
    }
    pending_scan_ = buf_.size();
    return final;
  }

  // Finds the end of the record at `start` by quote parity, for skipping a malformed record.
  bool FindRecordEnd(size_t start, bool final, size_t* next, int64_t* newlines) const {
    const char quote = options_.quote;
    const char* const base = buf_.data();
    const char* const end = base + buf_.size();
    const char* p = base + start;
    bool in_quotes = false;
    int64_t nl = 0;
    while (p < end) {
      p = FindAny(p, end, quote, '\n', quote, '\n');
      if (p == end) break;
      if (*p == quote) {
        in_quotes = !in_quotes;
      } else {
        ++nl;
        if (!in_quotes) {
          *next = static_cast<size_t>(p + 1 - base);
          *newlines = nl;
          return true;
        }
      }
      ++p;
    }
    *next = buf_.size();
    *newlines = nl;
    return final;
  }

  // Returns true once the buffer holds the header and `infer_rows` records.
  bool EnoughToInfer() {
    const int64_t wanted = options_.infer_rows + (options_.header ? 1 : 0);
    const char quote = options_.quote;
    const char* const base = buf_.data();
    const char* const end = base + buf_.size();
    const char* p = base + infer_scan_;
    while (p < end && infer_records_ < wanted) {
      p = FindAny(p, end, quote, '\n', quote, '\n');
      if (p == end) break;
      if (*p == quote) {
        infer_in_quotes_ = !infer_in_quotes_;
      } else if (!infer_in_quotes_) {
        ++infer_records_;
      }
      ++p;
    }
    infer_scan_ = static_cast<size_t>(p - base);
    return infer_records_ >= wanted;
  }

  // Decides column types from the first records of the buffer, without consuming them.
  void Infer(bool final) {
    struct Candidates {
      bool any = false;  // a non-null value was seen
      bool int64 = true;
      bool float64 = true;
      bool boolean = true;
      bool geometry = true;  // WKT/EWKT or hex EWKB
    };
    std::vector<Candidates> cols;
    int64_t ncols = -1;
    int64_t rows = 0;
    bool header_pending = options_.header;
    size_t pos = 0;
    while (pos < buf_.size() && rows < options_.infer_rows) {
      size_t next = 0;
      int64_t newlines = 0;
      const Parse r = ParseRecord(pos, final, &next, &newlines);
      if (r == Parse::kNeedMore) break;
      if (r == Parse::kError) {
        fields_.clear();
        scratch_.clear();
        if (!FindRecordEnd(pos, final, &next, &newlines)) break;
        pos = next;
        continue;
      }
      pos = next;
      const auto n = static_cast<int64_t>(fields_.size());
      if (ncols < 0 && n == 1 && fields_[0].len == 0 && fields_[0].flags == 0) {
        fields_.clear();  // a blank line before the first record
        scratch_.clear();
        continue;
      }
      if (ncols < 0) {
        ncols = n;
        cols.resize(static_cast<size_t>(n));
        if (header_pending) {
          header_pending = false;
          fields_.clear();
          scratch_.clear();
          continue;
        }
      }
      if (n == ncols) {
        ++rows;
        for (int64_t c = 0; c < n; ++c) {
          const FieldRef& f = fields_[static_cast<size_t>(c)];
          if (f.len == 0 && f.flags == 0) continue;  // null
          Candidates& k = cols[static_cast<size_t>(c)];
          const std::string_view v = View(f);
          k.any = true;
          int64_t i;
          k.int64 = k.int64 && ParseInt64(v, &i);
          k.float64 = k.float64 && LooksFloat(v);
          k.boolean =
              k.boolean && (EqualsNoCase(Trim(v), "true") || EqualsNoCase(Trim(v), "false"));
          k.geometry = k.geometry && !k.int64 && !k.float64 && geom::LooksLikeGeometryText(v);
        }
      }
      fields_.clear();
      scratch_.clear();
    }
    fields_.clear();
    scratch_.clear();
    inferred_.clear();
    for (const Candidates& k : cols) {
      TypeId t = TypeId::kString;
      if (k.any && k.int64) {
        t = TypeId::kInt64;
      } else if (k.any && k.float64) {
        t = TypeId::kFloat64;
      } else if (k.any && k.boolean) {
        t = TypeId::kBool;
      } else if (k.any && k.geometry) {
        t = TypeId::kGeometry;
      }
      inferred_.push_back(t);
    }
  }

  // Sets the columns from the first record: the header (names) or the first data record.
  Status SetupColumns(size_t first, size_t num_fields, int64_t record_line) {
    const SchemaPtr& declared = options_.schema;
    std::vector<std::string> names;
    for (size_t i = 0; i < num_fields; ++i) {
      if (options_.header) {
        names.emplace_back(View(fields_[first + i]));
        if (names.back().empty()) names.back() = fmt::format("c{}", i + 1);
      } else {
        names.push_back(fmt::format("c{}", i + 1));
      }
    }
    src_.clear();
    if (declared != nullptr) {
      if (options_.header) {
        ncols_ = static_cast<int64_t>(num_fields);
        for (const Field& f : declared->fields()) {
          const auto it = std::find(names.begin(), names.end(), f.name);
          if (it == names.end()) {
            return LineError(options_.source_name, record_line,
                             fmt::format("column '{}' of the schema is not in the header", f.name));
          }
          src_.push_back(static_cast<int>(it - names.begin()));
        }
      } else {
        ncols_ = declared->num_fields();
        for (int c = 0; c < declared->num_fields(); ++c) src_.push_back(c);
      }
      SetSchema(declared);
      return Status::OK();
    }
    ncols_ = static_cast<int64_t>(num_fields);
    std::unordered_set<std::string_view> seen;
    std::vector<Field> fields;
    for (size_t i = 0; i < num_fields; ++i) {
      if (!seen.insert(names[i]).second) {
        return LineError(
            options_.source_name, record_line,
            fmt::format("duplicate column name '{}' in the header", Excerpt(names[i])));
      }
      const TypeId t = i < inferred_.size() ? inferred_[i] : TypeId::kString;
      fields.push_back({names[i], t, true});
      src_.push_back(static_cast<int>(i));
    }
    SetSchema(MakeSchema(std::move(fields)));
    return Status::OK();
  }

  void SetSchema(SchemaPtr schema) {
    schema_ = std::move(schema);
    builders_.clear();
    for (const Field& f : schema_->fields()) builders_.emplace_back(f.type, options_.batch_rows);
    values_.resize(builders_.size());
    nulls_.resize(builders_.size());
    decoded_.resize(builders_.size());
    decoded_ends_.resize(builders_.size());
  }

  std::string_view View(const FieldRef& f) const {
    const char* base = (f.flags & kInScratch) ? scratch_.data() : buf_.data();
    return {base + f.begin, f.len};
  }

  void AddField(size_t begin, size_t len, uint8_t flags) {
    fields_.push_back({static_cast<uint32_t>(begin), static_cast<uint32_t>(len), flags});
  }

  Parse Fail(int64_t line, const std::string& message) {
    error_ = LineError(options_.source_name, line, message);
    return Parse::kError;
  }

  // Parses the record at buf_[start]: appends its fields to fields_ and sets `next` to where
  // the following record starts and `newlines` to the line breaks consumed.
  Parse ParseRecord(size_t start, bool final, size_t* next, int64_t* newlines) {
    const char delim = options_.delimiter;
    const char quote = options_.quote;
    const char* const base = buf_.data();
    const char* const end = base + buf_.size();
    const char* p = base + start;
    int64_t nl = 0;
    auto done = [&](const char* at) {
      *next = static_cast<size_t>(at - base);
      *newlines = nl;
      return Parse::kRecord;
    };
    while (true) {  // one iteration per field
      if (p == end) {
        if (!final) return Parse::kNeedMore;
        AddField(static_cast<size_t>(p - base), 0, 0);  // after a trailing delimiter
        return done(p);
      }
      if (*p == quote) {
        const int64_t field_line = line_ + nl;
        const char* seg = ++p;
        size_t scratch_begin = std::string::npos;
        while (true) {
          const auto* q =
              static_cast<const char*>(std::memchr(p, quote, static_cast<size_t>(end - p)));
          if (q == nullptr) {
            if (!final) return Parse::kNeedMore;
            return Fail(field_line, "unterminated quoted field");
          }
          nl += std::count(p, q, '\n');
          if (q + 1 == end && !final) return Parse::kNeedMore;
          if (q + 1 < end && q[1] == quote) {  // a doubled quote stands for one
            if (scratch_begin == std::string::npos) scratch_begin = scratch_.size();
            scratch_.append(seg, static_cast<size_t>(q + 1 - seg));
            p = q + 2;
            seg = p;
            continue;
          }
          if (scratch_begin == std::string::npos) {
            AddField(static_cast<size_t>(seg - base), static_cast<size_t>(q - seg), kQuoted);
          } else {
            scratch_.append(seg, static_cast<size_t>(q - seg));
            AddField(scratch_begin, scratch_.size() - scratch_begin, kQuoted | kInScratch);
          }
          p = q + 1;
          break;
        }
        if (p == end) {
          if (!final) return Parse::kNeedMore;
          return done(p);
        }
        if (*p == delim) {
          ++p;
          continue;
        }
        if (*p == '\n') {
          ++nl;
          return done(p + 1);
        }
        if (*p == '\r') {
          if (p + 1 == end) {
            if (!final) return Parse::kNeedMore;
            return done(p + 1);
          }
          if (p[1] == '\n') {
            ++nl;
            return done(p + 2);
          }
        }
        return Fail(line_ + nl, fmt::format("unexpected '{}' after a closing quote",
                                            Excerpt(std::string_view(p, 1))));
      }
      const char* field = p;
      while (true) {
        const char* s = FindAny(p, end, delim, quote, '\n', '\r');
        if (s == end) {
          if (!final) return Parse::kNeedMore;
          AddField(static_cast<size_t>(field - base), static_cast<size_t>(end - field), 0);
          return done(end);
        }
        const char c = *s;
        if (c == delim) {
          AddField(static_cast<size_t>(field - base), static_cast<size_t>(s - field), 0);
          p = s + 1;
          break;
        }
        if (c == '\n') {
          AddField(static_cast<size_t>(field - base), static_cast<size_t>(s - field), 0);
          ++nl;
          return done(s + 1);
        }
        if (c == '\r') {
          if (s + 1 == end) {
            if (!final) return Parse::kNeedMore;
            AddField(static_cast<size_t>(field - base), static_cast<size_t>(s - field), 0);
            return done(end);
          }
          if (s[1] == '\n') {
            AddField(static_cast<size_t>(field - base), static_cast<size_t>(s - field), 0);
            ++nl;
            return done(s + 2);
          }
          p = s + 1;  // a lone CR is data
          continue;
        }
        return Fail(line_ + nl,
                    "quote in an unquoted field (quote the field and double its quotes)");
      }
    }
  }

  // Records that row `r` of the current round is bad; keeps the message of the earliest one.
  void MarkBad(size_t r, int c, std::string_view value, std::string_view what) {
    if (options_.on_skip && bad_[r] == 0) {  // the row's first error, for its dead letter
      bad_why_.emplace_back(r, LineError(options_.source_name, row_lines_[r],
                                         fmt::format("expected {} for '{}', got '{}'", what,
                                                     schema_->field(c).name, Excerpt(value))));
    }
    bad_[r] = 1;
    if (options_.on_error == OnError::kFail &&
        (bad_first_ < 0 || static_cast<int64_t>(r) < bad_first_)) {
      bad_first_ = static_cast<int64_t>(r);
      error_ = LineError(options_.source_name, row_lines_[r],
                         fmt::format("expected {} for '{}', got '{}'", what, schema_->field(c).name,
                                     Excerpt(value)));
    }
  }

  // Converts column `c` of the round's rows into values_/nulls_ (or decoded_), marking rows
  // whose field does not parse.
  void ConvertColumn(int c) {
    const TypeId type = schema_->field(c).type;
    const size_t rows = row_lines_.size();
    const auto stride = static_cast<size_t>(ncols_);
    const FieldRef* f = fields_.data() + src_[static_cast<size_t>(c)];
    std::vector<int64_t>& values = values_[static_cast<size_t>(c)];
    std::vector<uint8_t>& nulls = nulls_[static_cast<size_t>(c)];
    values.resize(rows);
    nulls.assign(rows, 0);
    const bool is_string =
        type == TypeId::kString || type == TypeId::kBytes || type == TypeId::kGeometry;
    for (size_t r = 0; r < rows; ++r) {
      const FieldRef& fr = f[r * stride];
      // An empty unquoted field is null; `""` is an empty value only for string-like types.
      if (fr.len == 0 && (fr.flags == 0 || !is_string)) nulls[r] = 1;
    }
    switch (type) {
      case TypeId::kInt64:
        for (size_t r = 0; r < rows; ++r) {
          if (nulls[r]) continue;
          const std::string_view v = View(f[r * stride]);
          if (!ParseInt64(v, &values[r])) MarkBad(r, c, v, "int64");
        }
        break;
      case TypeId::kFloat64:
        for (size_t r = 0; r < rows; ++r) {
          if (nulls[r]) continue;
          const std::string_view v = View(f[r * stride]);
          double d;
          if (!ParseFloat64(v, &d) && !internal::ParseNonFinite(Trim(v), &d)) {
            MarkBad(r, c, v, "float64");
          }
          std::memcpy(&values[r], &d, sizeof(d));
        }
        break;
      case TypeId::kBool:
        for (size_t r = 0; r < rows; ++r) {
          if (nulls[r]) continue;
          const std::string_view v = View(f[r * stride]);
          bool b = false;
          if (!ParseBool(v, &b)) MarkBad(r, c, v, "bool");
          values[r] = b;
        }
        break;
      case TypeId::kTimestamp:
        for (size_t r = 0; r < rows; ++r) {
          if (nulls[r]) continue;
          const std::string_view v = View(f[r * stride]);
          auto ts = ParseTimestamp(Trim(v));
          if (ts.ok()) {
            values[r] = *ts;
          } else if (internal::ParseInfiniteTimestamp(Trim(v), &values[r])) {
            continue;
          } else if (!ParseInt64(v, &values[r])) {  // µs, as written outside years 0-9999
            MarkBad(r, c, v, "timestamp");
          }
        }
        break;
      case TypeId::kBytes:
      case TypeId::kGeometry: {
        const bool geometry = schema_->field(c).type == TypeId::kGeometry;
        std::string& decoded = decoded_[static_cast<size_t>(c)];
        std::vector<uint32_t>& ends = decoded_ends_[static_cast<size_t>(c)];
        decoded.clear();
        ends.resize(rows);
        for (size_t r = 0; r < rows; ++r) {
          if (!nulls[r]) {
            const std::string_view v = View(f[r * stride]);
            if (geometry) {
              // Hex EWKB, or WKT/EWKT; a malformed one is a bad value like any other.
              if (Status st = geom::TextToEwkb(v, options_.srid, &decoded); !st.ok()) {
                MarkBad(r, c, v, fmt::format("a geometry ({})", st.message()));
              }
            } else if (internal::ParseHex(v, &hex_)) {
              decoded.append(hex_);
            } else {
              MarkBad(r, c, v, "hex bytes");
            }
          }
          ends[r] = static_cast<uint32_t>(decoded.size());
        }
        break;
      }
      case TypeId::kJson:
        for (size_t r = 0; r < rows; ++r) {
          if (nulls[r]) continue;
          const std::string_view v = View(f[r * stride]);
          if (json_parser_.parse(v.data(), v.size()).error() != simdjson::SUCCESS) {
            MarkBad(r, c, v, "json");
          }
        }
        break;
      case TypeId::kString:
        break;
    }
  }

  // Appends the good rows of column `c` of the round to its builder.
  void AppendColumn(int c, bool any_bad) {
    ColumnBuilder& b = builders_[static_cast<size_t>(c)];
    const std::vector<int64_t>& values = values_[static_cast<size_t>(c)];
    const std::vector<uint8_t>& nulls = nulls_[static_cast<size_t>(c)];
    const size_t rows = row_lines_.size();
    const auto stride = static_cast<size_t>(ncols_);
    const FieldRef* f = fields_.data() + src_[static_cast<size_t>(c)];
    const TypeId type = b.type();
    for (size_t r = 0; r < rows; ++r) {
      if (any_bad && bad_[r]) continue;
      if (nulls[r]) {
        b.AppendNull();
        continue;
      }
      switch (type) {
        case TypeId::kBool:
          b.AppendBool(values[r] != 0);
          break;
        case TypeId::kInt64:
        case TypeId::kFloat64:
        case TypeId::kTimestamp:
          b.AppendInt64(values[r]);
          break;  // 8-byte storage alike
        case TypeId::kBytes:
        case TypeId::kGeometry: {
          const std::vector<uint32_t>& ends = decoded_ends_[static_cast<size_t>(c)];
          const uint32_t begin = r == 0 ? 0 : ends[r - 1];
          b.AppendString(
              std::string_view(decoded_[static_cast<size_t>(c)]).substr(begin, ends[r] - begin));
          batch_bytes_ += ends[r] - begin;
          break;
        }
        case TypeId::kString:
        case TypeId::kJson: {
          const std::string_view v = View(f[r * stride]);
          b.AppendString(v);
          batch_bytes_ += static_cast<int64_t>(v.size());
          break;
        }
      }
    }
  }

  // Converts the rows gathered in fields_ into the builders, column by column.
  Status ConvertRows(std::vector<BatchPtr>* out) {
    const size_t rows = row_lines_.size();
    if (rows > 0) {
      bad_.assign(rows, 0);
      bad_first_ = -1;
      const int nc = schema_->num_fields();
      for (int c = 0; c < nc; ++c) ConvertColumn(c);
      const auto num_bad = static_cast<int64_t>(std::count(bad_.begin(), bad_.end(), 1));
      if (num_bad > 0 && options_.on_error == OnError::kFail) return error_;
      for (int c = 0; c < nc; ++c) AppendColumn(c, num_bad > 0);
      skipped_ += num_bad;
      if (options_.on_skip) {
        std::sort(bad_why_.begin(), bad_why_.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        for (const auto& [r, why] : bad_why_) {
          options_.on_skip(row_lines_[r], why,
                           RecordText(row_spans_[r].first, row_spans_[r].second));
        }
      }
      batch_rows_ += static_cast<int64_t>(rows) - num_bad;
    }
    fields_.clear();
    scratch_.clear();
    row_lines_.clear();
    row_spans_.clear();
    bad_why_.clear();
    if (batch_rows_ >= options_.batch_rows || (batch_rows_ > 0 && batch_bytes_ >= kMaxBatchBytes)) {
      FinishBatch(out);
    }
    return Status::OK();
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
  SchemaPtr schema_;          // null until the first record (or header) was read
  bool ready_ = false;        // column types are known (declared, or inference ran)
  bool started_ = false;      // a leading byte-order mark was looked for
  bool header_done_ = false;  // the first record was used to set up the columns
  std::string buf_;           // unconsumed input, starting at the beginning of a record
  int64_t line_ = 1;          // line number of the record being parsed
  int64_t ncols_ = -1;        // fields per record
  std::vector<int> src_;      // per schema field: its index within a record
  std::vector<TypeId> inferred_;

  // A record that did not fit in the buffer: where its end search resumes.
  bool pending_ = false;
  size_t pending_scan_ = 0;
  bool pending_in_quotes_ = false;

  // Counting records while buffering for inference.
  size_t infer_scan_ = 0;
  bool infer_in_quotes_ = false;
  int64_t infer_records_ = 0;

  // The round: records parsed from the buffer and not yet converted.
  std::vector<FieldRef> fields_;  // ncols_ per row
  std::vector<int64_t> row_lines_;
  std::string scratch_;  // unescaped quoted fields
  Status error_;         // the error of the last Parse::kError, or of the earliest bad row

  // Conversion state, reused across rounds.
  std::vector<uint8_t> bad_;
  // With on_skip only: each round row's record in buf_, and the first error of each bad row.
  std::vector<std::pair<size_t, size_t>> row_spans_;
  std::vector<std::pair<size_t, Status>> bad_why_;
  int64_t bad_first_ = -1;
  std::vector<std::vector<int64_t>> values_;
  std::vector<std::vector<uint8_t>> nulls_;
  std::vector<std::string> decoded_;
  std::vector<std::vector<uint32_t>> decoded_ends_;
  std::string hex_;
  simdjson::dom::parser json_parser_;

  std::vector<ColumnBuilder> builders_;
  int64_t batch_rows_ = 0;
  int64_t batch_bytes_ = 0;
  int64_t skipped_ = 0;
};

CsvDecoder::CsvDecoder(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CsvDecoder::~CsvDecoder() = default;

Result<std::unique_ptr<CsvDecoder>> CsvDecoder::Make(DecodeOptions options) {
  if (options.batch_rows <= 0) return Status::Invalid("batch_rows must be positive");
  SLUICE_RETURN_NOT_OK(ValidateDelimiter(options.delimiter, options.quote));
  return std::unique_ptr<CsvDecoder>(new CsvDecoder(std::make_unique<Impl>(std::move(options))));
}

Status CsvDecoder::Feed(std::string_view bytes, std::vector<BatchPtr>* out) {
  return impl_->Feed(bytes, out);
}
Status CsvDecoder::Finish(std::vector<BatchPtr>* out) { return impl_->Finish(out); }
SchemaPtr CsvDecoder::schema() const { return impl_->schema(); }
int64_t CsvDecoder::skipped_rows() const { return impl_->skipped_rows(); }

}  // namespace sluice::io
