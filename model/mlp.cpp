#include "model/mlp.h"

#include <torch/torch.h>

#include "model/recompute.h"

namespace longnet::model {

MlpOptions MlpOptions::from(const ModelOptions& m) {
  return MlpOptions(m.d_model, m.ffn_dim())
      .kind(m.mlp)
      .bias(m.bias)
      .subln(m.norm == NormPlacement::kSubLn)
      .norm_type(m.norm_type)
      .dropout(m.dropout)
      .chunk_tokens(m.mlp_chunk);
}

MlpImpl::MlpImpl(const MlpOptions& o) : options(o) {
  const int64_t C = o.d_model(), F = o.d_ff();
  const int64_t fc1_out = o.kind() == MlpKind::kSwiGlu ? 2 * F : F;
  fc1 = register_module("fc1", torch::nn::Linear(torch::nn::LinearOptions(C, fc1_out).bias(o.bias())));
  if (o.subln()) inner_norm = register_module("inner_norm", Norm(F, o.bias(), o.norm_type()));
  fc2 = register_module("fc2", torch::nn::Linear(torch::nn::LinearOptions(F, C).bias(o.bias())));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout()));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  const int64_t chunk = options.chunk_tokens(), T = x.size(1);
  if (chunk <= 0 || T <= chunk) return whole(x);
  std::vector<torch::Tensor> parts;
  for (int64_t t = 0; t < T; t += chunk)
    parts.push_back(recompute_in_backward([this](const torch::Tensor& c) { return whole(c); },
                                          x.narrow(1, t, std::min(chunk, T - t))));
  return torch::cat(parts, 1);
}

torch::Tensor MlpImpl::whole(const torch::Tensor& x) {
  auto h = fc1(x);
  if (options.kind() == MlpKind::kSwiGlu) {
    auto gate_up = h.chunk(2, -1);
    h = torch::silu(gate_up[0]) * gate_up[1];
  } else {
    h = torch::gelu(h);
  }
  if (inner_norm) h = inner_norm(h);
  return dropout_(fc2(h));
}

}  // namespace longnet::model
