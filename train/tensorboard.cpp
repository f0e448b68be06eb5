#include "train/tensorboard.h"

#include <isa-l/crc.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "common/append_file.h"
#include "common/atomic_file.h"
#include "common/errors.h"

namespace longnet::train {
namespace {

namespace fs = std::filesystem;

// Protobuf wire format: a field's key is (number << 3 | wire type); 0 varint, 1 64-bit,
// 2 length-delimited, 5 32-bit. Little-endian fixed widths.
void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
template <typename T>
void fixed(std::string& out, T v) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &v, sizeof(T));  // x86-64 and aarch64 are little-endian, as the format
  out.append(bytes, sizeof(T));
}
void bytes_field(std::string& out, int number, const std::string& bytes) {
  varint(out, static_cast<uint64_t>(number) << 3 | 2);
  varint(out, bytes.size());
  out += bytes;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n) {
  // ISA-L's iSCSI CRC is CRC32C without the final inversion.
  uint32_t crc = 0xFFFFFFFFu;
  const auto* p = static_cast<const unsigned char*>(data);
  while (n > 0) {  // its length argument is an int
    const int chunk = static_cast<int>(std::min<size_t>(n, 1u << 30));
    crc = crc32_iscsi(const_cast<unsigned char*>(p), chunk, crc);
    p += chunk;
    n -= static_cast<size_t>(chunk);
  }
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

std::string tfrecord(const std::string& data) {
  std::string out;
  fixed<uint64_t>(out, data.size());
  fixed<uint32_t>(out, masked_crc32c(out.data(), 8));
  out += data;
  fixed<uint32_t>(out, masked_crc32c(data.data(), data.size()));
  return out;
}

std::string event_message(double wall_time, int64_t step, const Scalars& scalars) {
  // Event: 1 wall_time (double), 2 step (int64), 3 file_version (string), 5 summary (Summary).
  // Summary: 1 value (repeated Value). Value: 1 tag (string), 2 simple_value (float).
  std::string event;
  varint(event, 1 << 3 | 1);
  fixed<double>(event, wall_time);
  varint(event, 2 << 3 | 0);
  varint(event, static_cast<uint64_t>(step));
  if (scalars.empty()) {
    bytes_field(event, 3, "brain.Event:2");
    return event;
  }
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    bytes_field(v, 1, tag);
    varint(v, 2 << 3 | 5);
    fixed<float>(v, static_cast<float>(value));
    bytes_field(summary, 1, v);
  }
  bytes_field(event, 5, summary);
  return event;
}

double unix_time() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::vector<std::string> event_files(const std::string& dir, const std::string& suffix) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("events.out.tfevents.", 0) == 0 && name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      out.push_back(e.path().string());
  }
  return out;
}

EventFile::EventFile(const std::string& dir, const std::string& suffix, const std::string& prelude) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw DataError(dir + ": cannot create the TensorBoard folder: " + ec.message());
  char host[256] = "localhost";
  ::gethostname(host, sizeof(host) - 1);
  const double now = unix_time();
  // A name of its own, also for two files begun within one second by one process.
  const std::string base = (fs::path(dir) / ("events.out.tfevents." + std::to_string(static_cast<int64_t>(now)) + "." + host +
                                              "." + std::to_string(::getpid()))).string();
  path_ = base + "." + suffix;
  for (int i = 1; fs::exists(path_); ++i) path_ = base + "." + std::to_string(i) + "." + suffix;
  data::write_file_atomic(path_, tfrecord(event_message(now, 0, {})) + prelude);
  file_ = std::fopen(path_.c_str(), "ab");
  if (!file_) throw DataError(path_ + ": cannot open for appending: " + std::strerror(errno));
}

EventFile::~EventFile() {
  if (file_) std::fclose(file_);
}

void EventFile::write(double wall_time, int64_t step, const Scalars& scalars) {
  data::append_flushed(file_, path_, tfrecord(event_message(wall_time, step, scalars)));
}

}  // namespace longnet::train
