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

std::vector<int> generate(model::LanguageModel& model, const std::vector<int>& prompt, const GenerateOptions& options,
                          at::Generator& generator, const std::function<void(int)>& on_token) {
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t context = model->options().max_seq_len;
  const auto device = model->parameters().front().device();
  std::vector<int64_t> tokens(prompt.begin(), prompt.end());
  std::vector<int> out;
  for (int64_t i = 0; i < options.max_new_tokens; ++i) {
    const int64_t n = std::min<int64_t>(static_cast<int64_t>(tokens.size()), context);
    auto window = torch::tensor(std::vector<int64_t>(tokens.end() - n, tokens.end()), torch::kLong).view({1, n}).to(device);
    auto logits = model->logits_at(window, torch::tensor({n - 1}, torch::kLong).to(device)).view({-1}).cpu();
    const int next = static_cast<int>(model::sample_token(logits, options.sampling, generator));
    tokens.push_back(next);
    out.push_back(next);
    if (on_token) on_token(next);
    if (next == options.stop_token) break;
  }
  return out;
}

}  // namespace longnet::train
