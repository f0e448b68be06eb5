#pragma once
// Activation checkpointing (Chen et al. 2016, "Training Deep Nets with Sublinear Memory Cost"):
// run a function without keeping its activations and recompute them in the backward pass.
// Applied to a model afterwards, as a pass (torchtitan's apply_ac): blocks don't know.
#include <torch/torch.h>

#include <functional>

#include "model/options.h"

namespace longnet::model {

class LanguageModelImpl;

// y = fn(x), computed without autograd; backward re-runs fn(x) with autograd on and the RNG
// state of the forward pass (identical dropout masks), back-propagates through it into the
// parameters fn uses (their .grad) and returns dx. fn must outlive the backward pass.
// x: any shape; fn's parameters are found by the recomputation, not passed: they get their
// gradients from backward() (as .grad), not as outputs of torch::autograd::grad.
torch::Tensor recompute_in_backward(const std::function<torch::Tensor(const torch::Tensor&)>& fn,
                                    const torch::Tensor& x);

// Installs the policy's block runner on the model (kNone: plain calls).
void apply_activation_checkpointing(LanguageModelImpl& model, const CheckpointPolicy& policy);

}  // namespace longnet::model
