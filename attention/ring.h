#pragma once
// Ring attention (Liu et al. 2023, "Ring Attention with Blockwise Transformers") over a c10d
// process group: the sequence is split over the P ranks of the group, each rank keeps its
// queries, and the key/value chunks travel around the ring (send to rank + 1, receive from
// rank - 1, overlapped with the compute of the chunk in hand), merged by log-sum-exp. The
// backward runs the ring again, the dk/dv accumulators travelling with their k/v chunk until
// they are home. Fully masked (query piece, key piece) pairs are skipped.
//
// Causal runs use the zigzag split: the sequence is cut into 2P chunks and rank p holds chunks
// p and 2P-1-p, so every rank has the same share of the causal triangle. Lengths that do not
// divide evenly give the first chunks one token more.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <vector>

#include "attention/kernel.h"

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
  // The rows of a full [B, T, ...] tensor that `rank` holds, in local order: [local_length].
  at::Tensor positions(int rank) const;

 private:
  int64_t T_;
  int rank_, world_size_;
  std::vector<std::vector<Piece>> pieces_;
};

// q, k, v: this rank's rows [B, T_local, H, D] -> out [B, T_local, H, D], lse [B, T_local, H],
// equal to the rows of dense attention over the whole sequence; differentiable in q, k, v.
// Every rank of `group` calls it with the same layout, shapes and causal flag.
AttentionOutput ring_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                               int64_t q_block = 256, int64_t k_block = 1024);

// Seconds this process has spent waiting for ring transfers to finish (after its compute of
// the step was done), since the last reset: the communication the compute did not hide.
double ring_wait_seconds();
void reset_ring_wait_seconds();

}  // namespace longnet::attention
