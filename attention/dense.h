#pragma once
// `dense`: exact softmax attention over all (causal: all past) keys, tiled over queries and
// keys so that memory is O(T * block) in forward and backward.
#include "attention/decode.h"
#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/registry.h"

namespace longnet::attention {

class DenseAttention : public AttentionKernel {
 public:
  explicit DenseAttention(const AttentionOptions& options) : options_(options) {}
  // q, k, v: [B, T, H, D] -> out: [B, T, H, D], lse: [B, T, H]
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k,
                          const torch::Tensor& v, bool causal) override;
  std::string kind() const override { return "dense"; }
  std::unique_ptr<DecodeCache> start_decoding(const DecodeShape& shape) const override;

 protected:
  AttentionOutput decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) override;
  void decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) override;

 private:
  AttentionOptions options_;
};

// Dense attention's decoding rule, which `ring` shares: every later query attends every key,
// so the cache keeps all of them (until the last position, after which nothing is needed).
std::unique_ptr<DecodeCache> dense_start_decoding(const AttentionOptions& options, const DecodeShape& shape);
AttentionOutput dense_decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v);
void dense_decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v);

// Head-major, autograd-aware tiled attention, the core the other kernels call:
// q (already multiplied by 1/sqrt(D)), k, v: [B, H, T, D] contiguous
// -> out: [B, H, Tq, D], lse: [B, H, Tq].
AttentionOutput tiled_attention_heads(const torch::Tensor& q_scaled, const torch::Tensor& k,
                                      const torch::Tensor& v, bool causal, int64_t q_block,
                                      int64_t k_block, const DropoutKey& dropout = {});

// The autograd-aware tiled attention that dense (and later kernels) call.
// q, k, v: [B, T, H, D] -> out: [B, Tq, H, D], lse: [B, Tq, H]; softmax_scale 0: 1/sqrt(D).
// Under `dropout`, query i and key j sit at positions i and j.
AttentionOutput tiled_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, bool causal, int64_t q_block,
                                int64_t k_block, double softmax_scale = 0, const DropoutKey& dropout = {});

// `dense`: no options of its own; across ranks it is ring attention (ring.h).
KernelEntry dense_entry();

}  // namespace longnet::attention
