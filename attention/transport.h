#pragma once
// How the cross-rank kernels move rows between ranks: the figures of what moved and of the
// time the compute waited for it, a thread that runs transfers in order while the compute goes
// on, and — on a device with streams (CUDA) — the order between the compute's stream and the
// transfers' stream, so that transfers overlap the compute instead of queueing behind it.
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

namespace longnet::attention {

// What one owner's transfers (a sequence-parallel group's, a benchmark's) have sent, and how
// long its compute thread was blocked on transfers: the communication the compute did not hide.
// Thread-safe.
class TransferStats {
 public:
  void add(int64_t bytes_sent, double wait_seconds);
  int64_t bytes_sent() const { return bytes_.load(); }
  double wait_seconds() const { return static_cast<double>(wait_ns_.load()) * 1e-9; }
  void reset();

 private:
  std::atomic<int64_t> bytes_{0}, wait_ns_{0};
};

// Adds the time from its construction to its destruction to `stats` (null: nowhere) as waiting.
class WaitClock {
 public:
  explicit WaitClock(TransferStats* stats) : stats_(stats), t0_(std::chrono::steady_clock::now()) {}
  ~WaitClock();
  WaitClock(const WaitClock&) = delete;
  WaitClock& operator=(const WaitClock&) = delete;

 private:
  TransferStats* stats_;
  std::chrono::steady_clock::time_point t0_;
};

// The transfers' stream of a device and its hand-overs with the compute's stream. On CUDA,
// NCCL's copies start only when the stream current at their call has done what was queued on
// it; issued from the compute stream, a transfer would wait for all the compute queued before
// it. Transfers are therefore issued on a stream of their own, which waits only for what each
// transfer reads (an event marked when the compute handed it over), and the compute waits for
// a received tensor only when it uses it. On the CPU there are no streams and every call does
// nothing.
class StreamLink {
 public:
  explicit StreamLink(const c10::Device& device);
  bool active() const { return stream_.has_value(); }
  const std::optional<c10::Stream>& stream() const { return stream_; }

  // What the calling thread's current stream has queued so far (null on the CPU).
  std::shared_ptr<c10::Event> mark() const;
  // The calling thread's current stream waits for `e` (null: nothing to wait for).
  void wait_for(const std::shared_ptr<c10::Event>& e) const;
  // `t`, allocated on another stream, is used on the calling thread's current stream: the
  // caching allocator must not hand its memory out again before this stream is done with it.
  void used_here(const torch::Tensor& t) const;
  // The calling thread's current stream waits for everything queued on the transfers' stream.
  void join() const;

 private:
  c10::Device device_;
  std::optional<c10::Stream> stream_;
};

// Runs jobs in the order pushed on a thread of its own, each finished (its transfer waited
// for) before the next. The thread's current stream is the link's transfers' stream, and each
// job first waits for what the pushing thread's stream had queued when it was pushed. After a
// job throws (a dead peer's timeout), the rest are skipped — they would wait for the same
// peer — and the error is rethrown to the compute thread by the next wait_below or rethrow.
class TransferThread {
 public:
  TransferThread(const StreamLink& link, TransferStats* stats);
  ~TransferThread();
  TransferThread(const TransferThread&) = delete;
  TransferThread& operator=(const TransferThread&) = delete;

  void push(std::function<void()> job);
  // Blocks (counted as waiting) until fewer than n jobs are queued or running.
  void wait_below(int64_t n);
  void drain() { wait_below(1); }
  // Rethrows the error of a failed job, without waiting.
  void rethrow();

 private:
  struct Job {
    std::function<void()> run;
    std::shared_ptr<c10::Event> after;
  };
  void loop();

  const StreamLink& link_;
  TransferStats* stats_;
  std::mutex mutex_;
  std::condition_variable work_cv_, done_cv_;
  std::deque<Job> jobs_;
  int64_t outstanding_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace longnet::attention
