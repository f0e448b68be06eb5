#pragma once
// Process-wide settings that a training or evaluation run needs before its first step.
#include <c10/core/Device.h>

#include "train/options.h"

namespace longnet::train {

// Sets LibTorch's intra-op threads (train.threads; 0: all cores) and tunes glibc malloc.
// Returns the thread count in use.
int configure_runtime(const TrainOptions& options);

// The device of train.device: cpu, or cuda:local_rank (one GPU per local rank). A ConfigError
// naming train.device when this LibTorch sees no CUDA device (Debian's is built for the CPU).
c10::Device training_device(const TrainOptions& options, int local_rank);

}  // namespace longnet::train
