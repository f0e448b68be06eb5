#pragma once
// The one interface every attention kernel implements (DESIGN.md, "Attention").
#include <torch/nn/module.h>

#include <memory>
#include <string>

#include "attention/dropout.h"

namespace longnet::attention {

// out: [B, T, H, D]; lse: [B, T, H], the log of the softmax denominator of each query
// (-inf where a query attends to nothing). Returning lse lets partial results merge exactly.
struct AttentionOutput {
  torch::Tensor out;
  torch::Tensor lse;
};

// Kernels derive from torch::nn::Module so that they can own buffers and move with .to(),
// and are held through std::shared_ptr<AttentionKernel> (STYLE.md, rule 12).
class AttentionKernel : public torch::nn::Module {
 public:
  // q: [B, Tq, H, D], k, v: [B, Tk, H, D] -> out: [B, Tq, H, D], lse: [B, Tq, H]
  virtual AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, bool causal) = 0;
  virtual std::string kind() const = 0;
  // (query, key) pairs attended per batch element and head at length T, for effective FLOP
  // counts; dense attends all of them (causal: the lower triangle).
  virtual double attended_pairs(int64_t T, bool causal) const {
    const double t = static_cast<double>(T);
    return causal ? t * (t + 1) / 2 : t * t;
  }

  // Attention dropout: make_kernel sets the rate (attention.dropout), the model the seed and
  // layer, the trainer the step and sample0 before each forward. Kernels draw with the key
  // `drawn()` gives: the stored one in training mode, rate 0 in eval mode.
  DropoutKey& dropout_key() { return dropout_; }
  DropoutKey drawn() const {
    DropoutKey k = dropout_;
    if (!is_training()) k.rate = 0;
    return k;
  }

 private:
  DropoutKey dropout_;
};

using KernelPtr = std::shared_ptr<AttentionKernel>;

}  // namespace longnet::attention
