#include "attention/block_plan.h"

#include <torch/torch.h>

#include <algorithm>

namespace longnet::attention {

int64_t KeySet::size() const {
  int64_t n = 0;
  for (const auto& [s, e] : ranges) n += e - s;
  return n;
}

at::Tensor KeySet::take(const at::Tensor& t, int64_t dim) const {
  if (!index.defined()) return t.narrow(dim, ranges[0].first, ranges[0].second - ranges[0].first);
  return t.index_select(dim, index);
}

void KeySet::add_back(const at::Tensor& into, const at::Tensor& g, int64_t dim) const {
  if (!index.defined()) into.narrow(dim, ranges[0].first, ranges[0].second - ranges[0].first).add_(g);
  else into.index_add_(dim, index, g);
}

void KeySet::add(int64_t start, int64_t end) {
  if (!ranges.empty() && ranges.back().second == start) ranges.back().second = end;
  else ranges.push_back({start, end});
}

std::vector<KeySet> plan_key_sets(const at::TensorAccessor<bool, 2>& mask, int64_t b, bool causal, int64_t k_block,
                                  int64_t i, int64_t q_first, int64_t k_pos, int64_t k_len, const at::Device& device,
                                  const DropoutKey* dropout) {
  KeySet past, diagonal;
  for (int64_t j = k_pos / b; j * b < k_pos + k_len; ++j) {
    if (!mask[i][j]) continue;
    const int64_t s = std::max(j * b, k_pos) - k_pos, e = std::min((j + 1) * b, k_pos + k_len) - k_pos;
    (causal && j == i ? diagonal : past).add(s, e);
  }
  // The diagonal's rows join the others when they start at its block's start (see the header).
  const bool merge = !diagonal.ranges.empty() && !past.ranges.empty() && diagonal.ranges[0].first == i * b - k_pos;
  if (merge) {
    for (const auto& [s, e] : diagonal.ranges) past.add(s, e);
    diagonal.ranges.clear();
  }
  std::vector<KeySet> sets;
  for (KeySet* keys : {&past, &diagonal}) {
    if (keys->ranges.empty()) continue;
    const bool masked = keys == &diagonal || merge;
    if (keys->ranges.size() > 1) {
      std::vector<at::Tensor> parts;
      for (const auto& [s, e] : keys->ranges) parts.push_back(torch::arange(s, e, torch::kLong));
      keys->index = torch::cat(parts).to(device);
    }
    TileSpec& spec = keys->spec;
    spec.q_block = b;
    spec.k_block = k_block;
    spec.causal = masked;
    spec.q_pos0 = q_first;
    // Masked: the gathered keys end at the diagonal rows' true end; else at their true start.
    spec.k_pos0 = masked ? k_pos + keys->ranges.back().second - keys->size() : k_pos + keys->ranges[0].first;
    spec.dropout = dropout;
    if (dropout && dropout->active() && keys->index.defined()) spec.drop_k_pos = (keys->index.cpu() + k_pos);
    sets.push_back(std::move(*keys));
  }
  return sets;
}

}  // namespace longnet::attention
