#pragma once
// What the benchmarks share: measuring in a fresh child process of our own
// binary so that each measurement's peak RSS is its own.
#include <nlohmann/json.hpp>

#include "common/process.h"

#include <cstdint>
#include <string>
#include <vector>

namespace longnet::tools {

// Runs a shell command and parses its stdout's last line as JSON (null when it is none);
// rc gets the exit status as a shell reports it (128 + N for a child killed by signal N).
nlohmann::json run_child(const std::string& command, int& rc);

// " : out of memory?" when rc says the child was killed by SIGKILL (what the kernel's OOM killer
// sends), else "".
const char* oom_hint(int rc);

// Peak resident set size of this process so far, MB.
double peak_rss_mb();
// Resident set size of this process now, MB.
double current_rss_mb();

int bench_attention(int argc, char** argv);
int bench_train(int argc, char** argv);
int bench_ring(int argc, char** argv);
int bench_core(int argc, char** argv);

}  // namespace longnet::tools
