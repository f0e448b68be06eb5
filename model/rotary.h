#pragma once
// Rotary position encoding (Su et al., RoFormer, eq. 34), "rotate half" layout.
#include <torch/nn/module.h>

namespace longnet::model {

class RotaryImpl : public torch::nn::Module {
 public:
  RotaryImpl(int64_t head_dim, int64_t max_seq_len, double theta);
  // x: [..., T, D] with T <= max_seq_len -> same shape, position t rotated by t * freq.
  torch::Tensor forward(const torch::Tensor& x);

 private:
  torch::Tensor cos_, sin_;  // [max_seq_len, D]: not parameters, rebuilt from the options
};
TORCH_MODULE(Rotary);

}  // namespace longnet::model
