#pragma once
// The oracle every kernel is tested against (DESIGN.md): dense softmax attention with an
// explicit boolean mask of the allowed (query, key) pairs, written as plainly as possible.
#include <torch/torch.h>

#include "attention/kernel.h"

namespace longnet::testing {

// The float64 tolerance of the oracle tests. The kernels agree with the oracle to ~1e-15 in most
// processes, but LibTorch's double GEMM (MKL) was seen to land 1e-9 away in a few processes
// out of forty, the same inputs giving the same result within a process: a bug in a kernel
// shows as 1e-3 or more.
constexpr double kFloat64Tol = 1e-8;

// q: [B, Tq, H, D], k, v: [B, Tk, H, D], allowed: [H, Tq, Tk] or [Tq, Tk] bool
// -> out: [B, Tq, H, D], lse: [B, Tq, H]. A query with no allowed key: out 0, lse -inf.
// dropout_factors [B, H, Tq, Tk] (optional): multiplied into the probabilities after the softmax.
attention::AttentionOutput masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& allowed, const torch::Tensor& dropout_factors = {});

// The factors of `key` for every (batch row, head) of [B, T, H, D] inputs at positions 0..T-1,
// from the kernels' own hash (attention/dropout.h): [B, H, T, T].
torch::Tensor oracle_dropout(const attention::DropoutKey& key, int64_t B, int64_t H, int64_t T,
                             torch::ScalarType dtype);

// Expects a kernel's result to match the oracle's: out and lse, and the gradients of q, k, v
// under a random upstream gradient of out alone, then of both out and lse (lse feeds the merges of the dilated and
// ring kernels, so its gradient matters; it is zero where the oracle's lse is -inf, a query
// with no key). Failures print the max difference.
void expect_matches_oracle(const attention::AttentionOutput& got, const attention::AttentionOutput& want,
                           const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, double tol);

// [Tq, Tk] mask: key position <= query position.
torch::Tensor causal_allowed(int64_t T);

}  // namespace longnet::testing
