#pragma once

// Shared libraries opened on first use. PROJ, GEOS, libcurl and libpq with what they pull in
// (TIFF, GnuTLS, Kerberos, LDAP, ...) took 10 of the 13 ms the dynamic loader spent before
// main(); every run and every `sluice --version` paid it, whether or not it had a geo node, an
// S3 store or a PostgreSQL connection. The code using such a library includes its header
// (geo_api.h, curl_api.h, pq_api.h), in which each function it calls is a macro of the same
// name that looks the function up once per call site (SLUICE_DYNAMIC_FN):
//
//   #define GEOSArea_r SLUICE_DYNAMIC_FN(GeosLibrary(), GEOSArea_r)
//
// so calls read as before and keep the header's types; a function called without its macro is
// an undefined reference when linking, not a silent direct link.

#include <mutex>
#include <string>

#include "sluice/core/status.h"

namespace sluice {

class DynamicLibrary {
 public:
  /// `soname` is what to open (the SONAME CMake read from the library built against);
  /// `package` the Debian 12 package that installs it, for the error (another release may
  /// name it differently: the error says which file is missing first).
  DynamicLibrary(const char* soname, const char* package) : soname_(soname), package_(package) {}
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;

  /// Open the library if it is not yet open. Code about to use it calls this first (making a
  /// node, a client) so that a missing library is an error naming the package to install.
  Status Load();
  /// Return the address of `name`. The library is opened first if need be; if it cannot be, or
  /// lacks `name`, the process ends with a message: callers are expected to have Load()ed it.
  void* Symbol(const char* name);

  const char* soname() const { return soname_; }

 private:
  const char* soname_;
  const char* package_;
  std::once_flag once_;
  void* handle_ = nullptr;  // set once, under once_
  std::string error_;       // set once, under once_
};

}  // namespace sluice

/// The function `fn` of `library` (a DynamicLibrary&), as a pointer of the type its header
/// declares, looked up on the first call at this call site.
#define SLUICE_DYNAMIC_FN(library, fn)                                                    \
  ([]() noexcept {                                                                        \
    static const auto address = reinterpret_cast<decltype(&::fn)>((library).Symbol(#fn)); \
    return address;                                                                       \
  }())
