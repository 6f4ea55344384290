#include "sluice/connectors/postgres/pq_api.h"

namespace sluice::pg {

DynamicLibrary& PqLibrary() {
  static DynamicLibrary library(SLUICE_PQ_SONAME, "libpq5");
  return library;
}

Status LoadPq() { return PqLibrary().Load(); }

}  // namespace sluice::pg
