// block_sparse across the ranks of a sequence-parallel group: the ring exchange (cross_rank.h)
// with the kernel's block mask over the whole sequence deciding which packets travel and which
// (query piece, key range) pairs are computed.
#include <torch/torch.h>

#include <algorithm>

#include "attention/block_sparse.h"
#include "attention/block_plan.h"
#include "attention/blockwise.h"
#include "attention/cross_rank.h"
#include "attention/merge.h"

namespace longnet::attention {
namespace {

// block_sparse's mask over the whole sequence, applied per query block to a query piece and a
// key range: the kept rows of the range in the key sets block_plan.h plans (the same planner as
// the kernel in one process), each attended by one tiled call and merged by lse.
class BlockPairs : public PairKernel {
 public:
  BlockPairs(torch::Tensor mask, int64_t block, bool causal, int64_t k_block, const DropoutKey& dropout)
      : mask_(std::move(mask)), acc_(mask_.accessor<bool, 2>()), b_(block), causal_(causal), k_block_(k_block),
        dropout_(dropout) {}

  bool attends(int64_t q_pos, int64_t q_len, int64_t k_pos, int64_t k_len) const override {
    for (int64_t i = q_pos / b_; i * b_ < q_pos + q_len; ++i)
      for (int64_t j = k_pos / b_; j * b_ < k_pos + k_len; ++j)
        if (acc_[i][j]) return true;
    return false;
  }

  void forward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
               const torch::Tensor& out, const torch::Tensor& lse) const override {
    for_each_key_set(q.size(2), q_pos, k.size(2), k_pos, k.device(), [&](int64_t qs, int64_t len, const KeySet& keys) {
      torch::Tensor o, l;
      tiled_forward(q.narrow(2, qs, len), keys.take(k, 2), keys.take(v, 2), keys.spec, o, l);
      merge_into_(out.narrow(2, qs, len), lse.narrow(2, qs, len), o, l);
    });
  }

  void backward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
                const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout, const torch::Tensor& dlse,
                torch::Tensor dq, torch::Tensor dk, torch::Tensor dv) const override {
    for_each_key_set(q.size(2), q_pos, k.size(2), k_pos, k.device(), [&](int64_t qs, int64_t len, const KeySet& keys) {
      auto kg = keys.take(k, 2).contiguous(), vg = keys.take(v, 2).contiguous();
      auto dkg = torch::zeros_like(kg), dvg = torch::zeros_like(vg), dqb = dq.narrow(2, qs, len);
      auto rows = [&](const torch::Tensor& t) { return t.narrow(2, qs, len); };
      tiled_backward(rows(q), kg, vg, rows(out), rows(lse), rows(dout), dlse.defined() ? rows(dlse) : dlse,
                     keys.spec, dqb, dkg, dvg);
      keys.add_back(dk, dkg, 2);
      keys.add_back(dv, dvg, 2);
    });
  }

 private:
  // f(first query row, query rows, keys) for each query block met by the q range and each key
  // set of it in the k range (block_plan.h).
  template <typename F>
  void for_each_key_set(int64_t q_len, int64_t q_pos, int64_t k_len, int64_t k_pos, const torch::Device& device,
                        const F& f) const {
    for (int64_t i = q_pos / b_; i * b_ < q_pos + q_len; ++i) {
      const int64_t qs = std::max(i * b_, q_pos), qe = std::min((i + 1) * b_, q_pos + q_len);
      for (const auto& keys : plan_key_sets(acc_, b_, causal_, k_block_, i, qs, k_pos, k_len, device, &dropout_))
        f(qs - q_pos, qe - qs, keys);
    }
  }

  torch::Tensor mask_;
  torch::TensorAccessor<bool, 2> acc_;
  int64_t b_;
  bool causal_;
  int64_t k_block_;
  DropoutKey dropout_;
};

}  // namespace

AttentionOutput block_sparse_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          bool causal, const AttentionOptions& options, const RingLayout& layout,
                                          const c10::intrusive_ptr<c10d::ProcessGroup>& group, int64_t packet_rows,
                                          const DropoutKey& dropout, TransferStats* stats) {
  auto mask = BlockSparseAttention(options).block_mask(layout.length(), causal);
  return across_ranks(q, k, v, layout, group,
                      std::make_shared<BlockPairs>(mask, options.block_size, causal,
                                                   std::max(options.block_size, options.key_block), dropout),
                      packet_rows, options.softmax_scale, stats);
}

}  // namespace longnet::attention
