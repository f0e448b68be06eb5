#include "model/init.h"

#include <torch/torch.h>

#include <cmath>

#include "model/lm.h"

namespace longnet::model {

double subln_init_scale(int64_t n_layers) { return std::sqrt(std::log(2.0 * static_cast<double>(n_layers))); }
double deepnorm_init_scale(int64_t n_layers) { return std::pow(8.0 * static_cast<double>(n_layers), -0.25); }

namespace {

void zero_biases(torch::nn::Module& m) {
  for (auto& p : m.named_parameters()) {
    const auto& name = p.key();
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0) p.value().zero_();
  }
}

void gpt2_block(BlockImpl& b, double std, double proj_std) {
  b.attn->qkv->weight.normal_(0.0, std);
  b.attn->out->weight.normal_(0.0, proj_std);
  b.mlp->fc1->weight.normal_(0.0, std);
  b.mlp->fc2->weight.normal_(0.0, proj_std);
}

// torchscale's MultiheadAttention.reset_parameters and its FeedForwardNetwork's nn.Linear
// defaults; `depth` multiplies v, out, fc1 and fc2 afterwards.
void torchscale_block(BlockImpl& b, double depth) {
  namespace init = torch::nn::init;
  const double gain = 1.0 / std::sqrt(2.0);
  for (auto w : {b.attn->q_weight(), b.attn->k_weight(), b.attn->v_weight()}) init::xavier_uniform_(w, gain);
  init::xavier_uniform_(b.attn->out->weight);
  for (auto& fc : {b.mlp->fc1, b.mlp->fc2}) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(fc->weight.size(1)));
    fc->weight.uniform_(-bound, bound);
  }
  if (depth != 1.0) {
    for (auto w : {b.attn->v_weight(), b.attn->out->weight, b.mlp->fc1->weight, b.mlp->fc2->weight}) w.mul_(depth);
  }
}

}  // namespace

void init_weights(LanguageModelImpl& model) {
  torch::NoGradGuard no_grad;
  const auto& o = model.options();
  model.embed->weight.normal_(0.0, o.init_std);
  const double proj_std = o.init_std / std::sqrt(2.0 * static_cast<double>(o.n_layers));
  for (auto& m : *model.blocks) {
    auto& b = *m->as<Block>();
    switch (o.norm) {
      case NormPlacement::kPre: gpt2_block(b, o.init_std, proj_std); break;
      case NormPlacement::kPost: torchscale_block(b, 1.0); break;
      case NormPlacement::kSubLn: torchscale_block(b, subln_init_scale(o.n_layers)); break;
      case NormPlacement::kDeepNorm: torchscale_block(b, deepnorm_init_scale(o.n_layers)); break;
    }
    zero_biases(b);
  }
}

}  // namespace longnet::model
