#pragma once
// Progress of a step that can take minutes (training a tokenizer, tokenizing a corpus, an
// evaluation): while it runs, a thread of its own logs one line every `every` seconds,
//   "<what>: <done> of <total> <unit> (P%), S s"    ("<what>: S s" when the total is unknown),
// and nothing at all when it ends sooner, so short runs and tests print nothing extra.
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace longnet {

class Progress {
 public:
  // total 0: unknown (only the time is logged).
  Progress(std::string what, int64_t total, std::string unit, double every_seconds = 10.0);
  ~Progress();  // stops the logging thread
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;
  // Thread-safe.
  void add(int64_t n = 1) { done_.fetch_add(n, std::memory_order_relaxed); }

 private:
  void run();
  std::string what_, unit_;
  int64_t total_;
  double every_;
  std::atomic<int64_t> done_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace longnet
