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
  // One copy into [3, B, H, T, D]: the kernels work head-major, and their [B, T, H, D]
  // inputs below are transposed views of contiguous head-major tensors, so no further copy.
  auto qkv_h = qkv(x).view({B, T, 3, H, D}).permute({2, 0, 3, 1, 4}).contiguous();
  auto qk = rotary_(qkv_h.narrow(0, 0, 2));  // rotate q and k in one pass: [2, B, H, T, D]
  auto q = qk[0].transpose(1, 2), k = qk[1].transpose(1, 2), v = qkv_h[2].transpose(1, 2);
  auto y = kernel_->forward(q, k, v, options_.attention.causal).out;  // [B, T, H, D]
  return dropout_(out(y.reshape({B, T, C})));
}

}  // namespace longnet::model
