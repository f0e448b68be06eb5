#include "train/evaluator.h"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/progress.h"
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

// The sum of every rank's `value` in sp's group (a tensor on `device`, as its backend wants).
double sum_over_ranks(const attention::SequenceParallel& sp, double value, const torch::Device& device) {
  std::vector<torch::Tensor> total = {torch::tensor({value}, torch::TensorOptions().dtype(torch::kDouble).device(device))};
  sp.group()->allreduce(total)->wait();
  return total[0].item<double>();
}

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
  Progress progress("evaluating", windows.count(), "windows");
  auto run = [&](int64_t first, int64_t n) {
    progress.add(n);
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
  if (sp) sum = sum_over_ranks(*sp, sum, device);
  return sum / static_cast<double>(n);
}

std::vector<LengthResult> evaluate_lengths(model::LanguageModel& model, const data::TokenShard& shard,
                                           const std::vector<int64_t>& lengths, int64_t scored, int64_t batch_size,
                                           double bytes_per_token, const attention::SequenceParallelPtr& sp) {
  EvalMode mode(model);
  torch::NoGradGuard no_grad;
  const int64_t longest = *std::max_element(lengths.begin(), lengths.end());
  // Block b: tokens [1 + b * longest, 1 + (b + 1) * longest); its windows end at the block's end.
  const int64_t blocks = (shard.size() - 1) / longest;
  const auto device = model->parameters().front().device();
  std::vector<LengthResult> results;
  Progress progress("evaluating by context length", blocks * static_cast<int64_t>(lengths.size()), "windows");
  for (const int64_t L : lengths) {
    const auto t0 = std::chrono::steady_clock::now();
    double sum = 0;
    for (int64_t first = 0; first < blocks; first += batch_size) {
      std::vector<torch::Tensor> rows;
      for (int64_t b = first; b < std::min(blocks, first + batch_size); ++b) {
        const int64_t end = 1 + (b + 1) * longest;  // one past the last target
        rows.push_back(shard.slice(end - L - 1, L + 1));
      }
      progress.add(static_cast<int64_t>(rows.size()));
      auto w = torch::stack(rows).to(device);
      auto tokens = w.narrow(1, 0, L), targets = w.narrow(1, 1, L);
      torch::Tensor losses, positions;  // this rank's target losses [B, rows] and their positions
      if (sp) {
        sp->set_length(L);
        losses = model->token_losses(sp->local_rows(tokens), sp->local_rows(targets));
        positions = sp->positions().to(device);
      } else {
        losses = model->token_losses(tokens, targets);
        positions = torch::arange(L, torch::TensorOptions().dtype(torch::kLong).device(device));
      }
      sum += losses.masked_select((positions >= L - scored).unsqueeze(0).expand_as(losses)).sum().item<double>();
    }
    if (sp) sum = sum_over_ranks(*sp, sum, device);
    LengthResult r;
    r.length = L;
    r.tokens = blocks * scored;
    r.loss = sum / static_cast<double>(r.tokens);
    r.ppl = std::exp(r.loss);
    r.bits_per_byte = bytes_per_token > 0 ? r.loss / std::log(2.0) / bytes_per_token : 0.0;
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    results.push_back(r);
  }
  return results;
}

std::vector<PasskeyCell> evaluate_passkey(model::LanguageModel& model, const data::PasskeyBuilder& builder,
                                          const std::vector<int64_t>& lengths, const std::vector<double>& depths,
                                          int64_t trials, uint64_t seed, int64_t batch_size) {
  EvalMode mode(model);
  const auto device = model->parameters().front().device();
  return evaluate_passkey_with(
      [&](const torch::Tensor& tokens, const torch::Tensor& positions) {
        return model->logits_at(tokens.to(device), positions.to(device));
      },
      builder, lengths, depths, trials, seed, batch_size);
}

std::vector<PasskeyCell> evaluate_passkey_with(const LogitsAt& logits_at, const data::PasskeyBuilder& builder,
                                          const std::vector<int64_t>& lengths, const std::vector<double>& depths,
                                          int64_t trials, uint64_t seed, int64_t batch_size) {
  torch::NoGradGuard no_grad;
  std::vector<PasskeyCell> cells;
  Progress progress("passkey", static_cast<int64_t>(lengths.size() * depths.size()) * trials, "documents");
  for (size_t li = 0; li < lengths.size(); ++li) {
    const int64_t L = lengths[li];
    for (size_t di = 0; di < depths.size(); ++di) {
      PasskeyCell cell;
      cell.length = L;
      cell.depth = depths[di];
      for (int64_t first = 0; first < trials; first += batch_size) {
        // The documents are L + 1 tokens: the model sees the first L, the answer's tokens are
        // the targets of the positions before them. The answer has the same length in tokens for
        // most keys but not all: positions are taken per row.
        std::vector<torch::Tensor> inputs, wanted;
        std::vector<int64_t> begins;
        for (int64_t t = first; t < std::min(trials, first + batch_size); ++t) {
          const auto doc = builder.build(L + 1, depths[di],
                                         data::passkey_key(seed, static_cast<int64_t>(li), static_cast<int64_t>(di), t));
          auto ids = torch::tensor(std::vector<int64_t>(doc.tokens.begin(), doc.tokens.end()), torch::kLong);
          inputs.push_back(ids.narrow(0, 0, L));
          wanted.push_back(ids.narrow(0, doc.answer_begin, L + 1 - doc.answer_begin));
          begins.push_back(doc.answer_begin);
        }
        progress.add(static_cast<int64_t>(inputs.size()));
        const int64_t first_answer = *std::min_element(begins.begin(), begins.end());
        // Logits at every position from the earliest answer's on, argmax per position.
        auto positions = torch::arange(first_answer - 1, L, torch::kLong);
        auto predicted = logits_at(torch::stack(inputs), positions).argmax(-1).cpu();
        for (size_t r = 0; r < inputs.size(); ++r) {
          const int64_t n = wanted[r].size(0), from = begins[r] - first_answer;
          const auto hits = predicted[static_cast<int64_t>(r)].narrow(0, from, n).eq(wanted[r]);
          const auto right = hits.sum().item<int64_t>();
          cell.passed += right == n ? 1 : 0;
          cell.first_right += hits[0].item<bool>() ? 1 : 0;
          cell.tokens_right += right;
          cell.answer_tokens += n;
          ++cell.trials;
        }
      }
      cells.push_back(cell);
    }
  }
  return cells;
}

}  // namespace longnet::train
