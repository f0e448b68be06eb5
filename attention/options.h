#pragma once
// Typed options of the attention kernels (YAML section `attention:`), filled by train/config.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace longnet::attention {

struct AttentionOptions {
  std::string kind = "dense";  // a name from the kernel registry
  int64_t block_size = 256;    // query tile of the tiled kernels; block_sparse's block
  int64_t key_block = 1024;    // key tile: rows up to this many keys take one fused softmax
  bool causal = true;          // decoder-only language models attend to the past only
  double softmax_scale = 0;    // the factor on q.k before the softmax; 0: 1/sqrt(head_dim)
  double dropout = 0;          // attention-probability dropout in training (dropout.h); 0: off

  // dilated (LongNet): one (segment length, dilation rate) pair per entry.
  std::vector<int64_t> segment_lengths = {2048};
  std::vector<int64_t> dilation_rates = {1};
  std::string mix = "lse";     // lse (the paper's weighting) | head_groups (the Python port's)

  // block_sparse: which (query block, key block) pairs are attended, in units of block_size.
  int64_t local_blocks = 1;    // key blocks on each side of the diagonal (0: the diagonal only; -1: none)
  int64_t stride = 0;          // also every stride-th block behind/ahead (0: off)
  int64_t global_blocks = 0;   // the first g blocks see, and are seen by, every block
  int64_t random_blocks = 0;   // extra random key blocks per query block (BigBird)
  int64_t seed = 0;            // for random_blocks
  std::vector<std::pair<int64_t, int64_t>> pairs;  // explicit (query block, key block) pairs
};

}  // namespace longnet::attention
