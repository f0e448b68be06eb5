#pragma once
// The exchange that ring-style kernels (dense/ring, block_sparse) run across the ranks of a
// c10d process group, after Ring Attention (Liu et al. 2023): the sequence is split over the P
// ranks (ring_layout.h), each rank keeps its query rows, and every other rank's key/value rows
// come to it in P - 1 rounds; in round s rank p exchanges with ranks p - s (from which it
// receives) and p + s (to which it sends), point to point, in packets, sends on a thread of
// their own and receives posted a few packets ahead of the compute, partial results merged by
// log-sum-exp. The backward runs the rounds again and sends each packet's dk/dv back to its
// owner, which receives them on another thread and adds them into its own.
//
// Rows travel straight from their owner in packets of a sixty-fourth of a rank's share (at
// least 128 rows) rather than relayed round the ring as whole chunks: a relay must hold a whole
// received chunk (and, in backward, its travelling dk/dv) while it forwards it, which costs each
// rank as much again as its share of q, k and v. Each packet goes only to the ranks whose
// queries attend to some of it (PairKernel::attends), so a causal or block-sparse mask also
// skips the transfers (and whole rounds) it empties. What a kernel computes on each (query
// piece, key range) pair is its PairKernel; the exchange is the same for all.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <memory>

#include "attention/kernel.h"
#include "attention/ring_layout.h"
#include "attention/transport.h"

namespace longnet::attention {

// What one query piece computes against one range of keys (a piece of its own rank, or a
// received packet). Head-major tensors: q rows [B, H, lq, D] (scaled), k, v [B, H, lk, D];
// positions are those of the first row in the sequence. forward merges into out, lse by lse;
// backward adds into dq, dk, dv.
class PairKernel {
 public:
  virtual ~PairKernel() = default;
  // Whether some query of [q_pos, q_pos + q_len) attends to some key of [k_pos, k_pos + k_len).
  virtual bool attends(int64_t q_pos, int64_t q_len, int64_t k_pos, int64_t k_len) const = 0;
  virtual void forward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v,
                       int64_t k_pos, const torch::Tensor& out, const torch::Tensor& lse) const = 0;
  virtual void backward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v,
                        int64_t k_pos, const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout,
                        const torch::Tensor& dlse, torch::Tensor dq, torch::Tensor dk, torch::Tensor dv) const = 0;
};

// q, k, v: this rank's rows [B, T_local, H, D] -> out [B, T_local, H, D], lse [B, T_local, H]:
// `pairs` over the whole sequence, this rank's rows; differentiable in q, k, v. Every rank of
// `group` calls it with the same layout, shapes and pairs. A layout of one rank needs no group
// (null). packet_rows: rows per transfer, 0 for 1/64 of a share (at least 128). softmax_scale:
// 0 for 1/sqrt(D). stats (may be null) receives the bytes sent and the time waited.
AttentionOutput across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                             std::shared_ptr<const PairKernel> pairs, int64_t packet_rows, double softmax_scale,
                             TransferStats* stats);

}  // namespace longnet::attention
