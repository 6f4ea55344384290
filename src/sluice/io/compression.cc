#include "sluice/io/compression.h"

#include <algorithm>
#include <cstring>

#include <libdeflate.h>
#include <zlib.h>
#include <zstd.h>

namespace sluice::io {

std::string_view CodecName(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return "none";
    case Codec::kGzip:
      return "gzip";
    case Codec::kZstd:
      return "zstd";
  }
  return "?";
}

Result<Codec> ParseCodec(std::string_view name) {
  if (name == "none") return Codec::kNone;
  if (name == "gzip" || name == "gz") return Codec::kGzip;
  if (name == "zstd" || name == "zst") return Codec::kZstd;
  return Status::Invalid("unknown compression '{}' (expected none, gzip or zstd)", name);
}

Codec CodecFromPath(std::string_view path) {
  if (path.ends_with(".gz")) return Codec::kGzip;
  if (path.ends_with(".zst")) return Codec::kZstd;
  return Codec::kNone;
}

std::string_view CodecExtension(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return "";
    case Codec::kGzip:
      return ".gz";
    case Codec::kZstd:
      return ".zst";
  }
  return "";
}

namespace {

// Gzip members hold at most this much input, so a streaming writer holds back at most this much.
constexpr size_t kGzipMemberInput = size_t{1} << 20;

int GzipLevel(int level) { return level == kDefaultLevel ? 6 : std::clamp(level, 1, 12); }
int ZstdLevel(int level) { return level == kDefaultLevel ? 3 : std::clamp(level, 1, 19); }

// Frees a libdeflate compressor.
struct DeflateDeleter {
  void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
};
using DeflatePtr = std::unique_ptr<libdeflate_compressor, DeflateDeleter>;

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
using CCtxPtr = std::unique_ptr<ZSTD_CCtx, CCtxDeleter>;

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};
using DCtxPtr = std::unique_ptr<ZSTD_DCtx, DCtxDeleter>;

Result<DeflatePtr> MakeDeflate(int level) {
  DeflatePtr c(libdeflate_alloc_compressor(GzipLevel(level)));
  if (c == nullptr) return Status::Internal("libdeflate: cannot allocate a compressor");
  return c;
}

// Appends one gzip member holding `data` to `out`.
Status AppendGzipMember(libdeflate_compressor* c, std::string_view data, std::string* out) {
  const size_t bound = libdeflate_gzip_compress_bound(c, data.size());
  const size_t start = out->size();
  out->resize(start + bound);
  const size_t n =
      libdeflate_gzip_compress(c, data.data(), data.size(), out->data() + start, bound);
  if (n == 0) {
    out->resize(start);
    return Status::Internal("libdeflate: gzip compression of {} bytes failed", data.size());
  }
  out->resize(start + n);
  return Status::OK();
}

Result<CCtxPtr> MakeCCtx(int level) {
  CCtxPtr c(ZSTD_createCCtx());
  if (c == nullptr) return Status::Internal("zstd: cannot allocate a compression context");
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_compressionLevel, ZstdLevel(level));
  ZSTD_CCtx_setParameter(c.get(), ZSTD_c_checksumFlag, 1);
  return c;
}

// Runs ZSTD_compressStream2 over all of `data` with `mode`, appending output to `out`.
Status ZstdStream(ZSTD_CCtx* c, std::string_view data, ZSTD_EndDirective mode, std::string* out) {
  ZSTD_inBuffer in{data.data(), data.size(), 0};
  const size_t step = ZSTD_CStreamOutSize();
  while (true) {
    const size_t start = out->size();
    out->resize(start + step);
    ZSTD_outBuffer ob{out->data() + start, step, 0};
    const size_t r = ZSTD_compressStream2(c, &ob, &in, mode);
    out->resize(start + ob.pos);
    if (ZSTD_isError(r)) return Status::Internal("zstd: {}", ZSTD_getErrorName(r));
    const bool input_done = in.pos == in.size;
    if (mode == ZSTD_e_continue ? input_done : (input_done && r == 0)) break;
  }
  return Status::OK();
}

class NoneCompressor final : public Compressor {
 public:
  Status Write(std::string_view data, std::string* out) override {
    out->append(data);
    return Status::OK();
  }
  Status Finish(std::string* out) override { return Status::OK(); }
};

class GzipCompressor final : public Compressor {
 public:
  explicit GzipCompressor(DeflatePtr c) : c_(std::move(c)) {}

