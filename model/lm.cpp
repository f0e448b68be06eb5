#include "model/lm.h"

#include <torch/torch.h>

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

torch::Tensor LanguageModelImpl::hidden(const torch::Tensor& tokens) {
  auto x = dropout_(embed(tokens));
  for (auto& block : *blocks) x = block->as<Block>()->forward(x);
  return norm ? norm(x) : x;
}

torch::Tensor LanguageModelImpl::forward(const torch::Tensor& tokens) {
  return torch::nn::functional::linear(hidden(tokens), embed->weight);  // tied head
}

torch::Tensor LanguageModelImpl::loss(const torch::Tensor& tokens, const torch::Tensor& targets) {
  return loss_sum(tokens, targets) / static_cast<double>(targets.numel());
}

torch::Tensor LanguageModelImpl::loss_sum(const torch::Tensor& tokens, const torch::Tensor& targets) {
  auto logits = forward(tokens);
  return torch::nn::functional::cross_entropy(
      logits.view({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

int64_t LanguageModelImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

}  // namespace longnet::model
