#include "train/generate.h"

#include <torch/torch.h>

#include "common/errors.h"

namespace longnet::train {

std::vector<int> fit_prompt(const std::vector<int>& prompt, int64_t max_seq_len, bool truncate) {
  if (prompt.empty()) throw ConfigError("longnet generate: the prompt is empty (expected --prompt TEXT or --prompt-file F with some text)");
  const auto n = static_cast<int64_t>(prompt.size());
  if (n <= max_seq_len) return prompt;
  if (!truncate)
    throw ConfigError("longnet generate: the prompt is " + std::to_string(n) + " tokens, longer than the model's context of " +
                      std::to_string(max_seq_len) + " (model.max_seq_len); shorten it, or pass --truncate to keep its last " +
                      std::to_string(max_seq_len) + " tokens");
  return std::vector<int>(prompt.end() - max_seq_len, prompt.end());
}

int64_t window_start(int64_t start, int64_t n, int64_t max_seq_len) {
  return n - start <= max_seq_len ? start : n - std::max<int64_t>(1, max_seq_len / 2);
}

std::vector<int> generate(model::LanguageModel& model, const std::vector<int>& prompt, const GenerateOptions& options,
                          at::Generator& generator, const std::function<void(int)>& on_token, GenerateStats* stats) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t context = model->options().max_seq_len;
  const auto device = model->parameters().front().device();
  std::vector<int64_t> tokens(prompt.begin(), prompt.end());
  auto as_tensor = [&](int64_t from) {
    const auto n = static_cast<int64_t>(tokens.size()) - from;
    return torch::tensor(std::vector<int64_t>(tokens.begin() + from, tokens.end()), torch::kLong).view({1, n}).to(device);
  };
  model::DecodeState state;
  int64_t start = 0;
  bool fresh = true;  // the cache holds nothing of the current window yet
  std::vector<int> out;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int64_t moved = window_start(start, static_cast<int64_t>(tokens.size()), context);
    if (moved != start) {
      start = moved;
      fresh = true;
      if (stats) ++stats->restarts;
    }
    torch::Tensor logits;
    if (options.kv_cache) {
      if (fresh) state = model->start_decoding(1);
      logits = model->extend(state, as_tensor(fresh ? start : static_cast<int64_t>(tokens.size()) - 1));
      if (stats) stats->cache_bytes = std::max(stats->cache_bytes, state.bytes());
    } else {
      auto window = as_tensor(start);
      logits = model->logits_at(window, torch::tensor({window.size(1) - 1}, torch::kLong).to(device));
    }
    fresh = false;
    const int next = static_cast<int>(model::sample_token(logits.view({-1}).to(torch::kFloat).cpu(), options.sampling, generator));
    tokens.push_back(next);
    out.push_back(next);
    if (on_token) on_token(next);
    if (next == options.stop_token) break;
  }
  return out;
}

}  // namespace longnet::train
