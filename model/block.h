#pragma once
// One transformer block; model.norm decides where its norms sit (see model/options.h):
//   pre, subln:     h = x + attn(norm1(x));           y = h + mlp(norm2(h))
//   post, deepnorm: h = norm1(alpha x + attn(x));     y = norm2(alpha h + mlp(h))
// alpha = (2N)^(1/4) for deepnorm (DeepNet, decoder-only, N layers), 1 otherwise; subln's
// extra norms live inside attn and mlp.
#include <torch/nn/module.h>

#include <functional>

#include "model/attention_layer.h"
#include "model/mlp.h"
#include "model/norm.h"

namespace longnet::model {

// DeepNet's residual scale for a decoder of n_layers: alpha = (2N)^(1/4).
double deepnorm_alpha(int64_t n_layers);

class BlockImpl : public torch::nn::Module {
 public:
  explicit BlockImpl(const ModelOptions& options);
  // x: [B, T, C] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x);
  // Incremental decoding: x [B, n, C], the next n positions; attention reads and grows `cache`.
  torch::Tensor extend(const torch::Tensor& x, attention::DecodeCache& cache);

  Norm norm1{nullptr}, norm2{nullptr};
  MultiHeadAttention attn{nullptr};
  Mlp mlp{nullptr};

 private:
  // The block around `attend` (attention on its input): forward and extend differ in it alone.
  torch::Tensor run(const torch::Tensor& x, const std::function<torch::Tensor(const torch::Tensor&)>& attend);

  NormPlacement placement_;
  double alpha_ = 1.0;
};
TORCH_MODULE(Block);

}  // namespace longnet::model
