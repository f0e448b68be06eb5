#include "model/lm.h"

#include <torch/torch.h>

#include <cmath>

namespace longnet::model {

LanguageModelImpl::LanguageModelImpl(const ModelOptions& options) : options_(options) {
  embed = register_module("embed", torch::nn::Embedding(options.vocab_size, options.d_model));
  dropout_ = register_module("dropout", torch::nn::Dropout(options.dropout));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < options.n_layers; ++i) blocks->push_back(Block(options));
  norm = register_module("norm", Norm(options.d_model, options.bias));
  init_weights();
}

void LanguageModelImpl::init_weights() {
  // GPT-2 / nanoGPT: N(0, 0.02) everywhere, residual projections scaled by 1/sqrt(2N)
  // so that the residual stream's variance does not grow with depth.
  torch::NoGradGuard no_grad;
  const double std = options_.init_std;
  const double proj_std = std / std::sqrt(2.0 * options_.n_layers);
  for (auto& p : named_parameters()) {
    const auto& name = p.key();
    auto& w = p.value();
    if (name.find("norm") != std::string::npos) continue;
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      w.zero_();
    } else if (name.find("attn.out.weight") != std::string::npos ||
               name.find("mlp.fc2.weight") != std::string::npos) {
      w.normal_(0.0, proj_std);
    } else {
      w.normal_(0.0, std);
    }
  }
}

torch::Tensor LanguageModelImpl::hidden(const torch::Tensor& tokens) {
  auto x = dropout_(embed(tokens));
  for (auto& block : *blocks) x = block->as<Block>()->forward(x);
  return norm(x);
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
