#include "model/block.h"

#include <torch/torch.h>

#include <cmath>

namespace longnet::model {

double deepnorm_alpha(int64_t n_layers) { return std::pow(2.0 * static_cast<double>(n_layers), 0.25); }

BlockImpl::BlockImpl(const ModelOptions& options) : placement_(options.norm) {
  norm1 = register_module("norm1", Norm(options.d_model, options.bias, options.norm_type));
  attn = register_module("attn", MultiHeadAttention(MultiHeadAttentionOptions::from(options)));
  norm2 = register_module("norm2", Norm(options.d_model, options.bias, options.norm_type));
  mlp = register_module("mlp", Mlp(MlpOptions::from(options)));
  if (placement_ == NormPlacement::kDeepNorm) alpha_ = deepnorm_alpha(options.n_layers);
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  return run(x, [this](const torch::Tensor& t) { return attn(t); });
}

torch::Tensor BlockImpl::extend(const torch::Tensor& x, attention::DecodeCache& cache) {
  return run(x, [&](const torch::Tensor& t) { return attn->extend(t, cache); });
}

torch::Tensor BlockImpl::run(const torch::Tensor& x, const std::function<torch::Tensor(const torch::Tensor&)>& attend) {
  if (placement_ == NormPlacement::kPre || placement_ == NormPlacement::kSubLn) {
    auto h = x + attend(norm1(x));
    return h + mlp(norm2(h));
  }
  auto residual = [this](const torch::Tensor& t) { return alpha_ == 1.0 ? t : t * alpha_; };
  auto h = norm1(residual(x) + attend(x));
  return norm2(residual(h) + mlp(h));
}

}  // namespace longnet::model
