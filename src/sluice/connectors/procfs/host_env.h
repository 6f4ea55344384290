#pragma once

// What the procfs collectors read from the host, behind one small interface: files under the
// /proc root, its process directories and filesystem statistics. The real one reads the host
// with plain system calls into buffers the caller keeps; tests wrap it to inject failures
// (permission denied, a vanished file) or to answer statfs for a recorded tree, as LevelDB's
// tests wrap its Env.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace sluice::procfs {

/// A growable byte buffer for whole files, reused from one read to the next: once it has held
/// the largest file it is asked to hold, reading allocates nothing. Not thread-safe.
class FileBuffer {
 public:
  FileBuffer() = default;
  FileBuffer(const FileBuffer&) = delete;
  FileBuffer& operator=(const FileBuffer&) = delete;

  /// Return the bytes read last.
  std::string_view view() const { return {data_.get(), size_}; }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  /// Forget the content, keep the memory.
  void clear() { size_ = 0; }
  /// Return room for at least `extra` more bytes after the content (grows by doubling).
  char* Reserve(size_t extra);
  /// Count `n` bytes written at the pointer Reserve returned.
  void Commit(size_t n) { size_ += n; }
  /// Replace the content with `text` (tests, fuzzing).
  void Assign(std::string_view text);

 private:
  std::unique_ptr<char[]> data_;
  size_t size_ = 0;
  size_t capacity_ = 0;
};

/// What statfs says about one mounted filesystem, in bytes and inodes.
struct FsStats {
  uint64_t size_bytes = 0;
  uint64_t free_bytes = 0;       ///< Free blocks, including those reserved for root.
  uint64_t available_bytes = 0;  ///< Free blocks an unprivileged user may take.
  uint64_t files = 0;
  uint64_t files_free = 0;
  bool readonly = false;
};

/// The host as the collectors see it. Every method returns 0 or an errno value, allocates
/// nothing once the caller's buffers are large enough, and may be called from several threads
/// at once (each with its own buffers).
class HostEnv {
 public:
  virtual ~HostEnv() = default;
  /// Read the whole file at `path` into `out` (replacing its content).
  virtual int ReadFile(const char* path, FileBuffer* out) = 0;
  /// Read a file the kernel writes as one record in one go (/proc/[pid]/stat and status):
  /// as ReadFile, but a read that leaves room in the buffer is the whole file, which saves
  /// the read that would find the end — a quarter of the process collector's system calls.
  virtual int ReadRecord(const char* path, FileBuffer* out) { return ReadFile(path, out); }
  /// Put the numeric names of directory `path` (the process ids of a /proc root) into `out`,
  /// replacing its content, in directory order.
  virtual int ListPids(const char* path, std::vector<int32_t>* out) = 0;
  /// Fill `out` for the filesystem mounted at `path`. May block for as long as the
  /// filesystem does (a hung network mount).
  virtual int StatFs(const char* path, FsStats* out) = 0;

  /// Open `path` to read it again and again with ReadKept, which saves the open and close of
  /// every read: set `*handle`. Only for files the kernel writes anew on each read from the
  /// start (procfs); ENOTSUP for any other file and from an env that reads by path only (the
  /// default), which then reads with ReadFile/ReadRecord.
  virtual int Keep(const char* path, int* handle) { return ENOTSUP; }
  /// Read the whole of a kept file from its start into `out`, as ReadFile does (ReadRecord's
  /// shortcut when `one_record`). ESRCH: the process whose file it is has ended.
  virtual int ReadKept(int handle, FileBuffer* out, bool one_record) { return ENOTSUP; }
  /// Close a kept file.
  virtual void Release(int handle) {}
};

/// Return the process-wide HostEnv that reads the real host. Never null; never freed.
HostEnv* RealHostEnv();

/// Write the text for errno `err` ("Permission denied") to `out` without allocating; return
/// it. `out` must hold at least 64 bytes.
std::string_view ErrnoText(int err, char* out, size_t size);

}  // namespace sluice::procfs
