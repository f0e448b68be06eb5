#pragma once
// Position-wise feed-forward network: fc1 -> GELU -> fc2.
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "model/options.h"

namespace longnet::model {

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const ModelOptions& options);
  // x: [B, T, C] -> [B, T, C]
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(Mlp);

}  // namespace longnet::model
