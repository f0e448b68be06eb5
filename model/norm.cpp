#include "model/norm.h"

#include <torch/torch.h>

namespace longnet::model {

constexpr double kEps = 1e-5;

NormImpl::NormImpl(int64_t dim, bool with_bias, NormType type) : dim_(dim), type_(type) {
  weight = register_parameter("weight", torch::ones({dim}));
  if (with_bias && type == NormType::kLayerNorm) bias = register_parameter("bias", torch::zeros({dim}));
}

torch::Tensor NormImpl::forward(const torch::Tensor& x) {
  if (type_ == NormType::kRmsNorm) return x * torch::rsqrt(x.square().mean(-1, true) + kEps) * weight;
  return torch::layer_norm(x, {dim_}, weight, bias, kEps);
}

}  // namespace longnet::model
