#pragma once

#include "sluice/core/schema.h"

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
inline constexpr const char* kDate = "_date";  ///< string: YYYY-MM-DD for {date}, from the input

/// Return the schema of encoded batches.
SchemaPtr Schema();
/// Return true when `schema` is that of encoded batches.
bool IsEncoded(const sluice::Schema& schema);
}  // namespace encoded

}  // namespace sluice