  Status Write(std::string_view data, std::string* out) override {
    while (!data.empty()) {
      if (pending_.empty() && data.size() >= kGzipMemberInput) {
        SLUICE_RETURN_NOT_OK(AppendGzipMember(c_.get(), data.substr(0, kGzipMemberInput), out));
        members_++;
        data.remove_prefix(kGzipMemberInput);
        continue;
      }
      const size_t take = std::min(data.size(), kGzipMemberInput - pending_.size());
      pending_.append(data.substr(0, take));
      data.remove_prefix(take);
      if (pending_.size() == kGzipMemberInput) SLUICE_RETURN_NOT_OK(FlushPending(out));
    }
    return Status::OK();
  }

  Status Finish(std::string* out) override {
    // An empty stream still gets one (empty) member, so that the file is valid gzip.
    if (!pending_.empty() || members_ == 0) SLUICE_RETURN_NOT_OK(FlushPending(out));
    members_ = 0;
    return Status::OK();
  }

 private:
  Status FlushPending(std::string* out) {
    SLUICE_RETURN_NOT_OK(AppendGzipMember(c_.get(), pending_, out));
    pending_.clear();
    members_++;
    return Status::OK();
  }

  DeflatePtr c_;
  std::string pending_;
  int64_t members_ = 0;
};

class ZstdCompressor final : public Compressor {
 public:
  explicit ZstdCompressor(CCtxPtr c) : c_(std::move(c)) {}

  Status Write(std::string_view data, std::string* out) override {
    return ZstdStream(c_.get(), data, ZSTD_e_continue, out);
  }
  Status Finish(std::string* out) override { return ZstdStream(c_.get(), {}, ZSTD_e_end, out); }

 private:
  CCtxPtr c_;
};

class GzipDecompressor final : public Decompressor {
 public:
  GzipDecompressor() = default;
  ~GzipDecompressor() override {
    if (initialized_) inflateEnd(&zs_);
  }

  Status Init() {
    std::memset(&zs_, 0, sizeof(zs_));
    // 15 + 16: a gzip wrapper (not zlib, not raw deflate) with the largest window.
    if (inflateInit2(&zs_, 15 + 16) != Z_OK) {
      return Status::Internal("zlib: cannot initialize a gzip decompressor");
    }
    initialized_ = true;
    return Status::OK();
  }

  Result<size_t> Read(std::string_view* input, char* out, size_t capacity) override {
    size_t produced = 0;
    while (produced < capacity) {
      if (input->empty() && !in_member_) break;  // between members: nothing can be pending
      const size_t avail_in = std::min<size_t>(input->size(), 1u << 30);
      const size_t avail_out = std::min<size_t>(capacity - produced, 1u << 30);
      zs_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(input->data()));
      zs_.avail_in = static_cast<uInt>(avail_in);
      zs_.next_out = reinterpret_cast<Bytef*>(out + produced);
      zs_.avail_out = static_cast<uInt>(avail_out);
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      const size_t consumed = avail_in - zs_.avail_in;
      const size_t written = avail_out - zs_.avail_out;
      input->remove_prefix(consumed);
      produced += written;
      if (consumed > 0) in_member_ = true;
      if (rc == Z_STREAM_END) {
        // A gzip file may be a concatenation of members: start over on the next one.
        in_member_ = false;
        inflateReset(&zs_);
        continue;
      }
      if (rc == Z_BUF_ERROR || (rc == Z_OK && consumed == 0 && written == 0)) break;
      if (rc != Z_OK) {
        return Status::Invalid("corrupt gzip data: {}", zs_.msg ? zs_.msg : "inflate failed");
      }
    }
    return produced;
  }

  Status Finish() override {
    if (in_member_) return Status::Invalid("truncated gzip data: the last member is incomplete");
    return Status::OK();
  }

 private:
  z_stream zs_;
  bool initialized_ = false;
  bool in_member_ = false;  // true once bytes of a member were consumed, until its end
};

class ZstdDecompressor final : public Decompressor {
 public:
  explicit ZstdDecompressor(DCtxPtr d) : d_(std::move(d)) {}

  Result<size_t> Read(std::string_view* input, char* out, size_t capacity) override {
    size_t produced = 0;
    while (produced < capacity) {
      ZSTD_inBuffer ib{input->data(), input->size(), 0};
      ZSTD_outBuffer ob{out + produced, capacity - produced, 0};
      const size_t r = ZSTD_decompressStream(d_.get(), &ob, &ib);
      if (ZSTD_isError(r)) return Status::Invalid("corrupt zstd data: {}", ZSTD_getErrorName(r));
      input->remove_prefix(ib.pos);
      produced += ob.pos;
      if (ib.pos > 0 || ob.pos > 0) in_frame_ = r != 0;
      if (ib.pos == 0 && ob.pos == 0) break;
    }
    return produced;
  }

