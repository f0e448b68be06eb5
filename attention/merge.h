#pragma once
// Exact merge of two partial attention results over disjoint key sets (DESIGN.md):
//   l = logaddexp(l1, l2);  o = exp(l1 - l) * o1 + exp(l2 - l) * o2
#include "attention/kernel.h"

namespace longnet::attention {

// a, b: out [B, T, H, D], lse [B, T, H] -> merged out [B, T, H, D], lse [B, T, H].
// A side with lse = -inf (no keys) contributes nothing; both -inf gives out 0, lse -inf.
AttentionOutput merge(const AttentionOutput& a, const AttentionOutput& b);

}  // namespace longnet::attention
