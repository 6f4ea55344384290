#include "sluice/io/crypto_api.h"

namespace sluice {

DynamicLibrary& CryptoLibrary() {
  static DynamicLibrary library(SLUICE_CRYPTO_SONAME, "libssl3");
  return library;
}

}  // namespace sluice
