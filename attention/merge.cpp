#include "attention/merge.h"

#include <torch/torch.h>

#include <limits>

namespace longnet::attention {

torch::Tensor safe_logaddexp(const torch::Tensor& l1, const torch::Tensor& l2) {
  // Plain logaddexp has a NaN gradient where both sides are -inf, which would poison every
  // later merge.
  auto empty = torch::isinf(l1) & torch::isinf(l2) & (l1 < 0) & (l2 < 0);
  auto zero = torch::zeros_like(l1);
  auto l = torch::logaddexp(torch::where(empty, zero, l1), torch::where(empty, zero, l2));
  return torch::where(empty, l1, l);
}

torch::Tensor merge_weight(const torch::Tensor& l_i, const torch::Tensor& l) {
  auto finite = torch::isfinite(l);
  auto safe_l = torch::where(finite, l, torch::zeros_like(l));
  return torch::where(finite, torch::exp(l_i - safe_l), torch::zeros_like(l));
}

void merge_into_(const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& o, const torch::Tensor& l) {
  auto merged = safe_logaddexp(lse, l);
  out.mul_(merge_weight(lse, merged).unsqueeze(-1)).addcmul_(o, merge_weight(l, merged).unsqueeze(-1));
  lse.copy_(merged);
}

AttentionOutput merge(const AttentionOutput& a, const AttentionOutput& b) {
  auto l = safe_logaddexp(a.lse, b.lse);
  auto out = merge_weight(a.lse, l).unsqueeze(-1) * a.out + merge_weight(b.lse, l).unsqueeze(-1) * b.out;
  return {out, l};
}

}  // namespace longnet::attention
