#include "sluice/connectors/procfs/host_env.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace sluice::procfs {

char* FileBuffer::Reserve(size_t extra) {
  if (capacity_ - size_ < extra) {
    size_t cap = std::max<size_t>(capacity_ == 0 ? 4096 : capacity_ * 2, size_ + extra);
    auto grown = std::make_unique<char[]>(cap);
    if (size_ > 0) std::memcpy(grown.get(), data_.get(), size_);
    data_ = std::move(grown);
    capacity_ = cap;
  }
  return data_.get() + size_;
}

void FileBuffer::Assign(std::string_view text) {
  clear();
  if (!text.empty()) std::memcpy(Reserve(text.size()), text.data(), text.size());
  Commit(text.size());
}

namespace {

/// Close a descriptor when leaving scope.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The dirent layout getdents64 writes (glibc declares no type for it).
struct LinuxDirent64 {
  uint64_t d_ino;
  int64_t d_off;
  unsigned short d_reclen;
  unsigned char d_type;
  char d_name[1];
};

class RealEnv final : public HostEnv {
 public:
  int ReadFile(const char* path, FileBuffer* out) override { return Read(path, out, false); }
  int ReadRecord(const char* path, FileBuffer* out) override { return Read(path, out, true); }

  int Keep(const char* path, int* handle) override {
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    // A regular file (a recorded tree) may be replaced or rewritten in place: read by path.
    struct statfs s;
    if (::fstatfs(fd, &s) != 0 || s.f_type != PROC_SUPER_MAGIC) {
      ::close(fd);
      return ENOTSUP;
    }
    *handle = fd;
    return 0;
  }
  int ReadKept(int handle, FileBuffer* out, bool one_record) override {
    out->clear();
    return ReadFrom(handle, out, one_record, /*positioned=*/true);
  }
  void Release(int handle) override { ::close(handle); }

 private:
  static int Read(const char* path, FileBuffer* out, bool one_record) {
    out->clear();
    Fd fd(::open(path, O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) return errno;
    return ReadFrom(fd.get(), out, one_record, /*positioned=*/false);
  }

  // Read `fd` to its end into `out`; `positioned`: from offset 0 whatever was read before
  // (pread: a procfs file read from its start again is made anew).
  static int ReadFrom(int fd, FileBuffer* out, bool one_record, bool positioned) {
    // /proc files report size 0: read until the end, growing the buffer when it fills.
    for (;;) {
      const size_t room = std::max<size_t>(out->capacity() - out->size(), 1024);
      char* at = out->Reserve(room);
      const size_t want = out->capacity() - out->size();
      const ssize_t n = positioned ? ::pread(fd, at, want, static_cast<off_t>(out->size()))
                                   : ::read(fd, at, want);
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0) return 0;
      out->Commit(static_cast<size_t>(n));
      if (one_record && out->size() < out->capacity()) return 0;
    }
  }

 public:
  // getdents64 rather than opendir: glibc's opendir allocates its buffer on every call.
  int ListPids(const char* path, std::vector<int32_t>* out) override {
    out->clear();
    Fd fd(::open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) return errno;
    alignas(8) char buf[16384];
    for (;;) {
      const long n = ::syscall(SYS_getdents64, fd.get(), buf, sizeof(buf));
      if (n < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      if (n == 0) return 0;
      for (long pos = 0; pos < n;) {
        const auto* d = reinterpret_cast<const LinuxDirent64*>(buf + pos);
        pos += d->d_reclen;
        if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN) continue;
        int64_t pid = 0;
        const char* c = d->d_name;
        if (*c == '\0') continue;
        for (; *c >= '0' && *c <= '9' && pid <= INT32_MAX; ++c) pid = pid * 10 + (*c - '0');
        if (*c == '\0' && pid > 0 && pid <= INT32_MAX) out->push_back(static_cast<int32_t>(pid));
      }
    }
  }

  // statfs(2), not statvfs(3): glibc's statvfs may read /proc/mounts (allocating) to find
  // the mount flags on kernels that do not report them.
  int StatFs(const char* path, FsStats* out) override {
    struct statfs s;
    if (::statfs(path, &s) != 0) return errno;
    const auto unit = static_cast<uint64_t>(s.f_frsize != 0 ? s.f_frsize : s.f_bsize);
    out->size_bytes = static_cast<uint64_t>(s.f_blocks) * unit;
    out->free_bytes = static_cast<uint64_t>(s.f_bfree) * unit;
    out->available_bytes = static_cast<uint64_t>(s.f_bavail) * unit;
    out->files = static_cast<uint64_t>(s.f_files);
    out->files_free = static_cast<uint64_t>(s.f_ffree);
    out->readonly = (s.f_flags & ST_RDONLY) != 0;
    return 0;
  }
};

}  // namespace

HostEnv* RealHostEnv() {
  static RealEnv* env = new RealEnv();
  return env;
}

std::string_view ErrnoText(int err, char* out, size_t size) {
  // The GNU strerror_r returns either `out` or a static string; it never allocates.
  const char* text = ::strerror_r(err, out, size);
  return text;
}

}  // namespace sluice::procfs
