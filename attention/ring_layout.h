#pragma once
// Which rows of a sequence each rank of a sequence-parallel group holds, and the checks every
// kernel across ranks makes of its inputs.
//
// Causal runs of ring-style kernels use the zigzag split: the sequence is cut into 2P chunks and
// rank p holds chunks p and 2P-1-p, so that every rank has the same share of the causal
// triangle; otherwise rank p holds the p-th of P contiguous chunks. Lengths that do not divide
// evenly give the first chunks one token more.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <vector>

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

// The checks every kernel across ranks makes of its inputs: q, k, v of one [B, T_local, H, D]
// shape, T_local this rank's share under `layout`, and `group` the layout's ranks (a layout of
// one rank needs none). `what` names the kernel in the message.
void check_cross_rank_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v, const RingLayout& layout,
                             const c10::intrusive_ptr<c10d::ProcessGroup>& group);

}  // namespace longnet::attention
