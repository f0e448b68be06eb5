#pragma once
// Typed options of the attention kernels (YAML section `attention:`), filled by train/config.
#include <cstdint>
#include <string>

namespace longnet::attention {

struct AttentionOptions {
  std::string kind = "dense";  // a name from the kernel registry
  int64_t block_size = 128;    // query/key tile of the blockwise kernels
  bool causal = true;          // decoder-only language models attend to the past only
};

}  // namespace longnet::attention
