#include "train/runtime.h"

#include <malloc.h>
#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include "train/config.h"

namespace longnet::train {

int configure_runtime(const TrainOptions& options) {
  // Every step frees and re-allocates the same activation buffers. By default glibc serves
  // blocks over 128 KiB with fresh mmap()s and trims the heap top on free, so each step pays
  // page faults for memory it just returned: measured on the shakespeare_char model, 89 ->
  // 64 ms/step. Keep blocks up to 32 MiB (glibc's maximum) on the heap, and the heap untrimmed.
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  // As training goes on, some gradients and optimizer moments decay into denormal floats,
  // which the CPU handles in microcode: ms/step crept from 64 to 89 over 2000 steps of
  // shakespeare_char. Flushing them to zero is what GPUs do anyway.
  at::globalContext().setFlushDenormal(true);
  const int threads = resolved_threads(options);
  at::set_num_threads(threads);
  return threads;
}

}  // namespace longnet::train
