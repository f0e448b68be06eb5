#include "train/metrics.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include "common/append_file.h"
#include "common/atomic_file.h"
#include "common/errors.h"

namespace longnet::train {

namespace {

// The lines of `path` of steps up to `step`.
std::string lines_up_to(const std::string& path, int64_t step) {
  std::string kept;
  if (!std::filesystem::exists(path)) return kept;
  std::istringstream in(data::read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (rec.is_object() && rec.value("step", int64_t{-1}) <= step) kept += line + "\n";
  }
  return kept;
}

}  // namespace

Scalars scalars_of(const nlohmann::json& record) {
  Scalars out;
  for (const auto& [key, value] : record.items()) {
    if (key == "step" || key == "time" || !value.is_number()) continue;
    out.emplace_back(key.rfind("val_", 0) == 0 ? "val/" + key.substr(4) : "train/" + key, value.get<double>());
  }
  return out;
}

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step, const std::string& tensorboard_dir)
    : path_(path), tensorboard_dir_(tensorboard_dir) {
  reopen(resume_step >= 0 ? lines_up_to(path, resume_step) : "");
}

void MetricsLog::rewind(int64_t step) { reopen(lines_up_to(path_, step)); }

// metrics.jsonl becomes `kept`; the event file, a new one holding kept's records, after which
// the older ones of this writer are removed (a crash in between leaves both: never a step lost).
void MetricsLog::reopen(const std::string& kept) {
  if (file_) std::fclose(file_);
  file_ = nullptr;
  data::write_file_atomic(path_, kept);
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_) throw DataError(path_ + ": cannot open for appending");
  if (tensorboard_dir_.empty()) return;
  std::string replay;
  std::istringstream in(kept);
  for (std::string line; std::getline(in, line);) {
    const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!rec.is_object()) continue;
    const auto scalars = scalars_of(rec);
    if (!scalars.empty())
      replay += tfrecord(event_message(rec.value("time", unix_time()), rec.value("step", int64_t{0}), scalars));
  }
  const auto old = event_files(tensorboard_dir_, kTrainEvents);
  events_.reset();
  events_ = std::make_unique<EventFile>(tensorboard_dir_, kTrainEvents, replay);
  for (const auto& f : old) {
    std::error_code ec;
    std::filesystem::remove(f, ec);
  }
}
MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(nlohmann::json record) {
  if (!record.contains("time")) record["time"] = unix_time();
  data::append_flushed(file_, path_, record.dump() + "\n");
  if (!events_) return;
  if (const auto scalars = scalars_of(record); !scalars.empty())
    events_->write(record["time"].get<double>(), record.value("step", int64_t{0}), scalars);
}

}  // namespace longnet::train
