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

std::vector<int64_t> position_edges(int64_t seq_len, int64_t first) {
  if (first <= 0) first = std::max<int64_t>(1, std::min<int64_t>(1024, seq_len / 8));
  std::vector<int64_t> edges = {0};
  for (int64_t e = first; e < seq_len; e *= 2) edges.push_back(e);
  edges.push_back(seq_len);
  return edges;
}

EvalResult evaluate_split(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                          int64_t batch_size, int64_t split_bytes, const std::vector<int64_t>& edges) {
  EvalMode mode(model);
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  data::SequentialWindows windows(shard, seq_len);
  double loss_sum = 0;
  int64_t tokens = 0;
  const int64_t full = windows.full_windows();
  // Per-position sums when buckets are asked for: [seq_len] summed over windows.
  torch::Tensor position_sum, position_count;
  if (!edges.empty()) {
    position_sum = torch::zeros({seq_len}, torch::kDouble);
    position_count = torch::zeros({seq_len}, torch::kDouble);
  }
  const auto device = model->parameters().front().device();
  auto run = [&](int64_t first, int64_t n) {
    auto batch = windows.windows(first, n);
    batch.tokens = batch.tokens.to(device);
    batch.targets = batch.targets.to(device);
    if (edges.empty()) {
      loss_sum += model->loss_sum(batch.tokens, batch.targets).item<double>();
    } else {
      auto losses = model->token_losses(batch.tokens, batch.targets).to(torch::kDouble);  // [n, T]
      const int64_t T = losses.size(1);
      position_sum.narrow(0, 0, T).add_(losses.sum(0));
      position_count.narrow(0, 0, T).add_(static_cast<double>(losses.size(0)));
      loss_sum += losses.sum().item<double>();
    }
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
  for (size_t i = 0; i + 1 < edges.size(); ++i) {
    PositionBucket b;
    b.begin = edges[i];
    b.end = std::min(edges[i + 1], seq_len);
    if (b.begin >= b.end) continue;
    const double sum = position_sum.narrow(0, b.begin, b.end - b.begin).sum().item<double>();
    const double count = position_count.narrow(0, b.begin, b.end - b.begin).sum().item<double>();
    b.tokens = static_cast<int64_t>(count);
    b.loss = count > 0 ? sum / count : 0.0;
    r.by_position.push_back(b);
  }
  return r;
}

double sample_loss(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                   int64_t batch_size, int64_t n_batches, uint64_t seed, const attention::SequenceParallelPtr& sp) {
  EvalMode mode(model);
  torch::NoGradGuard no_grad;
  data::WindowSampler sampler(shard, seq_len, batch_size, seed);
  const auto device = model->parameters().front().device();
  double sum = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < n_batches; ++i) {
    auto batch = sampler.batch(i);
    batch.tokens = batch.tokens.to(device);
    batch.targets = batch.targets.to(device);
    n += batch.targets.numel();
    sum += model::window_loss_sum(*model, sp, batch.tokens, batch.targets).item<double>();
  }
  if (sp) {
    std::vector<torch::Tensor> total = {torch::tensor({sum}, torch::TensorOptions().dtype(torch::kDouble).device(device))};
    sp->group()->allreduce(total)->wait();
    sum = total[0].item<double>();
  }
  return sum / static_cast<double>(n);
}

}  // namespace longnet::train
