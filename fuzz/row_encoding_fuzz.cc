// Fuzz the row encoding the lookup transform reads back from Redis (group_key.h): the first
// byte picks up to four column types, the rest is the encoded row. KeyEncodingValid must accept
// exactly what DecodeKey can read: when it does, decoding and encoding again gives the same
// bytes; when it does not, nothing is decoded. Crashes, overreads and UB are failures.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "sluice/core/batch.h"
#include "sluice/transforms/group_key.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using sluice::TypeId;
  if (size < 1) return 0;
  constexpr TypeId kTypes[] = {TypeId::kBool,   TypeId::kInt64,     TypeId::kFloat64,
                               TypeId::kString, TypeId::kTimestamp, TypeId::kJson,
                               TypeId::kBytes,  TypeId::kString};
  const int columns = 1 + (data[0] & 3);
  std::vector<TypeId> types;
  for (int c = 0; c < columns; ++c) types.push_back(kTypes[(data[0] >> (2 + c % 3 * 2)) & 7]);
  const std::string_view bytes(reinterpret_cast<const char*>(data + 1), size - 1);
  if (!sluice::transforms_internal::KeyEncodingValid(bytes, types)) return 0;
  std::vector<sluice::ColumnBuilder> builders;
  std::vector<sluice::Field> fields;
  for (int c = 0; c < columns; ++c) {
    builders.emplace_back(types[static_cast<size_t>(c)], 1);
    fields.push_back({"c" + std::to_string(c), types[static_cast<size_t>(c)], true});
  }
  sluice::transforms_internal::DecodeKey(bytes, &builders);
  std::vector<sluice::Column> cols;
  for (auto& b : builders) cols.push_back(b.Finish());
  const auto batch =
      sluice::Batch::MakeUnchecked(sluice::MakeSchema(fields), std::move(cols), 1, {});
  std::vector<int> all;
  for (int c = 0; c < columns; ++c) all.push_back(c);
  std::string again;
  sluice::transforms_internal::EncodeKey(*batch, all, 0, &again);
  // A bool's byte and a null's missing value are canonical, so the round trip is exact.
  if (again != bytes) std::abort();
  return 0;
}
