#include "attention/transport.h"

#include <c10/core/StreamGuard.h>
#include <c10/core/impl/VirtualGuardImpl.h>
#include <torch/torch.h>

namespace longnet::attention {

void TransferStats::add(int64_t bytes_sent, double wait_seconds) {
  bytes_ += bytes_sent;
  wait_ns_ += static_cast<int64_t>(wait_seconds * 1e9);
}

void TransferStats::reset() {
  bytes_ = 0;
  wait_ns_ = 0;
}

WaitClock::~WaitClock() {
  if (stats_) stats_->add(0, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
}

StreamLink::StreamLink(const c10::Device& device) : device_(device) {
  if (device.is_cpu()) return;
  c10::impl::VirtualGuardImpl impl(device.type());
  stream_ = impl.getStreamFromGlobalPool(device, /*isHighPriority=*/false);
}

std::shared_ptr<c10::Event> StreamLink::mark() const {
  if (!active()) return nullptr;
  c10::impl::VirtualGuardImpl impl(device_.type());
  auto e = std::make_shared<c10::Event>(device_.type());
  e->record(impl.getStream(device_));
  return e;
}

void StreamLink::wait_for(const std::shared_ptr<c10::Event>& e) const {
  if (!active() || !e) return;
  c10::impl::VirtualGuardImpl impl(device_.type());
  e->block(impl.getStream(device_));
}

void StreamLink::used_here(const torch::Tensor& t) const {
  if (!active() || !t.defined()) return;
  c10::impl::VirtualGuardImpl impl(device_.type());
  impl.recordDataPtrOnStream(t.storage().data_ptr(), impl.getStream(device_));
}

void StreamLink::join() const {
  if (!active()) return;
  c10::Event e(device_.type());
  e.record(*stream_);
  c10::impl::VirtualGuardImpl impl(device_.type());
  e.block(impl.getStream(device_));
}

TransferThread::TransferThread(const StreamLink& link, TransferStats* stats)
    : link_(link), stats_(stats), thread_([this] { loop(); }) {}

TransferThread::~TransferThread() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  work_cv_.notify_all();
  thread_.join();
}

void TransferThread::push(std::function<void()> job) {
  auto after = link_.mark();
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back({std::move(job), std::move(after)});
    ++outstanding_;
  }
  work_cv_.notify_all();
}

void TransferThread::wait_below(int64_t n) {
  WaitClock clock(stats_);
  std::unique_lock<std::mutex> lock(mutex_);
  done_cv_.wait(lock, [&] { return outstanding_ < n || error_; });
  if (error_) std::rethrow_exception(error_);
}

void TransferThread::rethrow() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (error_) std::rethrow_exception(error_);
}

void TransferThread::loop() {
  c10::OptionalStreamGuard on_transfer_stream(link_.stream());
  torch::NoGradGuard no_grad;
  for (;;) {
    Job job;
    bool skip;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_cv_.wait(lock, [&] { return stop_ || !jobs_.empty(); });
      if (stop_) return;  // normally after drain(); otherwise the compute thread failed
      job = std::move(jobs_.front());
      jobs_.pop_front();
      skip = static_cast<bool>(error_);
    }
    if (!skip) {
      try {
        link_.wait_for(job.after);
        job.run();
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        error_ = std::current_exception();
      }
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      --outstanding_;
    }
    done_cv_.notify_all();
  }
}

}  // namespace longnet::attention
