#include "model/norm.h"

#include <torch/torch.h>

namespace longnet::model {

NormImpl::NormImpl(int64_t dim, bool with_bias) : dim_(dim) {
  weight = register_parameter("weight", torch::ones({dim}));
  if (with_bias) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  return torch::layer_norm(x, {dim_}, weight, bias, 1e-5);
}

}  // namespace longnet::model
