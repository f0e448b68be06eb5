#include "train/runtime.h"

#include <malloc.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include <torch/cuda.h>
#include <torch/version.h>

#include "common/errors.h"
#include "train/config.h"
#include "train/distributed.h"

namespace longnet::train {

int configure_runtime(const TrainOptions& options) {
  // Every step frees and re-allocates the same activation buffers. By default glibc serves
  // blocks over 128 KiB with fresh mmap()s and trims the heap top on free, so each step pays
  // page faults for memory it just returned (on small models a large part of the step). Keep
  // blocks up to 32 MiB (glibc's maximum) on the heap, and the heap untrimmed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // As training goes on, some gradients and optimizer moments decay into denormal floats,
  // which the CPU handles in microcode, many times slower than normal floats, so steps slow
  // down as a run goes on. Flushing them to zero is what GPUs do anyway.
  at::globalContext().setFlushDenormal(true);
  // train.threads: 0 shares the cores among the ranks on this machine (OpenMP threads that
  // outnumber the cores spin against each other).
  const int threads = resolved_threads(options, distributed_env().local_world_size);
  at::set_num_threads(threads);
  return threads;
}

c10::Device training_device(const TrainOptions& options, int local_rank) {
  if (options.device == "cpu") return c10::Device(c10::kCPU);
  if (!kBuiltWithCuda)
    throw ConfigError("train.device: cuda: this is longnet's CPU build (build the `cuda` CMake preset for GPUs); use cpu");
  const int64_t n = visible_cuda_devices();
  if (n == 0) throw ConfigError("train.device: cuda: no CUDA device is present on this machine; use cpu");
  if (local_rank >= n)
    throw ConfigError("train.device: cuda: local rank " + std::to_string(local_rank) + " has no GPU of its own (" +
                      std::to_string(n) + " visible)");
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local_rank));
}

int64_t visible_cuda_devices() {
  return torch::cuda::is_available() ? static_cast<int64_t>(torch::cuda::device_count()) : 0;
}

std::string version_text() {
  std::string text = std::string("longnet ") + LONGNET_VERSION + "\n";
  text += std::string("LibTorch ") + TORCH_VERSION + " (built against)\n";
  text += std::string("CUDA: ") + (kBuiltWithCuda ? "compiled in" : "not compiled in (CPU build)") + "\n";
  text += std::string("NCCL: ") + (kBuiltWithNccl ? "compiled in" : "not compiled in") + "\n";
  if (kBuiltWithCuda) text += "CUDA devices visible: " + std::to_string(visible_cuda_devices()) + "\n";
  return text;
}

}  // namespace longnet::train
