#pragma once

// The rows one collector adds to a sample, kept between samples so that a steady host's
// samples allocate nothing: clearing keeps the memory, and the next sample has as many rows.

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

namespace sluice::procfs {

/// One label of a row.
struct Label {
  std::string_view name;
  std::string_view value;
};

/// A number written as label text ("0", "4213") on the stack.
class IntText {
 public:
  explicit IntText(int64_t v) {
    size_ = static_cast<size_t>(std::to_chars(buf_, buf_ + sizeof(buf_), v).ptr - buf_);
  }
  std::string_view view() const { return {buf_, size_}; }

 private:
  char buf_[24];
  size_t size_;
};

/// Rows of (metric, labels, value). Labels are stored as the text of a JSON object of strings,
/// `{"cpu":"0","mode":"user"}`, in the order given — callers give them sorted by name, so one
/// series always has one text. Not thread-safe; each collector has its own.
class SampleRows {
 public:
  struct Row {
    std::string_view metric;  ///< A string with static storage (a literal).
    uint32_t labels_begin = 0;
    uint32_t labels_size = 0;
    double value = 0;
  };

  /// Forget the rows, keep the memory.
  void Clear() {
    rows_.clear();
    labels_.clear();
  }
  /// Append a row. `metric` must have static storage (a string literal). Label values may be
  /// any bytes: quotes, backslashes and control characters are escaped, and bytes that are not
  /// UTF-8 become U+FFFD, so the labels are always valid JSON.
  void Add(std::string_view metric, double value, std::initializer_list<Label> labels = {});

  size_t size() const { return rows_.size(); }
  bool empty() const { return rows_.empty(); }
  const Row& row(size_t i) const { return rows_[i]; }
  std::string_view labels(const Row& r) const {
    return std::string_view(labels_).substr(r.labels_begin, r.labels_size);
  }
  /// Return the bytes of every row's metric name together.
  size_t metric_bytes() const;
  /// Return the bytes of every row's labels together.
  size_t labels_bytes() const { return labels_.size(); }

 private:
  std::vector<Row> rows_;
  std::string labels_;
};

/// Append `s` to `out` as the inside of a JSON string (no quotes): `"`, `\` and control
/// characters escaped, bytes that are not UTF-8 replaced by U+FFFD.
void AppendJsonStringBody(std::string_view s, std::string* out);

}  // namespace sluice::procfs
