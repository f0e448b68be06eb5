#pragma once
// Parameter initialisation, chosen by model.norm (the formulas the tests check):
//   pre (GPT-2, nanoGPT): every linear weight and the embedding ~ N(0, init_std); attn.out and
//       mlp.fc2 ~ N(0, init_std / sqrt(2 N)) so the residual stream's variance does not grow
//       with depth.
//   post, subln, deepnorm (torchscale): q, k, v ~ Xavier-uniform with gain 1/sqrt(2), out ~
//       Xavier-uniform, fc1, fc2 ~ LibTorch's Linear default U(-1/sqrt(fan_in), 1/sqrt(fan_in));
//       the embedding ~ N(0, init_std). Then
//         subln:    v, out, fc1, fc2 multiplied by sqrt(ln(2N))       (MAGNETO, decoder)
//         deepnorm: v, out, fc1, fc2 divided by (8N)^(1/4) = 1/beta   (DeepNet, decoder-only)
// Biases start at 0, norm weights at 1.
#include <torch/nn/module.h>

#include "model/options.h"

namespace longnet::model {

class LanguageModelImpl;

void init_weights(LanguageModelImpl& model);

// The depth scales above, for N = n_layers.
double subln_init_scale(int64_t n_layers);
double deepnorm_init_scale(int64_t n_layers);  // beta = (8N)^(-1/4)

}  // namespace longnet::model
