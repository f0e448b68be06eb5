#pragma once
// LayerNorm (optional bias, as nanoGPT's `bias: false` models) or RMSNorm (Zhang & Sennrich
// 2019: x / sqrt(mean(x^2) + eps) * weight, no centring, no bias).
#include <torch/nn/module.h>

#include "model/options.h"

namespace longnet::model {

class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t dim, bool bias, NormType type = NormType::kLayerNorm);
  // x: [..., dim] -> [..., dim]
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias;

 private:
  int64_t dim_;
  NormType type_;
};
TORCH_MODULE(Norm);

}  // namespace longnet::model
