#pragma once

// libcurl for the S3 client and the webhook poster, opened on first use
// (core/dynamic_library.h): a run without an S3 store or a webhook does not load it, nor the
// TLS, Kerberos, LDAP and SSH libraries it brings. Include this rather than <curl/curl.h>;
// every function called is a macro below (a new one is a link error until added).

#include <curl/curl.h>

#include "sluice/core/dynamic_library.h"

namespace sluice::http {

DynamicLibrary& CurlLibrary();
/// Open libcurl and initialise it (curl_global_init), once; the error names the package to
/// install. Call it before any other curl function.
Status LoadCurl();

}  // namespace sluice::http

// clang-format off
#define curl_easy_cleanup SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_cleanup)
#undef curl_easy_getinfo  // curl.h's, which checks for three arguments: so does this
#define curl_easy_getinfo(handle, info, arg) SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_getinfo)(handle, info, arg)
#define curl_easy_init SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_init)
#define curl_easy_perform SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_perform)
#define curl_easy_reset SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_reset)
#undef curl_easy_setopt  // curl.h's, which checks for three arguments: so does this
#define curl_easy_setopt(handle, option, param) SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_setopt)(handle, option, param)
#define curl_easy_strerror SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_easy_strerror)
#define curl_global_init SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_global_init)
#define curl_slist_append SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_slist_append)
#define curl_slist_free_all SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_slist_free_all)
#define curl_url SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_url)
#define curl_url_cleanup SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_url_cleanup)
#define curl_url_set SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_url_set)
#define curl_url_strerror SLUICE_DYNAMIC_FN(::sluice::http::CurlLibrary(), curl_url_strerror)
// clang-format on
