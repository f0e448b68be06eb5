#pragma once
// Crash-safe writes: write to a temporary name beside the target, fsync, rename, fsync the
// directory. A reader never sees a half-written file under the real name.
#include <filesystem>
#include <string>
#include <string_view>

namespace longnet::data {

namespace fs = std::filesystem;

// Writes `bytes` to `path` atomically. Throws DataError naming the path on failure.
void write_file_atomic(const fs::path& path, std::string_view bytes);
// fsyncs a file or directory so that a completed rename survives a crash.
void fsync_path(const fs::path& path);
// A fresh temporary sibling name for `path` (same directory, so rename is atomic).
fs::path temporary_sibling(const fs::path& path);
// Reads a whole file; throws DataError naming the path when it cannot be read.
std::string read_file(const fs::path& path);

}  // namespace longnet::data
