#include "model/mlp.h"

#include <torch/torch.h>

namespace longnet::model {

MlpImpl::MlpImpl(const ModelOptions& options) {
  const int64_t C = options.d_model, F = options.ffn_dim();
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(C, F).bias(options.bias)));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(F, C).bias(options.bias)));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return dropout_(fc2(torch::gelu(fc1(x))));
}

}  // namespace longnet::model
