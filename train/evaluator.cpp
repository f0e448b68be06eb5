#include "train/evaluator.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "data/sampler.h"

namespace longnet::train {
namespace {

// Restores train mode on exit from an evaluation.
class EvalMode {
 public:
  explicit EvalMode(model::LanguageModel& m) : model_(m), was_training_(m->is_training()) { model_->eval(); }
  ~EvalMode() { model_->train(was_training_); }

 private:
  model::LanguageModel& model_;
  bool was_training_;
};

}  // namespace

EvalResult evaluate_split(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                          int64_t batch_size, int64_t split_bytes) {
  EvalMode mode(model);
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  data::SequentialWindows windows(shard, seq_len);
  double loss_sum = 0;
  int64_t tokens = 0;
  const int64_t full = windows.full_windows();
  auto run = [&](int64_t first, int64_t n) {
    auto batch = windows.windows(first, n);
    loss_sum += model->loss_sum(batch.tokens, batch.targets).item<double>();
    tokens += batch.targets.numel();
  };
  for (int64_t i = 0; i < full; i += batch_size) run(i, std::min(batch_size, full - i));
  if (windows.count() > full) run(full, 1);  // the shorter last window
  EvalResult r;
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.tokens = tokens;
  r.loss = loss_sum / static_cast<double>(tokens);
  r.ppl = std::exp(r.loss);
  r.bits_per_byte = split_bytes > 0 ? loss_sum / std::log(2.0) / static_cast<double>(split_bytes) : 0.0;
  r.tokens_per_s = static_cast<double>(tokens) / r.seconds;
  return r;
}

double sample_loss(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                   int64_t batch_size, int64_t n_batches, uint64_t seed) {
  EvalMode mode(model);
  torch::NoGradGuard no_grad;
  data::WindowSampler sampler(shard, seq_len, batch_size, seed);
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < n_batches; ++i) {
    auto batch = sampler.batch(i);
    sum += model->loss_sum(batch.tokens, batch.targets).item<double>();
    n += batch.targets.numel();
  }
  return sum / static_cast<double>(n);
}

}  // namespace longnet::train
