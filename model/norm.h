#pragma once
// LayerNorm with an optional bias (nanoGPT's `bias: false` models have none).
#include <torch/nn/module.h>

namespace longnet::model {

class NormImpl : public torch::nn::Module {
 public:
  NormImpl(int64_t dim, bool bias);
  // x: [..., dim] -> [..., dim]
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight, bias;

 private:
  int64_t dim_;
};
TORCH_MODULE(Norm);

}  // namespace longnet::model
