#include "attention/ring_layout.h"

#include <torch/torch.h>

namespace longnet::attention {

RingLayout::RingLayout(int64_t T, int rank, int world_size, bool zigzag)
    : T_(T), rank_(rank), world_size_(world_size), zigzag_(zigzag), pieces_(static_cast<size_t>(world_size)) {
  TORCH_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "bad ring rank ", rank, " of ", world_size);
  const int64_t n = zigzag ? 2 * world_size : world_size;
  TORCH_CHECK(T >= n, "a sequence of ", T, " tokens cannot be split into ", n, " ring chunks");
  std::vector<int64_t> start(static_cast<size_t>(n + 1), 0);
  for (int64_t c = 0; c < n; ++c) start[c + 1] = start[c] + T / n + (c < T % n ? 1 : 0);
  for (int r = 0; r < world_size; ++r) {
    std::vector<int64_t> chunks = {r};
    if (zigzag) chunks.push_back(2 * world_size - 1 - r);
    int64_t offset = 0;
    for (int64_t c : chunks) {
      const int64_t len = start[c + 1] - start[c];
      pieces_[r].push_back({start[c], len, offset});
      offset += len;
    }
  }
}

int64_t RingLayout::local_length(int rank) const {
  int64_t n = 0;
  for (const auto& p : pieces(rank)) n += p.length;
  return n;
}

at::Tensor RingLayout::positions(int rank) const {
  std::vector<at::Tensor> parts;
  for (const auto& p : pieces(rank)) parts.push_back(torch::arange(p.position, p.position + p.length, torch::kLong));
  return torch::cat(parts);
}

void check_cross_rank_inputs(const char* what, const torch::Tensor& q, const torch::Tensor& k,
                             const torch::Tensor& v, const RingLayout& layout,
                             const c10::intrusive_ptr<c10d::ProcessGroup>& group) {
  TORCH_CHECK(q.dim() == 4 && q.sizes() == k.sizes() && k.sizes() == v.sizes(), what,
              ": q, k, v [B, T, H, D] of one shape");
  TORCH_CHECK(q.size(1) == layout.local_length(layout.rank()), what, ": ", q.size(1),
              " local tokens, the layout gives this rank ", layout.local_length(layout.rank()));
  TORCH_CHECK(layout.world_size() == 1 || (group && group->getSize() == layout.world_size() &&
                                           group->getRank() == layout.rank()),
              what, ": the layout's ranks are not the group's");
}

}  // namespace longnet::attention
