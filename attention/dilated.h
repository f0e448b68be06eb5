#pragma once
// `dilated`: LongNet's dilated attention (Ding et al. 2023, section 2.2). For each pair
// (segment length w, dilation rate r): cut the sequence into segments of w, keep every r-th
// position of each segment starting at offset h mod r for head h, attend inside the sparse
// segment, scatter back. The pairs are mixed by their softmax denominators (eq. 10: the lse
// merge), or, with mix: head_groups, each contiguous group of heads uses one pair.
#include "attention/kernel.h"
#include "attention/options.h"

namespace longnet::attention {

class DilatedAttention : public AttentionKernel {
 public:
  explicit DilatedAttention(const AttentionOptions& options);
  // q, k, v: [B, T, H, D] -> out: [B, T, H, D], lse: [B, T, H]
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override;
  std::string kind() const override { return "dilated"; }

  // Summed over the (segment, rate) pairs; under head_groups, averaged over the head groups.
  double attended_pairs(int64_t T, bool causal) const override;

 private:
  AttentionOptions options_;
};

// Heads [first, first + count) of group g under mix: head_groups: H split into one contiguous
// group per pair, the remainder going to the first groups.
std::pair<int64_t, int64_t> head_group(int64_t H, int64_t n_pairs, int64_t g);

}  // namespace longnet::attention
