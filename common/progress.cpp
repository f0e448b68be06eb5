#include "common/progress.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace longnet {

Progress::Progress(std::string what, int64_t total, std::string unit, double every_seconds)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total), every_(every_seconds), thread_([this] { run(); }) {}

Progress::~Progress() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Progress::run() {
  const auto t0 = std::chrono::steady_clock::now();
  const auto period = std::chrono::duration<double>(every_);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!cv_.wait_for(lock, period, [this] { return stop_; })) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const int64_t done = done_.load(std::memory_order_relaxed);
    if (total_ > 0)
      spdlog::info("{}: {} of {} {} ({:.0f}%), {:.0f} s", what_, done, total_, unit_, 100.0 * done / total_, s);
    else
      spdlog::info("{}: {:.0f} s", what_, s);
  }
}

}  // namespace longnet
