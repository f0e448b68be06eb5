#pragma once
// Process-wide settings that a training or evaluation run needs before its first step, and what
// this build of longnet can run on.
#include <c10/core/Device.h>

#include <cstdint>
#include <string>

#include "train/options.h"

namespace longnet::train {

#ifdef LONGNET_WITH_CUDA
inline constexpr bool kBuiltWithCuda = true;
#else
inline constexpr bool kBuiltWithCuda = false;
#endif
#ifdef LONGNET_WITH_NCCL
inline constexpr bool kBuiltWithNccl = true;
#else
inline constexpr bool kBuiltWithNccl = false;
#endif

// Sets LibTorch's intra-op threads (train.threads; 0: all cores) and tunes glibc malloc.
// Returns the thread count in use.
int configure_runtime(const TrainOptions& options);

// The device of train.device: cpu, or cuda:local_rank (one GPU per local rank). A ConfigError
// naming train.device in the CPU build, or when no CUDA device is present.
c10::Device training_device(const TrainOptions& options, int local_rank);

// CUDA devices this process sees (0 in the CPU build).
int64_t visible_cuda_devices();

// `longnet --version`: longnet's version, the LibTorch it was built against, whether CUDA and
// NCCL are compiled in and, if so, how many CUDA devices are visible now.
std::string version_text();

}  // namespace longnet::train
