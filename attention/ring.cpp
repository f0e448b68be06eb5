#include "attention/ring.h"

#include <torch/torch.h>

#include <algorithm>

#include "attention/blockwise.h"
#include "attention/cross_rank.h"
#include "attention/dense.h"
#include "attention/merge.h"
#include "attention/registry.h"

namespace longnet::attention {
namespace {

// Dense attention (causal or not) on a query piece and a key range, the ring's pairs.
class DensePairs : public PairKernel {
 public:
  DensePairs(bool causal, int64_t q_block, int64_t k_block, const DropoutKey& dropout)
      : causal_(causal), q_block_(q_block), k_block_(k_block), dropout_(dropout) {}
  bool attends(int64_t q_pos, int64_t q_len, int64_t k_pos, int64_t) const override {
    return !causal_ || k_pos <= q_pos + q_len - 1;
  }
  // In query slices of kRows rows, so that the partial result (and in backward the
  // dout . out products) is a slice's, not a whole piece's.
  void forward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
               const torch::Tensor& out, const torch::Tensor& lse) const override {
    for (int64_t s = 0; s < q.size(2); s += kRows) {
      const int64_t n = std::min(kRows, q.size(2) - s);
      if (!attends(q_pos + s, n, k_pos, k.size(2))) continue;
      torch::Tensor o, l;
      tiled_forward(q.narrow(2, s, n), k, v, spec(q_pos + s, k_pos), o, l);
      merge_into_(out.narrow(2, s, n), lse.narrow(2, s, n), o, l);
    }
  }
  void backward(const torch::Tensor& q, int64_t q_pos, const torch::Tensor& k, const torch::Tensor& v, int64_t k_pos,
                const torch::Tensor& out, const torch::Tensor& lse, const torch::Tensor& dout, const torch::Tensor& dlse,
                torch::Tensor dq, torch::Tensor dk, torch::Tensor dv) const override {
    for (int64_t s = 0; s < q.size(2); s += kRows) {
      const int64_t n = std::min(kRows, q.size(2) - s);
      if (!attends(q_pos + s, n, k_pos, k.size(2))) continue;
      auto rows = [&](const torch::Tensor& t) { return t.narrow(2, s, n); };
      auto dq_rows = rows(dq);
      tiled_backward(rows(q), k, v, rows(out), rows(lse), rows(dout), dlse.defined() ? rows(dlse) : dlse,
                     spec(q_pos + s, k_pos), dq_rows, dk, dv);
    }
  }

 private:
  TileSpec spec(int64_t q_pos, int64_t k_pos) const {
    TileSpec s;
    s.causal = causal_;
    s.q_pos0 = q_pos;
    s.k_pos0 = k_pos;
    s.q_block = q_block_;
    s.k_block = k_block_;
    s.dropout = &dropout_;  // the rows are at their true positions: q_pos0 + i, k_pos0 + j
    return s;
  }
  static constexpr int64_t kRows = 512;
  bool causal_;
  int64_t q_block_, k_block_;
  DropoutKey dropout_;
};

}  // namespace

AttentionOutput ring_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                               int64_t q_block, int64_t k_block, int64_t packet_rows, double softmax_scale,
                               const DropoutKey& dropout, TransferStats* stats) {
  return across_ranks(q, k, v, layout, group,
                      std::make_shared<DensePairs>(causal, q_block, std::max(q_block, k_block), dropout), packet_rows,
                      softmax_scale, stats);
}

AttentionOutput ring_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal,
                                  const AttentionOptions& o, const RingLayout& layout,
                                  const c10::intrusive_ptr<c10d::ProcessGroup>& group, const DropoutKey& dropout,
                                  TransferStats* stats) {
  return ring_attention(q, k, v, causal, layout, group, o.block_size, o.key_block, /*packet_rows=*/0, o.softmax_scale,
                        dropout, stats);
}

namespace {

class RingAttention : public AttentionKernel {
 public:
  explicit RingAttention(const AttentionOptions& options) : options_(options) {}
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override {
    return ring_attention(q, k, v, causal, RingLayout(q.size(1), 0, 1, false), {}, options_.block_size,
                          options_.key_block, /*packet_rows=*/0, options_.softmax_scale, drawn());
  }
  std::string kind() const override { return "ring"; }
  // Dense attention's rule: every key is kept (dense.h).
  std::unique_ptr<DecodeCache> start_decoding(const DecodeShape& shape) const override {
    return dense_start_decoding(options_, shape);
  }

 protected:
  AttentionOutput decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) override {
    return dense_decode_step(cache, q, k, v);
  }
  void decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) override {
    dense_decode_absorb(cache, k, v);
  }

 private:
  AttentionOptions options_;
};

}  // namespace

KernelEntry ring_entry() {
  KernelEntry e;
  e.make = [](const AttentionOptions& o) { return std::make_shared<RingAttention>(o); };
  e.across = ring_across_ranks;
  return e;
}

}  // namespace longnet::attention
