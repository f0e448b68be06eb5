#include "attention/merge.h"

#include <torch/torch.h>

#include <limits>

namespace longnet::attention {
namespace {

// Weights exp(l_i - l) of each side, with -inf - -inf (both empty) mapped to 0, not NaN.
std::pair<torch::Tensor, torch::Tensor> side_weights(const torch::Tensor& l1,
                                                     const torch::Tensor& l2) {
  auto l = torch::logaddexp(l1, l2);
  auto finite = torch::isfinite(l);
  auto safe_l = torch::where(finite, l, torch::zeros_like(l));
  auto w1 = torch::where(finite, torch::exp(l1 - safe_l), torch::zeros_like(l));
  auto w2 = torch::where(finite, torch::exp(l2 - safe_l), torch::zeros_like(l));
  return {w1, w2};
}

}  // namespace

AttentionOutput merge(const AttentionOutput& a, const AttentionOutput& b) {
  auto [w1, w2] = side_weights(a.lse, b.lse);
  auto out = w1.unsqueeze(-1) * a.out + w2.unsqueeze(-1) * b.out;
  return {out, torch::logaddexp(a.lse, b.lse)};
}

void merge_into_(torch::Tensor& out, torch::Tensor& lse, const torch::Tensor& block_out,
                 const torch::Tensor& block_lse) {
  auto [w1, w2] = side_weights(lse, block_lse);
  out.mul_(w1.unsqueeze(-1)).add_(block_out * w2.unsqueeze(-1));
  lse = torch::logaddexp(lse, block_lse);
}

}  // namespace longnet::attention
