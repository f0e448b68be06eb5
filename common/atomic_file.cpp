#include "common/atomic_file.h"
#include "common/append_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>

#include "common/errors.h"

namespace longnet::data {

fs::path temporary_sibling(const fs::path& path) {
  static std::atomic<int> counter{0};
  return path.parent_path() /
         (".tmp-" + path.filename().string() + "-" + std::to_string(::getpid()) + "-" +
          std::to_string(counter++));
}

void fsync_path(const fs::path& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw DataError(path.string() + ": cannot open to fsync: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw DataError(path.string() + ": fsync failed: " + std::strerror(errno));
}

AtomicWriter::AtomicWriter(fs::path path) : path_(std::move(path)), tmp_(temporary_sibling(path_)) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw DataError(path_.string() + ": cannot create " + tmp_.filename().string() + ": " + std::strerror(errno));
}

AtomicWriter::~AtomicWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
  }
}

void AtomicWriter::write(const void* data, size_t n) {
  checksum_.add(data, n);
  const char* p = static_cast<const char*>(data);
  while (n > 0 && error_ == 0) {
    const ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno != EINTR) error_ = errno;
      continue;
    }
    if (w == 0) error_ = EIO;  // no progress and no errno: do not spin
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicWriter::fail(const std::string& what, int error) {
  ::close(fd_);
  fd_ = -1;
  std::error_code ec;
  fs::remove(tmp_, ec);
  throw DataError(path_.string() + ": " + what + ": " + std::strerror(error));
}

void AtomicWriter::commit() {
  if (error_ != 0) fail("write failed", error_);
  if (::fsync(fd_) != 0) fail("fsync failed", errno);
  const int fd = fd_;
  fd_ = -1;
  if (::close(fd) != 0) {  // some filesystems report a failed write only here
    const int error = errno;
    std::error_code ec;
    fs::remove(tmp_, ec);
    throw DataError(path_.string() + ": close failed: " + std::strerror(error));
  }
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int error = errno;
    std::error_code ec;
    fs::remove(tmp_, ec);
    throw DataError(path_.string() + ": rename failed: " + std::strerror(error));
  }
  committed_ = true;
  fsync_path(path_.parent_path().empty() ? fs::path(".") : path_.parent_path());
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  AtomicWriter w(path);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path.string() + ": cannot read (does the file exist?)");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace longnet::data

namespace longnet::data {

void append_flushed(std::FILE* file, const std::string& path, std::string_view bytes) {
  errno = 0;
  if (std::fwrite(bytes.data(), 1, bytes.size(), file) != bytes.size() || std::fflush(file) != 0)
    throw DataError(path + ": cannot append: " + std::strerror(errno != 0 ? errno : EIO));
}

}  // namespace longnet::data
