// Fuzzes the JSONL decoder and encoder: see text_codec_fuzz.h. Control-byte bit 4: skip bad
// rows.
#include "sluice/io/jsonl.h"
#include "text_codec_fuzz.h"

namespace {

struct JsonlTraits {
  using Decoder = sluice::io::JsonlDecoder;
  static void Configure(uint8_t, sluice::io::DecodeOptions*) {}
  static std::string Encode(const sluice::Batch& batch, const sluice::io::DecodeOptions&) {
    sluice::io::JsonlEncoder encoder(batch.schema());
    std::string text;
    encoder.Encode(batch, &text);
    return text;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return sluice_fuzz::FuzzTextCodec<JsonlTraits>(data, size);
}
