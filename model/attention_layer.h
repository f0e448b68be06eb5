#pragma once
// Multi-head self-attention: fused QKV projection -> rotary -> attention kernel -> output
// projection. The kernel comes from the registry (attention.kind).
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/dropout.h>

#include "attention/kernel.h"
#include "model/options.h"
#include "model/rotary.h"

namespace longnet::model {

class MultiHeadAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadAttentionImpl(const ModelOptions& options);
  // x: [B, T, C] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear qkv{nullptr}, out{nullptr};

 private:
  ModelOptions options_;
  Rotary rotary_{nullptr};
  attention::KernelPtr kernel_;
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(MultiHeadAttention);

}  // namespace longnet::model
