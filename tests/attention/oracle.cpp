#include "tests/attention/oracle.h"

#include <cmath>
#include <limits>

#include "tests/support/support.h"

namespace longnet::testing {

attention::AttentionOutput masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& allowed, const torch::Tensor& dropout_factors) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  // Products and sums by broadcasting, not einsum/matmul: the BLAS path of a double matmul was
  // seen to give results 1e-9 apart from one process to the next, more than the tolerances.
  auto s = (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1).permute({0, 3, 1, 2}) * scale;  // [B, H, Tq, Tk]
  auto mask = allowed.dim() == 2 ? allowed.view({1, 1, allowed.size(0), allowed.size(1)}) : allowed.unsqueeze(0);
  s = s.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  auto lse = torch::logsumexp(s, -1);                                   // [B, H, Tq]
  auto empty = torch::isinf(lse);
  auto p = torch::exp(s - torch::where(empty, torch::zeros_like(lse), lse).unsqueeze(-1));
  if (dropout_factors.defined()) p = p * dropout_factors;
  // [B, Tq, Tk, H, 1] * [B, 1, Tk, H, D], summed over the keys -> [B, Tq, H, D]
  auto out = (p.permute({0, 2, 3, 1}).unsqueeze(-1) * v.unsqueeze(1)).sum(2);
  return {out, lse.transpose(1, 2)};
}

void expect_matches_oracle(const attention::AttentionOutput& got, const attention::AttentionOutput& want,
                           const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double tol) {
  EXPECT_TRUE(AllClose(got.out, want.out, tol)) << "out";
  EXPECT_TRUE(AllClose(got.lse, want.lse, tol)) << "lse";
  auto gout = torch::randn_like(got.out);
  // Out alone first (the model's use: the lse gets no gradient, and the kernels take the
  // flash backward where it fits), then out and lse.
  auto o1 = torch::autograd::grad({got.out}, {q, k, v}, {gout}, /*retain_graph=*/true);
  auto o2 = torch::autograd::grad({want.out}, {q, k, v}, {gout}, /*retain_graph=*/true);
  EXPECT_TRUE(AllClose(o1[0], o2[0], tol)) << "dq (out only)";
  EXPECT_TRUE(AllClose(o1[1], o2[1], tol)) << "dk (out only)";
  EXPECT_TRUE(AllClose(o1[2], o2[2], tol)) << "dv (out only)";
  auto glse = torch::randn_like(got.lse).masked_fill(torch::isinf(want.lse), 0.0);
  auto g1 = torch::autograd::grad({got.out, got.lse}, {q, k, v}, {gout, glse});
  auto g2 = torch::autograd::grad({want.out, want.lse}, {q, k, v}, {gout, glse});
  EXPECT_TRUE(AllClose(g1[0], g2[0], tol)) << "dq";
  EXPECT_TRUE(AllClose(g1[1], g2[1], tol)) << "dk";
  EXPECT_TRUE(AllClose(g1[2], g2[2], tol)) << "dv";
}

torch::Tensor oracle_dropout(const attention::DropoutKey& key, int64_t B, int64_t H, int64_t T,
                             torch::ScalarType dtype) {
  auto pos = torch::arange(T, torch::kLong);
  return attention::dropout_factors_all(key, B, H, pos, pos, dtype, torch::kCPU);
}

torch::Tensor causal_allowed(int64_t T) { return torch::ones({T, T}, torch::kBool).tril(); }

}  // namespace longnet::testing
