#pragma once
// What the libFuzzer harnesses share (tests/fuzz/README.md): a scratch folder of their own, and
// the rule they check. A reader of outside bytes may refuse them only with a longnet::Error (the
// one line the user sees); any other exception escapes the harness, std::terminate aborts and
// libFuzzer reports the input as a crash. Crashes, hangs, leaks and allocations over the memory
// limit are caught by libFuzzer and the sanitizers themselves.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "common/errors.h"

namespace longnet::fuzz {

namespace fs = std::filesystem;

// A folder for this process's files, in memory when /dev/shm exists; removed at exit.
inline const fs::path& scratch() {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string tmpl = (base / "longnet-fuzz-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) std::abort();
    std::atexit([] { std::error_code ec; fs::remove_all(scratch(), ec); });
    return fs::path(tmpl);
  }();
  return dir;
}

// Writes bytes to path as they are (no atomic rename: the harness owns the folder).
inline void put(const fs::path& path, std::string_view bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The harnesses log nothing: a warning per input would be most of the time spent.
inline void quiet() { spdlog::set_level(spdlog::level::off); }

// A property the harness checks failed: print why and abort, which libFuzzer reports as a crash.
[[noreturn]] inline void fail(const std::string& why) {
  std::fprintf(stderr, "longnet fuzz: %s\n", why.c_str());
  std::abort();
}

}  // namespace longnet::fuzz