  Status Finish() override {
    if (in_frame_) return Status::Invalid("truncated zstd data: the last frame is incomplete");
    return Status::OK();
  }

 private:
  DCtxPtr d_;
  bool in_frame_ = false;
};

class NoneDecompressor final : public Decompressor {
 public:
  Result<size_t> Read(std::string_view* input, char* out, size_t capacity) override {
    const size_t n = std::min(capacity, input->size());
    std::memcpy(out, input->data(), n);
    input->remove_prefix(n);
    return n;
  }
  Status Finish() override { return Status::OK(); }
};

}  // namespace

struct BufferCompressor::Contexts {
  DeflatePtr deflate;
  CCtxPtr zstd;
};

BufferCompressor::BufferCompressor(Codec codec, int level) : codec_(codec), level_(level) {}
BufferCompressor::~BufferCompressor() = default;

Result<std::string> BufferCompressor::Compress(std::string_view data) {
  if (codec_ == Codec::kNone) return std::string(data);
  if (contexts_ == nullptr) {
    auto made = std::make_unique<Contexts>();
    if (codec_ == Codec::kGzip) {
      SLUICE_ASSIGN_OR_RETURN(made->deflate, MakeDeflate(level_));
    } else {
      SLUICE_ASSIGN_OR_RETURN(made->zstd, MakeCCtx(level_));
    }
    contexts_ = std::move(made);
  }
  const size_t bound = codec_ == Codec::kGzip
                           ? libdeflate_gzip_compress_bound(contexts_->deflate.get(), data.size())
                           : ZSTD_compressBound(data.size());
  // Grown, never shrunk: only its first growth to a size touches (zero-fills) new pages.
  if (scratch_.size() < bound) scratch_.resize(bound);
  size_t n = 0;
  if (codec_ == Codec::kGzip) {
    n = libdeflate_gzip_compress(contexts_->deflate.get(), data.data(), data.size(),
                                 scratch_.data(), bound);
    if (n == 0)
      return Status::Internal("libdeflate: gzip compression of {} bytes failed", data.size());
  } else {
    n = ZSTD_compress2(contexts_->zstd.get(), scratch_.data(), bound, data.data(), data.size());
    if (ZSTD_isError(n)) return Status::Internal("zstd: {}", ZSTD_getErrorName(n));
  }
  return std::string(scratch_.data(), n);
}

Result<std::string> Compress(Codec codec, std::string_view data, int level) {
  return BufferCompressor(codec, level).Compress(data);
}

Result<std::string> Decompress(Codec codec, std::string_view data) {
  SLUICE_ASSIGN_OR_RETURN(auto d, Decompressor::Make(codec));
  std::string out;
  size_t used = 0;
  while (true) {
    if (out.size() - used < (size_t{64} << 10))
      out.resize(std::max<size_t>(out.size() * 2, 1 << 16));
    SLUICE_ASSIGN_OR_RETURN(size_t n, d->Read(&data, out.data() + used, out.size() - used));
    used += n;
    if (n == 0) break;
  }
  out.resize(used);
  SLUICE_RETURN_NOT_OK(d->Finish());
  return out;
}

Result<std::unique_ptr<Compressor>> Compressor::Make(Codec codec, int level) {
  switch (codec) {
    case Codec::kNone:
      return std::unique_ptr<Compressor>(new NoneCompressor());
    case Codec::kGzip: {
      SLUICE_ASSIGN_OR_RETURN(DeflatePtr c, MakeDeflate(level));
      return std::unique_ptr<Compressor>(new GzipCompressor(std::move(c)));
    }
    case Codec::kZstd: {
      SLUICE_ASSIGN_OR_RETURN(CCtxPtr c, MakeCCtx(level));
      return std::unique_ptr<Compressor>(new ZstdCompressor(std::move(c)));
    }
  }
  return Status::Internal("unknown codec");
}

Result<std::unique_ptr<Decompressor>> Decompressor::Make(Codec codec) {
  switch (codec) {
    case Codec::kNone:
      return std::unique_ptr<Decompressor>(new NoneDecompressor());
    case Codec::kGzip: {
      auto d = std::make_unique<GzipDecompressor>();
      SLUICE_RETURN_NOT_OK(d->Init());
      return std::unique_ptr<Decompressor>(std::move(d));
    }
    case Codec::kZstd: {
      DCtxPtr d(ZSTD_createDCtx());
      if (d == nullptr) return Status::Internal("zstd: cannot allocate a decompression context");
      return std::unique_ptr<Decompressor>(new ZstdDecompressor(std::move(d)));
    }
  }
  return Status::Internal("unknown codec");
}

}  // namespace sluice::io
