#pragma once
// One transformer block, pre-LN: x = x + attn(norm1(x)); x = x + mlp(norm2(x)).
#include <torch/nn/module.h>

#include "model/attention_layer.h"
#include "model/mlp.h"
#include "model/norm.h"

namespace longnet::model {

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelOptions& options);
  // x: [B, T, C] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x);

  Norm norm1{nullptr}, norm2{nullptr};
  MultiHeadAttention attn{nullptr};
  Mlp mlp{nullptr};
};
TORCH_MODULE(Block);

}  // namespace longnet::model
