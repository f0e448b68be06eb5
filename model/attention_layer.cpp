#include "model/attention_layer.h"

#include <torch/torch.h>

#include "attention/registry.h"

namespace longnet::model {

MultiHeadAttentionImpl::MultiHeadAttentionImpl(const ModelOptions& options) : options_(options) {
  const int64_t C = options.d_model;
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(C, 3 * C).bias(options.bias)));
  out = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(options.bias)));
  rotary_ = register_module("rotary", Rotary(options.head_dim(), options.max_seq_len, options.rope_theta));
  kernel_ = register_module("kernel", attention::make_kernel(options.attention));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
}

torch::Tensor MultiHeadAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  const int64_t H = options_.n_heads, D = options_.head_dim();
  auto qkv_ = qkv(x).view({B, T, 3, H, D});
  auto qk = rotary_(qkv_.narrow(2, 0, 2));  // rotate q and k in one pass: [B, T, 2, H, D]
  auto q = qk.select(2, 0), k = qk.select(2, 1), v = qkv_.select(2, 2);
  auto y = kernel_->forward(q, k, v, options_.attention.causal).out;  // [B, T, H, D]
  return dropout_(out(y.reshape({B, T, C})));
}

}  // namespace longnet::model
