#include "sluice/io/compression.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "sluice/io/stream.h"
#include "sluice/testing/matchers.h"

namespace sluice::io {
namespace {

using ::sluice::testing::StatusIs;
using ::testing::HasSubstr;

std::string SampleText(size_t n) {
  std::string s;
  std::mt19937 rng(42);
  while (s.size() < n) s += "row " + std::to_string(rng() % 1000) + " lorem ipsum dolor\n";
  s.resize(n);
  return s;
}

// Returns an InputStream over an in-memory buffer that yields at most `piece` bytes per Read.
class StringStream final : public InputStream {
 public:
  StringStream(std::string data, size_t piece) : data_(std::move(data)), piece_(piece) {}
  Result<size_t> Read(char* out, size_t capacity) override {
    const size_t n = std::min({capacity, piece_, data_.size() - pos_});
    std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::string data_;
  size_t piece_;
  size_t pos_ = 0;
};

Result<std::string> ReadAll(InputStream* s, size_t chunk) {
  std::string out;
  std::vector<char> buf(chunk);
  while (true) {
    SLUICE_ASSIGN_OR_RETURN(size_t n, s->Read(buf.data(), buf.size()));
    if (n == 0) return out;
    out.append(buf.data(), n);
  }
}

TEST(CodecTest, NamesAndPaths) {
  EXPECT_EQ(CodecFromPath("a/b.jsonl.gz"), Codec::kGzip);
  EXPECT_EQ(CodecFromPath("b.csv.zst"), Codec::kZstd);
  EXPECT_EQ(CodecFromPath("b.csv"), Codec::kNone);
  EXPECT_EQ(*ParseCodec("gz"), Codec::kGzip);
  EXPECT_EQ(*ParseCodec("zstd"), Codec::kZstd);
  EXPECT_THAT(ParseCodec("lz4"), StatusIs(StatusCode::kInvalidArgument, HasSubstr("'lz4'")));
  EXPECT_EQ(CodecExtension(Codec::kZstd), ".zst");
}

class CodecRoundTrip : public ::testing::TestWithParam<Codec> {};

TEST_P(CodecRoundTrip, WholeBuffer) {
  for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{3} << 20}) {
    const std::string text = SampleText(n);
    ASSERT_OK_AND_ASSIGN(std::string packed, Compress(GetParam(), text, 9));
    ASSERT_OK_AND_ASSIGN(std::string unpacked, Decompress(GetParam(), packed));
    EXPECT_EQ(unpacked, text) << "size " << n;
  }
}

TEST_P(CodecRoundTrip, BufferCompressorReusedForBuffersOfEverySize) {
  // Its output buffer is kept between calls: a smaller buffer after a larger one must not
  // carry the larger one's bytes, and each result is exactly what Compress makes.
  BufferCompressor compressor(GetParam(), 6);
  for (size_t n : {size_t{3} << 20, size_t{10}, size_t{0}, size_t{1} << 20, size_t{5} << 20}) {
    const std::string text = SampleText(n);
    ASSERT_OK_AND_ASSIGN(std::string packed, compressor.Compress(text));
    ASSERT_OK_AND_ASSIGN(std::string alone, Compress(GetParam(), text, 6));
    EXPECT_EQ(packed, alone) << "size " << n;
    ASSERT_OK_AND_ASSIGN(std::string unpacked, Decompress(GetParam(), packed));
    EXPECT_EQ(unpacked, text) << "size " << n;
    EXPECT_LE(packed.capacity(), packed.size() + 64) << "a result holds only its bytes";
  }
}

TEST_P(CodecRoundTrip, StreamingCompressorInPieces) {
  const std::string text = SampleText(5 << 20);
  ASSERT_OK_AND_ASSIGN(auto c, Compressor::Make(GetParam()));
  std::string packed;
  for (size_t pos = 0; pos < text.size(); pos += 77777) {
    ASSERT_OK(c->Write(std::string_view(text).substr(pos, 77777), &packed));
  }
  ASSERT_OK(c->Finish(&packed));
  if (GetParam() != Codec::kNone) {
    EXPECT_LT(packed.size(), text.size() / 3);
  }
  // Read back through a stream that delivers compressed bytes in odd pieces.
  ASSERT_OK_AND_ASSIGN(auto s, MakeDecompressingStream(std::make_unique<StringStream>(packed, 4099),
                                                       GetParam(), 1000));
  ASSERT_OK_AND_ASSIGN(std::string unpacked, ReadAll(s.get(), 333));
  EXPECT_EQ(unpacked, text);
}

TEST_P(CodecRoundTrip, EmptyStreamIsValid) {
  ASSERT_OK_AND_ASSIGN(auto c, Compressor::Make(GetParam()));
  std::string packed;
  ASSERT_OK(c->Finish(&packed));
  ASSERT_OK_AND_ASSIGN(std::string unpacked, Decompress(GetParam(), packed));
  EXPECT_EQ(unpacked, "");
}

TEST_P(CodecRoundTrip, ConcatenatedMembersOrFrames) {
  ASSERT_OK_AND_ASSIGN(std::string a, Compress(GetParam(), "first member\n"));
  ASSERT_OK_AND_ASSIGN(std::string b, Compress(GetParam(), "second member\n"));
  ASSERT_OK_AND_ASSIGN(std::string c, Compress(GetParam(), ""));
  ASSERT_OK_AND_ASSIGN(std::string unpacked, Decompress(GetParam(), a + c + b));
  EXPECT_EQ(unpacked, "first member\nsecond member\n");
}

INSTANTIATE_TEST_SUITE_P(AllCodecs, CodecRoundTrip,
                         ::testing::Values(Codec::kNone, Codec::kGzip, Codec::kZstd),
                         [](const auto& info) { return std::string(CodecName(info.param)); });

TEST(GzipTest, MultiMemberStreamReadOneByteAtATime) {
  ASSERT_OK_AND_ASSIGN(std::string a, Compress(Codec::kGzip, SampleText(5000)));
  ASSERT_OK_AND_ASSIGN(std::string b, Compress(Codec::kGzip, "tail\n"));
  ASSERT_OK_AND_ASSIGN(
      auto s, MakeDecompressingStream(std::make_unique<StringStream>(a + b, 1), Codec::kGzip, 1));
  ASSERT_OK_AND_ASSIGN(std::string unpacked, ReadAll(s.get(), 7));
  EXPECT_EQ(unpacked, SampleText(5000) + "tail\n");
}

TEST(GzipTest, StreamingWriterEmitsMembersOfAtMostOneMiB) {
  const std::string text = SampleText(3 << 20);
  ASSERT_OK_AND_ASSIGN(auto c, Compressor::Make(Codec::kGzip, 1));
  std::string packed;
  ASSERT_OK(c->Write(text, &packed));
  ASSERT_OK(c->Finish(&packed));
  // Three members: each starts with the gzip magic 1f 8b 08.
  size_t members = 0;
  for (size_t p = 0; (p = packed.find("\x1f\x8b\x08", p)) != std::string::npos; ++p) members++;
  EXPECT_GE(members, 3u);
  ASSERT_OK_AND_ASSIGN(std::string unpacked, Decompress(Codec::kGzip, packed));
  EXPECT_EQ(unpacked, text);
}

TEST(GzipTest, TruncatedInputIsAnError) {
  ASSERT_OK_AND_ASSIGN(std::string packed, Compress(Codec::kGzip, SampleText(10000)));
  packed.resize(packed.size() - 5);
  EXPECT_THAT(Decompress(Codec::kGzip, packed),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("truncated gzip")));
}

TEST(GzipTest, CorruptInputIsAnError) {
  EXPECT_THAT(Decompress(Codec::kGzip, "this is not gzip at all"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("corrupt gzip data")));
  ASSERT_OK_AND_ASSIGN(std::string packed, Compress(Codec::kGzip, SampleText(10000)));
  packed[packed.size() - 6] ^= 0x55;  // inside the CRC-32 trailer
  EXPECT_THAT(Decompress(Codec::kGzip, packed),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("corrupt gzip data")));
}

TEST(ZstdTest, TruncatedAndCorruptInputAreErrors) {
  ASSERT_OK_AND_ASSIGN(std::string packed, Compress(Codec::kZstd, SampleText(10000)));
  EXPECT_THAT(Decompress(Codec::kZstd, packed.substr(0, packed.size() - 3)),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("truncated zstd")));
  EXPECT_THAT(Decompress(Codec::kZstd, "garbage, not zstd"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("corrupt zstd data")));
}

TEST(StreamTest, MissingFileIsNotFound) {
  EXPECT_THAT(OpenFileStream("/nonexistent/dir/file.csv"),
              StatusIs(StatusCode::kNotFound, HasSubstr("/nonexistent/dir/file.csv")));
}

}  // namespace
}  // namespace sluice::io
