#pragma once

#include <string>

#include "sluice/core/batch.h"
#include "sluice/core/result.h"
#include "sluice/engine/registry.h"

namespace sluice {

/// Column names of the batches the `encode` transform emits: one row per encoded object.
/// Columns whose names start with '_' are metadata: `encode` never writes them into objects,
/// and sinks read them for key templates (`_database`, `_table` set by the archiver).
namespace encoded {
inline constexpr const char* kObject = "_object";       ///< bytes: the compressed payload
inline constexpr const char* kRows = "_rows";           ///< int64: rows in the object
inline constexpr const char* kRawBytes = "_raw_bytes";  ///< int64: bytes before compression
inline constexpr const char* kFirstKey = "_first_key";  ///< string: key of the first row
inline constexpr const char* kLastKey = "_last_key";    ///< string: key of the last row
inline constexpr const char* kExtension = "_ext";       ///< string: ".jsonl.gz", ".csv.zst", ...
inline constexpr const char* kDatabase = "_database";   ///< string: copied from the input
inline constexpr const char* kTable = "_table";         ///< string: copied from the input

/// Return the schema of encoded batches.
SchemaPtr Schema();
/// Return true when `schema` is that of encoded batches.
bool IsEncoded(const sluice::Schema& schema);
}  // namespace encoded

/// Return the text of row `row` of `column` as used in object keys ("" for null): integers in
/// decimal, timestamps as compact UTC ("20240101T000000Z"), strings as they are.
std::string KeyText(const Column& column, int64_t row);

/// Register `encode`: serialize each batch to JSONL or CSV and compress it (gzip or zstd), one
/// object per batch. Stateless, so `parallelism: N` compresses N batches at once.
void RegisterEncodeNode(NodeRegistry* registry);

}  // namespace sluice
