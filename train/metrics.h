#pragma once
// <out_dir>/metrics.jsonl: one JSON object per logged step, and the same scalars as TensorBoard
// event files under <out_dir>/tensorboard/ (train/tensorboard.h).
#include <nlohmann/json.hpp>

#include <cstdio>
#include <memory>
#include <string>

#include "train/tensorboard.h"

namespace longnet::train {

// The scalars of a metrics record for TensorBoard: each number but step and time, tagged
// "val/<name>" for val_<name> and "train/<key>" for the others.
Scalars scalars_of(const nlohmann::json& record);

class MetricsLog {
 public:
  // Opens path for appending. resume_step >= 0 first drops lines of steps after it (left by a
  // run that stopped after its last checkpoint), rewriting the file atomically; -1 starts anew.
  // tensorboard_dir non-empty: the run's event file there (suffix kTrainEvents) is rewritten to
  // hold the kept lines, so a resumed run continues the same curves without a step twice.
  MetricsLog(const std::string& path, int64_t resume_step, const std::string& tensorboard_dir = "");
  ~MetricsLog();
  // One line, flushed, with "time" (Unix seconds) added; the event too. DataError when it cannot be.
  void write(nlohmann::json record);
  // Drops the lines of steps after `step` (a rollback to that step's checkpoint), and their events.
  void rewind(int64_t step);

  static constexpr const char* kTrainEvents = "longnet-train";

 private:
  void reopen(const std::string& kept);
  std::FILE* file_ = nullptr;
  std::string path_, tensorboard_dir_;
  std::unique_ptr<EventFile> events_;
};

}  // namespace longnet::train
