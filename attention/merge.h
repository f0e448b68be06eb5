#pragma once
// Exact merge of two partial attention results over disjoint key sets (DESIGN.md):
//   l = logaddexp(l1, l2);  o = exp(l1 - l) * o1 + exp(l2 - l) * o2
#include "attention/kernel.h"

namespace longnet::attention {

// a, b: out [B, T, H, D], lse [B, T, H] -> merged out [B, T, H, D], lse [B, T, H].
// A side with lse = -inf (no keys) contributes nothing; both -inf gives out 0, lse -inf.
AttentionOutput merge(const AttentionOutput& a, const AttentionOutput& b);

// The pieces of the merge, for kernels that mix in place (dilated):
// log(exp(l1) + exp(l2)); -inf where both are -inf, with a defined (zero) gradient there.
torch::Tensor safe_logaddexp(const torch::Tensor& l1, const torch::Tensor& l2);
// exp(l_i - l), the weight of a part with lse l_i in a merge whose total lse is l; 0 where l is -inf.
torch::Tensor merge_weight(const torch::Tensor& l_i, const torch::Tensor& l);
// The merge in place, without autograd, for kernels that accumulate parts as they compute them
// (dilated's pairs, the ring's chunks): out: [..., D], lse: [...] the running result, updated;
// o, l the new part's, of the same shapes.
void merge_into_(const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& o, const torch::Tensor& l);

}  // namespace longnet::attention
