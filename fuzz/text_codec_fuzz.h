// Shared by the text-codec fuzzers (csv_fuzz, jsonl_fuzz, geojson_fuzz): feed arbitrary bytes to a
// decoder in two chunks (split where the first byte says), with an inferred and with a declared
// schema, under both error policies; check batch bounds and schemas, that whatever decoded can be
// encoded, and that whatever decodes with a declared schema survives an encode/decode round
// trip unchanged. A codec plugs in through a traits struct:
//   struct Traits {
//     using Decoder = ...;                                   // Decoder::Make(DecodeOptions)
//     static void Configure(uint8_t control, DecodeOptions*);  // format-specific knobs
//     static std::string Encode(const Batch&, const DecodeOptions&);  // same dialect
//   };
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/core/log.h"
#include "sluice/io/format.h"

namespace sluice_fuzz {

using sluice::BatchPtr;
using sluice::Column;
using sluice::TypeId;
using sluice::io::DecodeOptions;
using sluice::io::OnError;

inline bool SameCell(const Column& a, int64_t i, const Column& b, int64_t j) {
  if (a.IsNull(i) != b.IsNull(j)) return false;
  if (a.IsNull(i)) return true;
  switch (a.type()) {
    case TypeId::kBool:
      return a.GetBool(i) == b.GetBool(j);
    case TypeId::kFloat64: {
      const double x = a.GetFloat64(i);
      const double y = b.GetFloat64(j);
      return (std::isnan(x) && std::isnan(y)) || std::memcmp(&x, &y, sizeof(x)) == 0;
    }
    case TypeId::kInt64:
    case TypeId::kTimestamp:
      return a.GetInt64(i) == b.GetInt64(j);
    default:
      return a.GetView(i) == b.GetView(j);
  }
}

// Returns true if the rows of `a` and `b` (each a list of batches) are equal.
inline bool SameRows(const std::vector<BatchPtr>& a, const std::vector<BatchPtr>& b) {
  std::vector<std::pair<const sluice::Batch*, int64_t>> ra;
  std::vector<std::pair<const sluice::Batch*, int64_t>> rb;
  for (const auto& x : a) {
    for (int64_t r = 0; r < x->num_rows(); ++r) ra.emplace_back(x.get(), r);
  }
  for (const auto& x : b) {
    for (int64_t r = 0; r < x->num_rows(); ++r) rb.emplace_back(x.get(), r);
  }
  if (ra.size() != rb.size()) return false;
  for (size_t k = 0; k < ra.size(); ++k) {
    for (int c = 0; c < ra[k].first->num_columns(); ++c) {
      if (!SameCell(ra[k].first->column(c), ra[k].second, rb[k].first->column(c), rb[k].second)) {
        return false;
      }
    }
  }
  return true;
}

template <typename Traits>
bool Decode(const DecodeOptions& options, std::string_view first, std::string_view second,
            std::vector<BatchPtr>* out, int64_t* skipped = nullptr) {
  auto dec = Traits::Decoder::Make(options);
  if (!dec.ok()) __builtin_trap();
  if (!(*dec)->Feed(first, out).ok()) return false;
  if (!(*dec)->Feed(second, out).ok()) return false;
  if (!(*dec)->Finish(out).ok()) return false;
  for (const auto& b : *out) {
    if (b->num_rows() == 0 || b->num_rows() > options.batch_rows) __builtin_trap();
    if (b->schema() != (*dec)->schema()) __builtin_trap();
  }
  if (skipped != nullptr) *skipped = (*dec)->skipped_rows();
  return true;
}

// With on_error skip, every record skipped is reported once to on_skip (what a dead-letter
// output gets), with a line number and text that are the input's.
template <typename Traits>
void CheckSkipsReported(DecodeOptions options, std::string_view first, std::string_view second) {
  const std::string input = std::string(first) + std::string(second);
  int64_t reported = 0;
  options.on_skip = [&](int64_t line, const sluice::Status& error, std::string_view record) {
    ++reported;
    if (line < 1 || error.ok()) __builtin_trap();
    if (input.find(record) == std::string::npos) __builtin_trap();
  };
  std::vector<BatchPtr> out;
  int64_t skipped = -1;
  if (Decode<Traits>(options, first, second, &out, &skipped) && reported != skipped) {
    __builtin_trap();
  }
}

template <typename Traits>
int FuzzTextCodec(const uint8_t* data, size_t size) {
  // Warnings (a GeoJSON written in another CRS than WGS 84, ...) are about the data, not bugs:
  // millions of them would only slow the fuzzer down.
  static const bool quiet = (sluice::SetLogLevel(sluice::LogLevel::kError), true);
  (void)quiet;
  if (size == 0) return 0;
  const uint8_t control = data[0];
  const std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);
  const size_t split = std::min<size_t>(control, input.size());
  const std::string_view first = input.substr(0, split);
  const std::string_view second = input.substr(split);

  DecodeOptions options;
  options.batch_rows = 3;
  options.infer_rows = 4;
  options.on_error = (control & 4) != 0 ? OnError::kSkip : OnError::kFail;
  Traits::Configure(control, &options);

  // Inferred schema.
  std::vector<BatchPtr> inferred;
  Decode<Traits>(options, first, second, &inferred);

  // Declared schema with every type.
  options.schema = sluice::MakeSchema({{"i", TypeId::kInt64},
                                       {"s", TypeId::kString},
                                       {"f", TypeId::kFloat64},
                                       {"b", TypeId::kBool},
                                       {"t", TypeId::kTimestamp},
                                       {"y", TypeId::kBytes},
                                       {"g", TypeId::kGeometry},
                                       {"j", TypeId::kJson}});
  options.header = false;
  std::vector<BatchPtr> declared;
  const bool declared_ok = Decode<Traits>(options, first, second, &declared);
  if (options.on_error == OnError::kSkip) CheckSkipsReported<Traits>(options, first, second);

  // Encoding whatever was decoded must work, whatever the values.
  for (const auto* list : {&inferred, &declared}) {
    for (const auto& b : *list) (void)Traits::Encode(*b, options);
  }

  // Whatever decodes survives an encode/decode round trip unchanged.
  if (declared_ok) {
    std::string text;
    for (const auto& b : declared) text += Traits::Encode(*b, options);
    std::vector<BatchPtr> again;
    if (!Decode<Traits>(options, text, "", &again)) __builtin_trap();
    if (!SameRows(declared, again)) __builtin_trap();
  }
  return 0;
}

}  // namespace sluice_fuzz
