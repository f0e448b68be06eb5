#include "model/sampling.h"

#include <torch/torch.h>

#include <limits>

namespace longnet::model {

torch::Tensor filter_logits(const torch::Tensor& logits, int64_t top_k, double top_p) {
  auto out = logits.detach().to(torch::kFloat32).clone();
  const int64_t V = out.size(0);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  if (top_k > 0 && top_k < V) {
    const auto kth = std::get<0>(out.topk(top_k)).min();
    out.masked_fill_(out < kth, neg_inf);
  }
  if (top_p < 1.0) {
    const auto [sorted, order] = out.sort(/*dim=*/0, /*descending=*/true);
    const auto probs = sorted.softmax(0);
    // A token is dropped when the tokens more likely than it already reach top_p.
    const auto before = probs.cumsum(0) - probs;
    auto drop = before >= top_p;
    drop[0] = false;
    out.index_put_({order.masked_select(drop)}, neg_inf);
  }
  return out;
}

int64_t sample_token(const torch::Tensor& logits, const SamplingOptions& options, at::Generator& generator) {
  if (options.temperature <= 0) return logits.argmax().item<int64_t>();
  const auto filtered = filter_logits(logits.to(torch::kFloat32) / options.temperature, options.top_k, options.top_p);
  return torch::multinomial(filtered.softmax(0), 1, /*replacement=*/false, generator).item<int64_t>();
}

}  // namespace longnet::model
