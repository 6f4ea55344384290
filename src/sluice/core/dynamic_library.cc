#include "sluice/core/dynamic_library.h"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace sluice {

Status DynamicLibrary::Load() {
  std::call_once(once_, [this] {
    // RTLD_LOCAL: its symbols serve only lookups through this handle, so that two libraries
    // with functions of the same name (libcurl built on OpenSSL and the GnuTLS one PROJ uses)
    // never stand in for each other.
    handle_ = dlopen(soname_, RTLD_NOW | RTLD_LOCAL);
    if (handle_ == nullptr) {
      const char* why = dlerror();
      error_ = why != nullptr ? why : soname_;
    }
  });
  if (handle_ == nullptr) {
    return Status::NotFound(
        "cannot load {}: {} (install the package that provides it; on Debian 12: apt-get "
        "install -y {})",
        soname_, error_, package_);
  }
  return Status::OK();
}

void* DynamicLibrary::Symbol(const char* name) {
  Status st = Load();
  void* address = st.ok() ? dlsym(handle_, name) : nullptr;
  if (address == nullptr) {
    std::fprintf(stderr, "sluice: %s\n",
                 st.ok() ? (std::string(soname_) + " has no function " + name).c_str()
                         : st.message().c_str());
    std::abort();
  }
  return address;
}

}  // namespace sluice
