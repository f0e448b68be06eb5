#include "train/metrics.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

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

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  data::write_file_atomic(path, resume_step >= 0 ? lines_up_to(path, resume_step) : "");
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw DataError(path + ": cannot open for appending");
}

void MetricsLog::rewind(int64_t step) {
  std::fclose(file_);
  file_ = nullptr;
  data::write_file_atomic(path_, lines_up_to(path_, step));
  file_ = std::fopen(path_.c_str(), "a");
  if (!file_) throw DataError(path_ + ": cannot open for appending");
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  errno = 0;
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0)
    throw DataError(path_ + ": cannot append: " + std::strerror(errno != 0 ? errno : EIO));
}

}  // namespace longnet::train
