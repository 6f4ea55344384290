#pragma once

// OpenSSL's libcrypto for SHA-256 (sha256.cc), opened on first use (core/dynamic_library.h).
// Loading it at start-up cost every process about 3 M instructions — 40 % of what the dynamic
// loader did before main(), as Debian links it with BIND_NOW — for the object store's digests
// alone. Include this rather than <openssl/evp.h>; every function called is a macro below (a
// new one is a link error until added).

#include <openssl/evp.h>

#include "sluice/core/dynamic_library.h"

namespace sluice {

DynamicLibrary& CryptoLibrary();

}  // namespace sluice

// clang-format off
#define EVP_DigestFinal_ex SLUICE_DYNAMIC_FN(::sluice::CryptoLibrary(), EVP_DigestFinal_ex)
#define EVP_DigestInit_ex SLUICE_DYNAMIC_FN(::sluice::CryptoLibrary(), EVP_DigestInit_ex)
#define EVP_DigestUpdate SLUICE_DYNAMIC_FN(::sluice::CryptoLibrary(), EVP_DigestUpdate)
#define EVP_MD_CTX_free SLUICE_DYNAMIC_FN(::sluice::CryptoLibrary(), EVP_MD_CTX_free)
#define EVP_MD_CTX_new SLUICE_DYNAMIC_FN(::sluice::CryptoLibrary(), EVP_MD_CTX_new)
#define EVP_sha256 SLUICE_DYNAMIC_FN(::sluice::CryptoLibrary(), EVP_sha256)
// clang-format on
