#pragma once
// TensorBoard event files, written by the binary itself: TFRecord framing (the record's length
// and data, each followed by its masked CRC32C) around serialized tensorflow.Event messages
// holding scalar summaries. The five protobuf fields this needs are encoded here by hand (the
// wire format is a stable public spec; generated code would add protoc and libprotobuf to the
// build for them); CRC32C comes from ISA-L (Debian's libisal-dev).
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace longnet::train {

using Scalars = std::vector<std::pair<std::string, double>>;  // (tag, value)

// CRC32C (Castagnoli) of bytes, and TFRecord's masked form of it.
uint32_t crc32c(const void* data, size_t n);
uint32_t masked_crc32c(const void* data, size_t n);

// One TFRecord: u64 length, masked CRC32C of those 8 bytes, the data, masked CRC32C of it.
std::string tfrecord(const std::string& data);
// A serialized Event: wall_time and step, with file_version ("brain.Event:2") when scalars is empty, else a Summary
// of simple_value scalars.
std::string event_message(double wall_time, int64_t step, const Scalars& scalars);

// One event file in dir, named events.out.tfevents.<unix seconds>.<host>.<pid>.<suffix>, that
// TensorBoard reads as part of the run in dir. The file starts with its version event.
class EventFile {
 public:
  // prelude: records written with the version event, in one atomic write, before the file is
  // opened for appending (the replay of a resumed run).
  EventFile(const std::string& dir, const std::string& suffix, const std::string& prelude = "");
  ~EventFile();
  EventFile(const EventFile&) = delete;
  EventFile& operator=(const EventFile&) = delete;
  // Appends one event and flushes; DataError naming the file when it cannot be written.
  void write(double wall_time, int64_t step, const Scalars& scalars);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

// The event files of `dir` whose names end with suffix.
std::vector<std::string> event_files(const std::string& dir, const std::string& suffix);

// Seconds since the Unix epoch, as TensorBoard's wall_time.
double unix_time();

}  // namespace longnet::train
