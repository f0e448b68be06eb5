#pragma once
// Crash-safe writes: write to a temporary name beside the target, fsync, rename, fsync the
// directory. A reader never sees a half-written file under the real name, and a write that
// fails (a full disk, a file-size limit, an I/O error) leaves the old file whole, removes the
// temporary and throws DataError naming the path and the error.
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>

#include "common/hash.h"

namespace longnet::data {

namespace fs = std::filesystem;

// One file written atomically, in pieces: write() as often as needed, then commit(). write()
// never throws: the first error is kept and later pieces are dropped, so a writer that cannot
// stop midway (LibTorch's archive writer, whose destructor must not fail) runs to its end, and
// commit() reports the error. Destroyed without a commit(), it removes the temporary.
class AtomicWriter {
 public:
  explicit AtomicWriter(fs::path path);  // throws DataError when the temporary cannot be created
  ~AtomicWriter();
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;

  void write(const void* data, size_t n);
  // write() as LibTorch's OutputArchive::save_to(func) wants it: every byte taken.
  size_t sink(const void* data, size_t n) {
    write(data, n);
    return n;
  }
  void commit();  // fsync, rename into place, fsync the directory; throws DataError on failure
  uint64_t checksum() const { return checksum_.value(); }  // checksum64 of the bytes written

 private:
  [[noreturn]] void fail(const std::string& what, int error);
  fs::path path_, tmp_;
  int fd_ = -1;
  int error_ = 0;  // the first write's errno
  Checksum checksum_;
  bool committed_ = false;
};

// Writes `bytes` to `path` atomically. Throws DataError naming the path on failure.
void write_file_atomic(const fs::path& path, std::string_view bytes);
// fsyncs a file or directory so that a completed rename survives a crash.
void fsync_path(const fs::path& path);
// A fresh temporary sibling name for `path` (same directory, so rename is atomic).
fs::path temporary_sibling(const fs::path& path);
// Reads a whole file; throws DataError naming the path when it cannot be read.
std::string read_file(const fs::path& path);

}  // namespace longnet::data
