#pragma once

#include <string>
#include <string_view>

#include "sluice/core/status.h"

namespace sluice {

/// Open libcrypto if it is not yet open. Code that will hash calls this first (making a node or a
/// client), so that a missing library is an error naming the package to install.
Status LoadSha256();

/// Return the SHA-256 of `data` as 64 lower-case hex digits (OpenSSL's libcrypto, opened on first
/// use: io/crypto_api.h).
std::string Sha256Hex(std::string_view data);

/// Compute a SHA-256 over data given in pieces. Not thread-safe.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  /// Add `data` to the digest.
  void Update(std::string_view data);
  /// Return the digest as 64 lower-case hex digits; the object is then reset for reuse.
  std::string HexDigest();

 private:
  void* ctx_;  // EVP_MD_CTX*
};

}  // namespace sluice
