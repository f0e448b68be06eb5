#include "attention/merge.h"

#include <torch/torch.h>

#include <limits>

namespace longnet::attention {
namespace {

// logaddexp whose value and gradient stay defined where both sides are -inf (no keys on
// either side): plain logaddexp has a NaN gradient there, which would poison every later merge.
torch::Tensor safe_logaddexp(const torch::Tensor& l1, const torch::Tensor& l2) {
  auto empty = torch::isinf(l1) & torch::isinf(l2) & (l1 < 0) & (l2 < 0);
  auto zero = torch::zeros_like(l1);
  auto l = torch::logaddexp(torch::where(empty, zero, l1), torch::where(empty, zero, l2));
  return torch::where(empty, l1, l);
}

// Weights exp(l_i - l) of each side, with -inf - -inf (both empty) mapped to 0, not NaN.
std::pair<torch::Tensor, torch::Tensor> side_weights(const torch::Tensor& l1,
                                                     const torch::Tensor& l2) {
  auto l = safe_logaddexp(l1, l2);
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
  return {out, safe_logaddexp(a.lse, b.lse)};
}

}  // namespace longnet::attention
