#include "train/metrics.h"

#include <filesystem>
#include <sstream>

#include "common/atomic_file.h"
#include "common/errors.h"

namespace longnet::train {

MetricsLog::MetricsLog(const std::string& path, int64_t resume_step) : path_(path) {
  std::string kept;
  if (resume_step >= 0 && std::filesystem::exists(path)) {
    std::istringstream in(data::read_file(path));
    for (std::string line; std::getline(in, line);) {
      if (line.empty()) continue;
      const auto rec = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (rec.is_object() && rec.value("step", int64_t{-1}) <= resume_step) kept += line + "\n";
    }
  }
  data::write_file_atomic(path, kept);
  file_ = std::fopen(path.c_str(), "a");
  if (!file_) throw DataError(path + ": cannot open for appending");
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const nlohmann::json& record) {
  const std::string line = record.dump() + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace longnet::train
