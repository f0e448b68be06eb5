#include "model/block.h"

#include <torch/torch.h>

namespace longnet::model {

BlockImpl::BlockImpl(const ModelOptions& options) {
  norm1 = register_module("norm1", Norm(options.d_model, options.bias));
  attn = register_module("attn", MultiHeadAttention(options));
  norm2 = register_module("norm2", Norm(options.d_model, options.bias));
  mlp = register_module("mlp", Mlp(options));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x) {
  auto h = x + attn(norm1(x));
  return h + mlp(norm2(h));
}

}  // namespace longnet::model
