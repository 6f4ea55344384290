#include "sluice/io/stream.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

namespace sluice::io {

namespace {

Status ErrnoStatus(int err, const std::string& what) {
  if (err == ENOENT) return Status::NotFound("{}: {}", what, std::strerror(err));
  if (err == EACCES || err == EPERM) {
    return Status(StatusCode::kPermissionDenied, fmt::format("{}: {}", what, std::strerror(err)));
  }
  return Status::IOError("{}: {}", what, std::strerror(err));
}

class FileInputStream final : public InputStream {
 public:
  FileInputStream(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FileInputStream() override { ::close(fd_); }

  Result<size_t> Read(char* out, size_t capacity) override {
    while (true) {
      const ssize_t n = ::read(fd_, out, capacity);
      if (n >= 0) return static_cast<size_t>(n);
      if (errno != EINTR) return ErrnoStatus(errno, "reading " + path_);
    }
  }

 private:
  int fd_;
  std::string path_;
};

class DecompressingStream final : public InputStream {
 public:
  DecompressingStream(std::unique_ptr<InputStream> raw, std::unique_ptr<Decompressor> d,
                      size_t read_size)
      : raw_(std::move(raw)), d_(std::move(d)), buf_(read_size) {}

  Result<size_t> Read(char* out, size_t capacity) override {
    if (capacity == 0) return size_t{0};
    while (true) {
      if (pending_.empty() && !raw_eof_) {
        SLUICE_ASSIGN_OR_RETURN(size_t n, raw_->Read(buf_.data(), buf_.size()));
        if (n == 0) raw_eof_ = true;
        pending_ = std::string_view(buf_.data(), n);
      }
      SLUICE_ASSIGN_OR_RETURN(size_t n, d_->Read(&pending_, out, capacity));
      if (n > 0) return n;
      if (!pending_.empty()) return Status::Internal("decompressor made no progress");
      if (raw_eof_) {
        SLUICE_RETURN_NOT_OK(d_->Finish());
        return size_t{0};
      }
    }
  }

 private:
  std::unique_ptr<InputStream> raw_;
  std::unique_ptr<Decompressor> d_;
  std::vector<char> buf_;
  std::string_view pending_;  // compressed bytes of buf_ not yet consumed
  bool raw_eof_ = false;
};

}  // namespace

Result<std::unique_ptr<InputStream>> OpenFileStream(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, "opening " + path);
  return std::unique_ptr<InputStream>(new FileInputStream(fd, path));
}

Result<std::unique_ptr<InputStream>> MakeDecompressingStream(std::unique_ptr<InputStream> raw,
                                                             Codec codec, size_t read_size) {
  if (codec == Codec::kNone) return raw;
  SLUICE_ASSIGN_OR_RETURN(auto d, Decompressor::Make(codec));
  return std::unique_ptr<InputStream>(
      new DecompressingStream(std::move(raw), std::move(d), std::max<size_t>(read_size, 1)));
}

}  // namespace sluice::io
