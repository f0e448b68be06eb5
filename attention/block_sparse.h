#pragma once
// `block_sparse`: attention on a set of (query block, key block) pairs — a local window, a
// block stride, global blocks, seeded random blocks (BigBird, Zaheer et al. 2020) and explicit
// pairs, in any combination. Causal drops blocks above the diagonal and masks inside it. Work
// and memory are proportional to the blocks kept.
#include "attention/decode.h"
#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/registry.h"
#include "attention/ring_layout.h"
#include "attention/transport.h"

namespace longnet::attention {

class BlockSparseAttention : public AttentionKernel {
 public:
  explicit BlockSparseAttention(const AttentionOptions& options) : options_(options) {}
  // q, k, v: [B, T, H, D] -> out: [B, T, H, D], lse: [B, T, H]
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override;
  std::string kind() const override { return "block_sparse"; }

  // [nb, nb] bool, nb = ceil(T / block_size): which (query block, key block) pairs are kept.
  // Under causal masking a row's blocks do not depend on T (its random blocks are drawn from
  // the seed, the row and the blocks up to it), so every prefix of a sequence sees what the
  // whole sequence's rows see; without it, random blocks are drawn from all nb blocks.
  torch::Tensor block_mask(int64_t T, bool causal) const;
  // Kept fraction of all block pairs at length T.
  double density(int64_t T, bool causal) const;
  double attended_pairs(int64_t T, bool causal) const override;

  // Decoding keeps a key block while a later query block (below max_len) reads it under
  // block_mask(max_len): a local window keeps its window, global blocks stay, a stride or
  // random blocks keep what their later rows will read.
  std::unique_ptr<DecodeCache> start_decoding(const DecodeShape& shape) const override;

 protected:
  AttentionOutput decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) override;
  void decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) override;

 private:
  AttentionOptions options_;
};

// block_sparse across ranks (block_sparse_across.cpp): the rows of BlockSparseAttention(options)
// over the whole sequence (its block mask is over the whole sequence's positions), computed by
// the ring exchange (cross_rank.h). Packets whose key blocks no query of a rank keeps are
// neither sent to it nor computed. stats (may be null): the bytes sent and the time waited.
AttentionOutput block_sparse_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          bool causal, const AttentionOptions& options, const RingLayout& layout,
                                          const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                                          int64_t packet_rows = 0, const DropoutKey& dropout = {},
                                          TransferStats* stats = nullptr);

// `block_sparse`: at least one pattern, a block no longer than the sequence; across ranks the
// ring exchange, skipping the packets its mask empties.
KernelEntry block_sparse_entry();

}  // namespace longnet::attention
