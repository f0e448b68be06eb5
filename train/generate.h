#pragma once
// Text generation from a trained model (`longnet generate`). Each new token is predicted by a
// full forward pass over the context so far (at most model.max_seq_len tokens, the oldest
// dropped first), so every attention kind generates exactly what its forward computes; there is
// no KV cache yet.
#include <functional>
#include <string>
#include <vector>

#include "model/lm.h"
#include "model/sampling.h"

namespace longnet::train {

struct GenerateOptions {
  int64_t max_new_tokens = 200;
  model::SamplingOptions sampling;
  uint64_t seed = 0;
  bool truncate = false;  // a prompt longer than max_seq_len: keep its last tokens (else an error)
  int stop_token = -1;    // a sample ends after this token (the end-of-document token); -1: none
};

// The prompt's tokens as the model will see them: unchanged, or its last max_seq_len tokens
// with truncate; throws ConfigError (naming --truncate) when too long otherwise, or when empty.
std::vector<int> fit_prompt(const std::vector<int>& prompt, int64_t max_seq_len, bool truncate);

// Generates up to max_new_tokens after prompt (already fitted), calling on_token with each as
// it is chosen; returns them. `generator` carries the draws across samples.
std::vector<int> generate(model::LanguageModel& model, const std::vector<int>& prompt, const GenerateOptions& options,
                          at::Generator& generator, const std::function<void(int)>& on_token = {});

}  // namespace longnet::train
