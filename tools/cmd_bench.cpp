// longnet bench attention | train | ring | core: the benchmarks (tools/bench_*.cpp).
#include "tools/bench_util.h"
#include "tools/cli.h"
#include "tools/commands.h"

namespace longnet::tools {

int cmd_bench(int argc, char** argv) {
  return dispatch("longnet bench", "The benchmarks; each answers --help.", "benchmark",
                  {{"attention", "attention kernels: time, peak RSS, GFLOP/s", bench_attention},
                   {"train", "[CONFIG] one training step at long context: time, tokens/s, peak RSS", bench_train},
                   {"ring", "attention across P local ranks: time, waiting, per-rank RSS", bench_ring},
                   {"core", "the tile core: ours against LibTorch's CPU flash attention", bench_core}},
                  argc, argv);
}

}  // namespace longnet::tools
