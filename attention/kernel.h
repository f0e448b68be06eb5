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

struct DecodeShape;  // decode.h
class DecodeCache;

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

  // Incremental decoding (decode.h), causal and in eval mode: a cache for one sequence, then
  // extend() with the next n positions' q [B, n, H, D] and k, v [B, n, G, D] (not expanded to
  // the query heads: the cache holds G heads) -> those rows of out [B, n, H, D] and lse
  // [B, n, H], what forward over the whole sequence computes for them. A first extend of more
  // than one position (the prompt) runs forward on them and then keeps what the pattern needs;
  // later positions go one at a time through decode_step.
  virtual std::unique_ptr<DecodeCache> start_decoding(const DecodeShape& shape) const = 0;
  virtual AttentionOutput extend(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                 const torch::Tensor& v);

  // Attention dropout: make_kernel sets the rate (attention.dropout), the model the seed and
  // layer, the trainer the step and sample0 before each forward. Kernels draw with the key
  // `drawn()` gives: the stored one in training mode, rate 0 in eval mode.
  DropoutKey& dropout_key() { return dropout_; }
  DropoutKey drawn() const {
    DropoutKey k = dropout_;
    if (!is_training()) k.rate = 0;
    return k;
  }

 protected:
  // The kernel's rule for one new position p = cache.length: q [B, H, D] (scaled), k, v
  // [B, G, D] -> out [B, H, D], lse [B, H] of that query over the keys its pattern lets it see;
  // the cache then keeps what positions after p need (cache.length is advanced by the caller).
  virtual AttentionOutput decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                      const torch::Tensor& v) = 0;
  // After forward ran on positions [0, n) (the prompt): keep of their keys and values
  // ([B, G, n, D]) what positions n and later need (cache.length is already n).
  virtual void decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) = 0;

 private:
  DropoutKey dropout_;
};

using KernelPtr = std::shared_ptr<AttentionKernel>;

}  // namespace longnet::attention
