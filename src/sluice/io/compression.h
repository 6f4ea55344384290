#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sluice/core/result.h"

namespace sluice::io {

/// A compression format for files and objects.
enum class Codec : uint8_t { kNone, kGzip, kZstd };

/// Return "none", "gzip" or "zstd".
std::string_view CodecName(Codec codec);
/// Parse "none", "gzip" (or "gz") or "zstd" (or "zst").
Result<Codec> ParseCodec(std::string_view name);
/// Return the codec implied by the extension of `path`: ".gz" is gzip, ".zst" is zstd, else none.
Codec CodecFromPath(std::string_view path);
/// Return the file extension of `codec` with its dot (".gz", ".zst"), or "" for none.
std::string_view CodecExtension(Codec codec);

/// Compression level meaning "the codec's default" (gzip 6, zstd 3).
inline constexpr int kDefaultLevel = 0;

/// Return `data` compressed as one gzip member or one zstd frame (with a content checksum).
/// `level` is clamped to the codec's range (gzip 1-12 via libdeflate, zstd 1-19); kDefaultLevel
/// picks the codec default. kNone returns a copy.
Result<std::string> Compress(Codec codec, std::string_view data, int level = kDefaultLevel);

/// Compress whole buffers one after another as Compress does, keeping the codec's state and a
/// worst-case output buffer between calls: a fresh buffer the size of the input, zero-filled
/// on every call, cost about a tenth of the compression itself in page faults and memset. The
/// result holds only its bytes. Not thread-safe.
class BufferCompressor {
 public:
  explicit BufferCompressor(Codec codec, int level = kDefaultLevel);
  ~BufferCompressor();
  BufferCompressor(const BufferCompressor&) = delete;
  BufferCompressor& operator=(const BufferCompressor&) = delete;

  Codec codec() const { return codec_; }
  int level() const { return level_; }
  Result<std::string> Compress(std::string_view data);

 private:
  struct Contexts;
  Codec codec_;
  int level_;
  std::unique_ptr<Contexts> contexts_;  // made at the first call
  std::string scratch_;                 // the worst-case output, reused
};

/// Return the decompressed content of a whole buffer: every gzip member or zstd frame it holds,
/// in order. A truncated or corrupt buffer is an error.
Result<std::string> Decompress(Codec codec, std::string_view data);

/// Compress a stream of bytes written in pieces (a file a sink appends to). Gzip output is a
/// sequence of members of up to 1 MiB of input each (a concatenation of members is a valid gzip
/// file); zstd output is one frame per Finish(). Not thread-safe.
class Compressor {
 public:
  /// Return a compressor for `codec` at `level` (see Compress for levels).
  static Result<std::unique_ptr<Compressor>> Make(Codec codec, int level = kDefaultLevel);
  virtual ~Compressor() = default;

  /// Compress `data` and append to `out` the compressed bytes that are ready; some may be held
  /// back until a later Write or Finish.
  virtual Status Write(std::string_view data, std::string* out) = 0;
  /// Append everything held back and end the stream, so that `out` (with what earlier calls
  /// appended) is a complete compressed file. A later Write starts a new member or frame.
  virtual Status Finish(std::string* out) = 0;
};

/// Decompress a stream of bytes that arrives in pieces, producing bounded output per call so
/// that a gzip bomb cannot exhaust memory. Gzip input may hold several members; zstd input
/// several frames. Not thread-safe.
class Decompressor {
 public:
  /// Return a decompressor for `codec`.
  static Result<std::unique_ptr<Decompressor>> Make(Codec codec);
  virtual ~Decompressor() = default;

  /// Decompress from the front of `*input` into `out[0, capacity)`, removing the bytes it
  /// consumed from `*input`. Return the number of bytes written: 0 only when it needs more
  /// input (then `*input` is empty).
  virtual Result<size_t> Read(std::string_view* input, char* out, size_t capacity) = 0;
  /// Check, once the input has ended, that it did not stop inside a member or frame.
  virtual Status Finish() = 0;
};

}  // namespace sluice::io
