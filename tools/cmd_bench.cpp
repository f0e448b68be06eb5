// longnet bench attention | train: the benchmarks (tools/bench_*.cpp).
#include <cstdio>
#include <cstring>

#include "common/errors.h"
#include "tools/bench_util.h"
#include "tools/commands.h"

namespace longnet::tools {

int cmd_bench(int argc, char** argv) {
  if (argc >= 1 && !std::strcmp(argv[0], "attention")) return bench_attention(argc - 1, argv + 1);
  if (argc >= 1 && !std::strcmp(argv[0], "train")) return bench_train(argc - 1, argv + 1);
  if (argc >= 1 && !std::strcmp(argv[0], "ring")) return bench_ring(argc - 1, argv + 1);
  if (argc >= 1 && !std::strcmp(argv[0], "core")) return bench_core(argc - 1, argv + 1);
  const bool help = argc == 0 || !std::strcmp(argv[0], "--help") || !std::strcmp(argv[0], "-h");
  if (!help) throw ConfigError(std::string("longnet bench: unknown benchmark '") + argv[0] + "' (valid: attention, train, ring, core)");
  std::puts(R"(usage: longnet bench attention [options]   attention kernels: time, peak RSS, GFLOP/s
       longnet bench train [CONFIG] [options]  one training step at long context: time, tokens/s, peak RSS
       longnet bench ring [options]            ring attention over P local ranks: time, waiting, per-rank RSS
       longnet bench core [options]            the tile core: ours against LibTorch's CPU flash attention
See longnet bench attention --help and longnet bench train --help.)");
  return 0;
}

}  // namespace longnet::tools
