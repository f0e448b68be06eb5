#include "model/lm.h"

#include <torch/torch.h>

#include "common/errors.h"
#include "common/targets.h"
#include "model/chunked_loss.h"
#include "model/init.h"

namespace longnet::model {

LanguageModelImpl::LanguageModelImpl(const ModelOptions& options) : options_(options) {
  embed = register_module("embed", torch::nn::Embedding(options.vocab_size, options.d_model));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.n_layers; ++i) blocks->push_back(Block(options));
  // Post-norm blocks end in a norm already (torchscale has no final norm for them either).
  if (options.norm == NormPlacement::kPre || options.norm == NormPlacement::kSubLn)
    norm = register_module("norm", Norm(options.d_model, options.bias, options.norm_type));
  init_weights(*this);
}

void LanguageModelImpl::mask_documents(const torch::Tensor& tokens) {
  if (!options_.document_mask) return;
  if (options_.document_separator < 0)
    throw ConfigError("model.document_mask: the model was built without its tokenizer's end-of-document id, which "
                      "separates the documents (expected a model built from a config with a tokenizer)");
  auto starts = std::make_shared<const attention::DocumentStarts>(
      attention::document_starts(tokens, options_.document_separator));
  for (size_t i = 0; i < blocks->size(); ++i) blocks[i]->as<Block>()->attn->set_documents(starts);
}

torch::Tensor LanguageModelImpl::hidden(const torch::Tensor& tokens) {
  mask_documents(tokens);
  auto x = dropout_(embed(tokens));
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto& block = *blocks[i]->as<Block>();
    x = runner_ ? runner_(static_cast<int64_t>(i), block, x) : block.forward(x);
  }
  return norm ? norm(x) : x;
}

AutocastState LanguageModelImpl::autocast() const {
  return AutocastState::of(precision_, embed->weight.device().type());
}

torch::Tensor LanguageModelImpl::forward(const torch::Tensor& tokens) {
  AutocastScope scope(autocast());
  return head(hidden(tokens));
}

torch::Tensor LanguageModelImpl::head(const torch::Tensor& h) const {
  // Tied head; logits in the parameters' dtype whatever the product's (the loss and sampling
  // read them).
  return torch::nn::functional::linear(h, embed->weight).to(embed->weight.scalar_type());
}

torch::Tensor LanguageModelImpl::loss(const torch::Tensor& tokens, const torch::Tensor& targets) {
  return loss_sum(tokens, targets) / static_cast<double>(targets.numel());
}

torch::Tensor LanguageModelImpl::loss_sum(const torch::Tensor& tokens, const torch::Tensor& targets) {
  AutocastScope scope(autocast());
  const int64_t N = targets.numel(), chunk = options_.loss_chunk;
  if (chunk > 0 && N > chunk) {
    auto h = hidden(tokens);
    return chunked_cross_entropy_sum(h.reshape({N, h.size(-1)}), embed->weight, targets.reshape({N}), chunk);
  }
  auto logits = forward(tokens);
  return torch::nn::functional::cross_entropy(
      logits.view({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(kNoTarget));
}

torch::Tensor LanguageModelImpl::token_losses(const torch::Tensor& tokens, const torch::Tensor& targets) {
  torch::NoGradGuard no_grad;
  AutocastScope scope(autocast());
  auto h = hidden(tokens);
  const int64_t N = targets.numel(), chunk = options_.loss_chunk > 0 ? options_.loss_chunk : N;
  return chunked_token_losses(h.reshape({N, h.size(-1)}), embed->weight, targets.reshape({N}), chunk)
      .view(targets.sizes());
}

torch::Tensor LanguageModelImpl::logits_at(const torch::Tensor& tokens, const torch::Tensor& positions) {
  torch::NoGradGuard no_grad;
  AutocastScope scope(autocast());
  return head(hidden(tokens).index_select(1, positions));
}

int64_t DecodeState::bytes() const {
  int64_t n = 0;
  for (const auto& c : layers) n += c->bytes();
  return n;
}

DecodeState LanguageModelImpl::start_decoding(int64_t batch) {
  if (!options_.attention.causal)
    throw ConfigError("this model was trained with attention.causal: false: it sees later tokens, so it cannot generate "
                      "(expected a model trained with attention.causal: true)");
  DecodeState state;
  for (size_t i = 0; i < blocks->size(); ++i) {
    auto& attn = *blocks[i]->as<Block>()->attn;
    state.layers.push_back(attn.kernel().start_decoding(attn.decode_shape(batch, embed->weight.options())));
  }
  return state;
}

torch::Tensor LanguageModelImpl::extend(DecodeState& state, const torch::Tensor& tokens, bool all_positions) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(!is_training(), "incremental decoding runs in eval mode");
  if (options_.document_mask && tokens.eq(options_.document_separator).any().item<bool>())
    throw ConfigError("model.document_mask: incremental decoding takes one document, and these tokens hold the "
                      "end-of-document token " + std::to_string(options_.document_separator) +
                      " (expected a prompt of one document)");
  AutocastScope scope(autocast());
  auto x = dropout_(embed(tokens));
  for (size_t i = 0; i < blocks->size(); ++i) x = blocks[i]->as<Block>()->extend(x, *state.layers[i]);
  if (norm) x = norm(x);
  return head(all_positions ? x : x.narrow(1, x.size(1) - 1, 1));
}

void set_attention_dropout(LanguageModelImpl& model, uint64_t seed, uint64_t step, int64_t sample0) {
  for (size_t i = 0; i < model.blocks->size(); ++i) {
    auto& key = model.blocks[i]->as<Block>()->attn->kernel().dropout_key();
    key.seed = seed;
    key.step = step;
    key.layer = i;
    key.sample0 = sample0;
  }
}

void enable_sequence_parallel(LanguageModelImpl& model, attention::SequenceParallelPtr sp) {
  if (model.options().document_mask)
    throw ConfigError("model.document_mask: not supported under sequence parallelism (a document may span ranks); "
                      "expected model.document_mask: false, or one rank per sequence");
  for (size_t i = 0; i < model.blocks->size(); ++i) model.blocks[i]->as<Block>()->attn->set_sequence_parallel(sp);
}

torch::Tensor window_loss_sum(LanguageModelImpl& model, const attention::SequenceParallelPtr& sp,
                              const torch::Tensor& tokens, const torch::Tensor& targets) {
  if (!sp) return model.loss_sum(tokens, targets);
  sp->set_length(tokens.size(1));
  return model.loss_sum(sp->local_rows(tokens), sp->local_rows(targets));
}

int64_t LanguageModelImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace longnet::model
