#include "sluice/connectors/http/curl_api.h"

namespace sluice::http {

DynamicLibrary& CurlLibrary() {
  static DynamicLibrary library(SLUICE_CURL_SONAME, "libcurl4");
  return library;
}

Status LoadCurl() {
  static const Status loaded = []() -> Status {
    SLUICE_RETURN_NOT_OK(CurlLibrary().Load());
    const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) {
      return Status::Internal("curl_global_init: {}", curl_easy_strerror(code));
    }
    return Status::OK();
  }();
  return loaded;
}

}  // namespace sluice::http
