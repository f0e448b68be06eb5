#pragma once
// Attention across the ranks of a c10d process group (sequence parallelism), after Ring
// Attention (Liu et al. 2023): the sequence is split over the P ranks, each rank keeps its
// query rows, and every other rank's key/value rows come to it in P - 1 rounds; in round s rank
// p exchanges with ranks p - s (from which it receives) and p + s (to which it sends), point to
// point, in packets, sends on a thread of their own and receives posted a few packets ahead of
// the compute, partial results merged by log-sum-exp. The backward runs the rounds again and
// sends each packet's dk/dv back to its owner, which receives them on another thread and adds
// them into its own.
//
// Rows travel straight from their owner in packets of a sixty-fourth of a rank's share (at
// least 128 rows) rather than relayed round the ring as whole chunks: a relay must hold a whole
// received chunk (and, in backward, its travelling dk/dv) while it forwards it, which costs each
// rank as much again as its share of q, k and v. Each packet goes only to the ranks whose
// queries attend to some of it, so a causal or block-sparse mask also skips the transfers (and
// whole rounds) it empties.
//
// Causal runs use the zigzag split: the sequence is cut into 2P chunks and rank p holds chunks
// p and 2P-1-p, so every rank has the same share of the causal triangle. Lengths that do not
// divide evenly give the first chunks one token more.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <vector>

#include "attention/kernel.h"
#include "attention/options.h"

namespace longnet::attention {

// Which tokens of a sequence of T live on which rank.
class RingLayout {
 public:
  struct Piece {
    int64_t position;  // first token's position in the sequence
    int64_t length;
    int64_t offset;    // first token's row in its rank's local tensor
  };
  RingLayout(int64_t T, int rank, int world_size, bool zigzag);

  const std::vector<Piece>& pieces(int rank) const { return pieces_.at(static_cast<size_t>(rank)); }
  int64_t local_length(int rank) const;
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  int64_t length() const { return T_; }
  bool zigzag() const { return zigzag_; }
  // The rows of a full [B, T, ...] tensor that `rank` holds, in local order: [local_length].
  at::Tensor positions(int rank) const;

 private:
  int64_t T_;
  int rank_, world_size_;
  bool zigzag_;
  std::vector<std::vector<Piece>> pieces_;
};

// q, k, v: this rank's rows [B, T_local, H, D] -> out [B, T_local, H, D], lse [B, T_local, H],
// equal to the rows of dense attention over the whole sequence; differentiable in q, k, v.
// Every rank of `group` calls it with the same layout, shapes and causal flag. A layout of one
// rank needs no group (null). packet_rows: rows per transfer, 0 for 1/64 of a share (at least 128).
// softmax_scale: 0 for 1/sqrt(D). dropout: the mask of the pairs at their sequence positions.
AttentionOutput ring_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                               int64_t q_block = 256, int64_t k_block = 1024, int64_t packet_rows = 0,
                               double softmax_scale = 0, const DropoutKey& dropout = {});

// ring_attention with the options' block sizes and softmax scale: the cross-rank form of
// `dense` and `ring` (their registry entries' `across`).
AttentionOutput ring_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                                  const AttentionOptions& options, const RingLayout& layout,
                                  const c10::intrusive_ptr<c10d::ProcessGroup>& group, const DropoutKey& dropout);

// block_sparse across ranks: the rows of BlockSparseAttention(options) over the whole sequence
// (its block mask is over the whole sequence's positions). Packets whose key blocks no query
// of a rank keeps are neither sent to it nor computed.
AttentionOutput block_sparse_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          bool causal, const AttentionOptions& options, const RingLayout& layout,
                                          const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                                          int64_t packet_rows = 0, const DropoutKey& dropout = {});

// The checks every kernel across ranks makes of its inputs: q, k, v of one [B, T_local, H, D]
// shape, T_local this rank's share under `layout`, and `group` the layout's ranks (a layout of
// one rank needs none). `what` names the kernel in the message.
void check_cross_rank_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v, const RingLayout& layout,
                             const c10::intrusive_ptr<c10d::ProcessGroup>& group);

struct KernelEntry;
// `ring`: dense attention computed by the cross-rank code, over a ring of one rank in one
// process and across the sequence-parallel group's ranks when there is one.
KernelEntry ring_entry();

// Seconds this process has spent waiting for transfers to finish (after its compute of the
// round was done), since the last reset: the communication the compute did not hide.
double ring_wait_seconds();
void reset_ring_wait_seconds();
// Bytes of k/v (and dk/dv) this process has sent since the last reset.
int64_t ring_bytes_sent();
// For the other cross-rank kernels (dilated): adds to both figures.
void record_transfers(int64_t bytes_sent, double wait_seconds);

}  // namespace longnet::attention
