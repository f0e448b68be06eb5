#pragma once
// <out_dir>/metrics.jsonl: one JSON object per logged step.
#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace longnet::train {

class MetricsLog {
 public:
  // Opens path for appending. resume_step >= 0 first drops lines of steps after it (left by a
  // run that stopped after its last checkpoint), rewriting the file atomically; -1 starts anew.
  MetricsLog(const std::string& path, int64_t resume_step);
  ~MetricsLog();
  void write(const nlohmann::json& record);  // one line, flushed; DataError when it cannot be
  // Drops the lines of steps after `step` (a rollback to that step's checkpoint).
  void rewind(int64_t step);

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
};

}  // namespace longnet::train
