// Fuzzes the CSV decoder and encoder: see text_codec_fuzz.h. Control-byte bits: 1 header,
// 2 ';' as the delimiter, 4 skip bad rows.
#include "sluice/io/csv.h"
#include "text_codec_fuzz.h"

namespace {

struct CsvTraits {
  using Decoder = sluice::io::CsvDecoder;
  static void Configure(uint8_t control, sluice::io::DecodeOptions* options) {
    options->header = (control & 1) != 0;
    options->delimiter = (control & 2) != 0 ? ';' : ',';
  }
  static std::string Encode(const sluice::Batch& batch, const sluice::io::DecodeOptions& options) {
    sluice::io::EncodeOptions encode;
    encode.delimiter = options.delimiter;
    encode.header = false;
    sluice::io::CsvEncoder encoder(batch.schema(), encode);
    std::string text;
    encoder.Encode(batch, &text);
    return text;
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return sluice_fuzz::FuzzTextCodec<CsvTraits>(data, size);
}
