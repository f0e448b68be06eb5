#pragma once
// Multi-head self-attention, a LibTorch module users can drop in:
//   fused QKV projection (one matmul) -> rotary / xPos on q, k -> grouped-query expansion
//   -> attention kernel from the registry -> [Sub-LN] -> output projection.
// Grouped-query attention (Ainslie et al. 2023): n_kv_heads key/value heads, each shared by
// n_heads / n_kv_heads query heads; the projection and whatever stores k and v shrink by that
// factor. Sub-LN (MAGNETO) normalises the heads' concatenated output before `out`.
#include <torch/arg.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/linear.h>

#include "attention/decode.h"
#include "attention/documents.h"
#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/sequence_parallel.h"
#include "model/norm.h"
#include "model/options.h"
#include "model/rotary.h"

namespace longnet::model {

struct MultiHeadAttentionOptions {
  MultiHeadAttentionOptions(int64_t d_model, int64_t n_heads) : d_model_(d_model), n_heads_(n_heads) {}
  // The layer of a model built from config.
  static MultiHeadAttentionOptions from(const ModelOptions& m);
  int64_t head_dim() const { return d_model_ / n_heads_; }
  int64_t kv_heads() const { return n_kv_heads_ > 0 ? n_kv_heads_ : n_heads_; }

  TORCH_ARG(int64_t, d_model);
  TORCH_ARG(int64_t, n_heads);
  TORCH_ARG(int64_t, n_kv_heads) = 0;  // 0: n_heads (plain multi-head attention)
  TORCH_ARG(bool, bias) = false;
  TORCH_ARG(bool, subln) = false;
  TORCH_ARG(NormType, norm_type) = NormType::kLayerNorm;
  TORCH_ARG(PositionKind, pos) = PositionKind::kRope;
  TORCH_ARG(int64_t, max_seq_len) = 2048;
  TORCH_ARG(double, rope_theta) = 10000.0;
  TORCH_ARG(double, xpos_scale_base) = 512.0;
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(attention::AttentionOptions, attention);  // kind "dense" unless set

};

class MultiHeadAttentionImpl : public torch::nn::Module {
 public:
  explicit MultiHeadAttentionImpl(const MultiHeadAttentionOptions& options);
  // x: [B, T, C] -> [B, T, C]; under sequence parallelism x is this rank's rows of the sequence
  // (sp->positions()) and so is the result.
  torch::Tensor forward(const torch::Tensor& x);

  // Incremental decoding (attention/decode.h), in eval mode: x [B, n, C], the next n positions
  // of a sequence whose keys so far `cache` holds -> [B, n, C], what forward over the whole
  // sequence gives those rows. Rotary/xPos turn each row at its position; xPos's centre is
  // fixed at max_seq_len / 2 (q.k depends on the distance alone, whatever the centre).
  torch::Tensor extend(const torch::Tensor& x, attention::DecodeCache& cache);
  // The shape of this layer's cache for `batch` sequences of up to max_seq_len positions.
  attention::DecodeShape decode_shape(int64_t batch, const torch::TensorOptions& options) const;

  // From now on the layer runs across the ranks of `sp`: its kernel is replaced by the kernel's
  // cross-rank form, and rotary/xPos use the rows' positions in the whole sequence.
  void set_sequence_parallel(attention::SequenceParallelPtr sp);

  // From now on forward attends each document of a row alone (attention/documents.h): the
  // model sets each forward's starts (model.document_mask); null: the rows are one sequence.
  // Incremental decoding ignores them (one document: lm.h).
  void set_documents(std::shared_ptr<const attention::DocumentStarts> starts) { documents_ = std::move(starts); }

  // The attention kernel the layer calls (its dropout key is set through it: lm.h).
  attention::AttentionKernel& kernel() { return *kernel_; }

  // Rows of qkv->weight ([(H + 2 G) * D, C]) that project queries, keys and values.
  torch::Tensor q_weight() const { return qkv->weight.narrow(0, 0, q_rows_); }
  torch::Tensor k_weight() const { return qkv->weight.narrow(0, q_rows_, kv_rows_); }
  torch::Tensor v_weight() const { return qkv->weight.narrow(0, q_rows_ + kv_rows_, kv_rows_); }

  MultiHeadAttentionOptions options;
  torch::nn::Linear qkv{nullptr}, out{nullptr};
  Norm inner_norm{nullptr};  // Sub-LN only
  Rotary rotary{nullptr};    // rope and xpos only

 private:
  // forward (cache null) and extend share every step but the kernel call.
  torch::Tensor attend(const torch::Tensor& x, attention::DecodeCache* cache);

  int64_t q_rows_, kv_rows_;
  attention::KernelPtr kernel_;
  attention::SequenceParallelPtr sp_;
  std::shared_ptr<const attention::DocumentStarts> documents_;
  torch::nn::Dropout dropout_{nullptr};
};
TORCH_MODULE(MultiHeadAttention);

}  // namespace longnet::model
