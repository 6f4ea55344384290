// Fuzzes the archiver's state-table array parser (archive_rows.h), which reads back the ctids
// and keys a killed run recorded: on any input ParseArrayLiteral must return a value or an
// error, never crash; what it parses must survive TextArrayLiteral and a second parse
// unchanged (NULL stays NULL, the text "NULL" stays text).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "sluice/connectors/postgres/archive_rows.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = sluice::pg_archive::ParseArrayLiteral(text);
  if (!parsed.ok()) return 0;
  const std::string literal = sluice::pg_archive::TextArrayLiteral(*parsed);
  auto again = sluice::pg_archive::ParseArrayLiteral(literal);
  if (!again.ok() || *again != *parsed) std::abort();
  return 0;
}
