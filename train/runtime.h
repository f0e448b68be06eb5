#pragma once
// Process-wide settings that a training or evaluation run needs before its first step.
#include "train/options.h"

namespace longnet::train {

// Sets LibTorch's intra-op threads (train.threads; 0: all cores) and tunes glibc malloc.
// Returns the thread count in use.
int configure_runtime(const TrainOptions& options);

}  // namespace longnet::train
