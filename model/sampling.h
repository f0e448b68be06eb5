#pragma once
// Choosing the next token from a model's logits: temperature, top-k and top-p (nucleus)
// filtering, greedy at temperature 0. Used by `longnet generate` (train/generate.h).
#include <ATen/core/Generator.h>
#include <torch/types.h>

namespace longnet::model {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (the argmax; top_k and top_p do not matter)
  int64_t top_k = 0;         // keep the k most likely tokens (ties with the k-th kept too); 0: all
  double top_p = 1.0;        // keep the most likely tokens whose probabilities first sum to >= p; 1: all
};

// logits [V] (any float dtype) -> float32 logits with -inf at every token the filters drop.
// top_k first, then top_p over what is left; the most likely token is never dropped.
torch::Tensor filter_logits(const torch::Tensor& logits, int64_t top_k, double top_p);

// One token id from logits [V]: argmax at temperature 0, else a draw from
// softmax(filter_logits(logits / temperature)) with `generator` (the same seed, the same draws).
int64_t sample_token(const torch::Tensor& logits, const SamplingOptions& options, at::Generator& generator);

}  // namespace longnet::model
