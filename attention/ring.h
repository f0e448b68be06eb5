#pragma once
// `ring`: dense attention computed by the cross-rank exchange (cross_rank.h), over a ring of one
// rank in one process and across the sequence-parallel group's ranks when there is one; the
// same function is `dense`'s form across ranks.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/ring_layout.h"
#include "attention/transport.h"

namespace longnet::attention {

// q, k, v: this rank's rows [B, T_local, H, D] -> out [B, T_local, H, D], lse [B, T_local, H],
// equal to the rows of dense attention over the whole sequence; differentiable in q, k, v.
// Every rank of `group` calls it with the same layout, shapes and causal flag. A layout of one
// rank needs no group (null). packet_rows: rows per transfer, 0 for 1/64 of a share (at least 128).
// softmax_scale: 0 for 1/sqrt(D). dropout: the mask of the pairs at their sequence positions.
// stats (may be null): where the bytes sent and the time waited are added.
AttentionOutput ring_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                               int64_t q_block = 256, int64_t k_block = 1024, int64_t packet_rows = 0,
                               double softmax_scale = 0, const DropoutKey& dropout = {},
                               TransferStats* stats = nullptr);

// ring_attention with the options' block sizes and softmax scale: the cross-rank form of
// `dense` and `ring` (their registry entries' `across`).
AttentionOutput ring_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                                  const AttentionOptions& options, const RingLayout& layout,
                                  const c10::intrusive_ptr<c10d::ProcessGroup>& group, const DropoutKey& dropout,
                                  TransferStats* stats);

struct KernelEntry;
KernelEntry ring_entry();

}  // namespace longnet::attention
