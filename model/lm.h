#pragma once
// Decoder-only language model: embedding -> N blocks -> final norm (pre, subln) -> tied LM head.
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>

#include <functional>
#include <memory>
#include <vector>

#include "attention/decode.h"

#include "model/block.h"
#include "model/norm.h"
#include "model/options.h"
#include "model/precision.h"

namespace longnet::model {

// Incremental decoding (attention/decode.h): each layer's cache for one batch of sequences.
struct DecodeState {
  std::vector<std::unique_ptr<attention::DecodeCache>> layers;
  int64_t length() const { return layers.empty() ? 0 : layers.front()->length; }  // positions decoded
  int64_t bytes() const;  // the keys and values held, over all layers
};

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(const ModelOptions& options);
  // tokens: [B, T] int64 -> logits: [B, T, V]
  torch::Tensor forward(const torch::Tensor& tokens);
  // tokens, targets: [B, T] int64 -> mean cross-entropy over all targets (nats), a scalar.
  torch::Tensor loss(const torch::Tensor& tokens, const torch::Tensor& targets);
  // Summed cross-entropy (nats), for exact averages over batches. Over more than
  // model.loss_chunk targets the head and the loss run in token chunks (no [B*T, V] tensor).
  // A target of kNoTarget (common/targets.h) adds nothing and has no gradient.
  torch::Tensor loss_sum(const torch::Tensor& tokens, const torch::Tensor& targets);
  // tokens, targets: [B, T] -> [B, T] cross-entropy of each target (nats), without autograd.
  torch::Tensor token_losses(const torch::Tensor& tokens, const torch::Tensor& targets);
  // tokens: [B, T], positions: [n] int64 -> the logits [B, n, V] at those positions only (no
  // [B, T, V] tensor), float32, without autograd.
  torch::Tensor logits_at(const torch::Tensor& tokens, const torch::Tensor& positions);

  // Incremental decoding with a KV cache, in eval mode and without autograd: a state for
  // `batch` sequences of up to max_seq_len positions (a ConfigError for a model trained with
  // attention.causal: false), then extend() with each next tokens [B, n] -> the logits of the
  // last of them [B, 1, V] (all of them [B, n, V]), what forward over the whole sequence so far
  // gives at those positions. Under model.document_mask the tokens must be one document (no
  // end-of-document token; a ConfigError otherwise).
  DecodeState start_decoding(int64_t batch);
  torch::Tensor extend(DecodeState& state, const torch::Tensor& tokens, bool all_positions = false);

  // How block i is run on x; unset: block.forward(x). Passes such as activation checkpointing
  // (model/recompute.h) install one, so that the blocks themselves stay plain.
  using BlockRunner = std::function<torch::Tensor(int64_t, BlockImpl&, const torch::Tensor&)>;
  void set_block_runner(BlockRunner runner) { runner_ = std::move(runner); }

  // train.precision: forward, loss_sum and token_losses run under its autocast (precision.h)
  // on the parameters' device. Default float32.
  void set_precision(Precision precision) { precision_ = precision; }
  Precision precision() const { return precision_; }

  const ModelOptions& options() const { return options_; }
  int64_t num_parameters() const;

  torch::nn::Embedding embed{nullptr};
  torch::nn::ModuleList blocks{nullptr};
  Norm norm{nullptr};  // none for post and deepnorm

 private:
  torch::Tensor hidden(const torch::Tensor& tokens);  // [B, T] -> [B, T, C], after final norm
  // model.document_mask: the attention layers' document starts for this forward's tokens.
  void mask_documents(const torch::Tensor& tokens);
  torch::Tensor head(const torch::Tensor& h) const;   // [..., C] -> logits [..., V]
  AutocastState autocast() const;                     // precision_ on the parameters' device

  ModelOptions options_;
  torch::nn::Dropout dropout_{nullptr};
  BlockRunner runner_;
  Precision precision_ = Precision::kFloat32;
};
TORCH_MODULE(LanguageModel);

// Sequence parallelism as a pass: every attention layer runs across the ranks of `sp`. The
// model then takes each rank's rows of the sequence (sp->local_rows of tokens and targets, after
// sp->set_length) and loss_sum is the sum over this rank's targets; summed over the ranks it
// is the single-process loss_sum. Everything but attention is per token and runs as before.
void enable_sequence_parallel(LanguageModelImpl& model, attention::SequenceParallelPtr sp);

// Attention dropout (attention.dropout, attention/dropout.h): the key of the next forwards'
// masks. seed: the run's; step: the optimizer step; sample0: the global index of batch row 0
// (micro-batch and data-parallel replica). Layer i's kernel draws with layer i and its rate.
// Whoever runs the steps calls it before each micro-batch; a recomputed block (recompute.h)
// draws the same mask again because the key is unchanged within the step.
void set_attention_dropout(LanguageModelImpl& model, uint64_t seed, uint64_t step, int64_t sample0);

// tokens, targets: whole windows [B, T]. The model's loss_sum over them, or with `sp` (the
// model's) over this rank's rows of them, sp set to length T first.
torch::Tensor window_loss_sum(LanguageModelImpl& model, const attention::SequenceParallelPtr& sp,
                              const torch::Tensor& tokens, const torch::Tensor& targets);

}  // namespace longnet::model
