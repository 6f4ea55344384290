// Fuzz the S3 client's XML readers (s3_client.h): ListObjects pages, <Error> documents (also as
// the body of a failed HTTP answer) and the element text used for UploadId. S3 answers come from
// the network, so any bytes must give a value or an error: no crash, no hang, no UB, and the
// invariants below. The first byte picks the HTTP status and the tag looked up.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "sluice/connectors/objectstore/s3_client.h"

namespace {

// Returns true if `s` is well-formed UTF-8 (no overlong forms, surrogates or values past
// U+10FFFF).
bool IsUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;  // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000)) return false;
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n + 1;
  }
  return true;
}

// An S3 status message is one line of bounded length, whatever the body held.
void CheckOneLine(const sluice::Status& st) {
  const std::string& m = st.message();
  if (m.find_first_of("\r\n\t") != std::string::npos) __builtin_trap();
  if (m.size() > 503) __builtin_trap();  // 500 characters and "..."
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace sluice;
  if (size == 0) return 0;
  const uint8_t control = data[0];
  const std::string_view xml(reinterpret_cast<const char*>(data + 1), size - 1);
  // Decoding entities of well-formed UTF-8 must give well-formed UTF-8: keys from a listing end
  // up in manifests, logs and the next request's URL.
  const bool utf8_in = IsUtf8(xml);

  auto page = s3::ParseListObjects(xml);
  if (page.ok()) {
    for (const auto& object : page->objects) {
      if (utf8_in && (!IsUtf8(object.key) || !IsUtf8(object.etag))) __builtin_trap();
      (void)s3::UriEncode(object.key, true);
    }
    if (utf8_in && !IsUtf8(page->next_marker)) __builtin_trap();
  } else {
    CheckOneLine(page.status());
  }

  const s3::S3Error error = s3::ParseError(xml);
  if (utf8_in && (!IsUtf8(error.code) || !IsUtf8(error.message))) __builtin_trap();
  static constexpr long kStatuses[] = {200, 400, 403, 404, 409, 429, 500, 503};
  const long status = kStatuses[control % 8];
  const Status st = s3::StatusFromHttp("GET", "s3://bucket/key", status, xml);
  if (st.ok()) __builtin_trap();  // a failed answer is never OK
  CheckOneLine(st);

  static constexpr std::string_view kTags[] = {"UploadId", "Key", "Code", "ETag", "A", ""};
  const std::string text = s3::XmlText(xml, kTags[(control >> 3) % 6]);
  if (utf8_in && !IsUtf8(text)) __builtin_trap();
  if (text.size() > xml.size()) __builtin_trap();  // decoding never grows the text
  return 0;
}
