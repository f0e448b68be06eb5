#pragma once
// Text generation from a trained model (`longnet generate`). The model sees a window of the
// tokens so far: the prompt and what followed, up to model.max_seq_len tokens; when one more
// would not fit, the window restarts at the last max_seq_len / 2 tokens (at positions from 0:
// every position of the old window moved, so nothing of its cache is valid). Within a window
// each token is one step of the model's KV cache (LanguageModelImpl::extend: every kernel keeps
// the keys its pattern reads); with kv_cache off, a full forward pass over the window instead,
// which gives the same logits and is the reference the cache is tested against.
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
  bool kv_cache = true;   // false: a full forward pass over the window per token
};

// What a generate() call measured.
struct GenerateStats {
  int64_t cache_bytes = 0;  // the most the KV cache held, over all layers
  int64_t restarts = 0;     // times the window restarted (the context was full)
};

// The prompt's tokens as the model will see them: unchanged, or its last max_seq_len tokens
// with truncate; throws ConfigError (naming --truncate) when too long otherwise, or when empty.
std::vector<int> fit_prompt(const std::vector<int>& prompt, int64_t max_seq_len, bool truncate);

// Generates up to max_new_tokens after prompt (already fitted), calling on_token with each as
// it is chosen; returns them. `generator` carries the draws across samples.
std::vector<int> generate(model::LanguageModel& model, const std::vector<int>& prompt, const GenerateOptions& options,
                          at::Generator& generator, const std::function<void(int)>& on_token = {},
                          GenerateStats* stats = nullptr);

// The window's start after `n` tokens: the first token the model sees, given the start before.
int64_t window_start(int64_t start, int64_t n, int64_t max_seq_len);

}  // namespace longnet::train
