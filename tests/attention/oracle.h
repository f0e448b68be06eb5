#pragma once
// The oracle every kernel is tested against (DESIGN.md): dense softmax attention with an
// explicit boolean mask of the allowed (query, key) pairs, written as plainly as possible.
#include <torch/torch.h>

#include "attention/kernel.h"

namespace longnet::testing {

// q: [B, Tq, H, D], k, v: [B, Tk, H, D], allowed: [H, Tq, Tk] or [Tq, Tk] bool
// -> out: [B, Tq, H, D], lse: [B, Tq, H]. A query with no allowed key: out 0, lse -inf.
attention::AttentionOutput masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& allowed);

// [Tq, Tk] mask: key position <= query position.
torch::Tensor causal_allowed(int64_t T);

}  // namespace longnet::testing
