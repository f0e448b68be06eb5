#include "attention/block_sparse.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "attention/dense.h"

namespace longnet::attention {

torch::Tensor BlockSparseAttention::block_mask(int64_t T, bool causal) const {
  const auto& o = options_;
  const int64_t nb = (T + o.block_size - 1) / o.block_size;
  auto qb = torch::arange(nb, torch::kLong).unsqueeze(1), kb = torch::arange(nb, torch::kLong).unsqueeze(0);
  auto keep = torch::zeros({nb, nb}, torch::kBool);
  if (o.local_blocks >= 0) keep |= (qb - kb).abs() <= o.local_blocks;
  if (o.stride > 0) keep |= torch::remainder(qb - kb, o.stride) == 0;
  if (o.global_blocks > 0) keep |= (qb < o.global_blocks) | (kb < o.global_blocks);
  if (o.random_blocks > 0) {
    auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(o.seed));
    for (int64_t i = 0; i < nb; ++i) {
      auto pick = torch::randperm(nb, gen, torch::kLong).narrow(0, 0, std::min(o.random_blocks, nb));
      keep[i].index_fill_(0, pick, true);
    }
  }
  for (const auto& [q, k] : o.pairs)
    if (q < nb && k < nb) keep[q][k] = true;
  if (causal) keep &= kb <= qb;
  return keep;
}

double BlockSparseAttention::density(int64_t T, bool causal) const {
  auto m = block_mask(T, causal);
  return m.sum().item<double>() / static_cast<double>(m.numel());
}

double BlockSparseAttention::attended_pairs(int64_t T, bool causal) const {
  const int64_t b = options_.block_size;
  auto m = block_mask(T, causal);
  double pairs = 0;
  const int64_t nb = m.size(0);
  auto acc = m.accessor<bool, 2>();
  for (int64_t i = 0; i < nb; ++i)
    for (int64_t j = 0; j < nb; ++j) {
      if (!acc[i][j]) continue;
      const double bq = std::min(b, T - i * b), bk = std::min(b, T - j * b);
      pairs += (causal && i == j) ? bq * (bq + 1) / 2 : bq * bk;
    }
  return pairs;
}

AttentionOutput BlockSparseAttention::forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                              bool causal) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), D = q.size(3), b = options_.block_size;
  const int64_t nb = (T + b - 1) / b, Tp = nb * b;
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const double inf = std::numeric_limits<double>::infinity();
  auto qh = (q * scale).transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);  // [B, H, T, D]
  auto mask = block_mask(T, causal);

  // Non-causal global query blocks see every key: they are dense rows, computed as such so
  // that they do not widen the gathered rows of everybody else.
  const int64_t g = causal ? 0 : std::min(options_.global_blocks, nb);
  std::vector<torch::Tensor> outs, lses;
  if (g > 0) {
    const int64_t rows = std::min(g * b, T);
    auto dense = tiled_attention_heads(qh.narrow(2, 0, rows), kh, vh, false, b);
    outs.push_back(dense.out);
    lses.push_back(dense.lse);
  }
  if (g < nb) {
    // Rows [g, nb): each query block gathers its K kept key blocks (padded to the widest row).
    auto rows_mask = mask.narrow(0, g, nb - g);                       // [R, nb]
    const int64_t R = nb - g, K = std::max<int64_t>(1, rows_mask.sum(1).max().item<int64_t>());
    // Kept key blocks first in each row (stable order), then padding.
    auto order = std::get<1>(rows_mask.to(torch::kInt).sort(1, /*descending=*/true));
    auto idx = order.narrow(1, 0, K);                                  // [R, K]
    auto valid = rows_mask.gather(1, idx);                             // [R, K]
    auto pad = [&](const torch::Tensor& x) {
      return Tp == T ? x : torch::constant_pad_nd(x, {0, 0, 0, Tp - T});
    };
    auto kb = pad(kh).unflatten(2, {nb, b}), vb = pad(vh).unflatten(2, {nb, b});       // [B, H, nb, b, D]
    auto kg = kb.index_select(2, idx.flatten()).view({B, H, R, K * b, D});
    auto vg = vb.index_select(2, idx.flatten()).view({B, H, R, K * b, D});
    auto qr = pad(qh).narrow(2, g * b, R * b).unflatten(2, {R, b});                     // [B, H, R, b, D]
    // Allowed (query, key) positions: a kept block, a real key, and the past when causal.
    auto opts = torch::TensorOptions().dtype(torch::kLong);
    auto qpos = (torch::arange(g, nb, opts).unsqueeze(1) * b + torch::arange(b, opts)).unsqueeze(2);      // [R, b, 1]
    auto kpos = (idx.unsqueeze(2) * b + torch::arange(b, opts)).view({R, 1, K * b});                      // [R, 1, K*b]
    auto allowed = valid.repeat_interleave(b, 1).view({R, 1, K * b}) & (kpos < T);
    if (causal) allowed = allowed & (kpos <= qpos);
    auto s = torch::matmul(qr, kg.transpose(-1, -2));                                   // [B, H, R, b, K*b]
    s = s.masked_fill(allowed.logical_not(), -inf);
    auto lse = torch::logsumexp(s, -1);                                                 // [B, H, R, b]
    auto safe = torch::where(torch::isinf(lse), torch::zeros_like(lse), lse);
    auto out = torch::matmul(torch::exp(s - safe.unsqueeze(-1)), vg);                  // [B, H, R, b, D]
    const int64_t rows = T - g * b;
    outs.push_back(out.flatten(2, 3).narrow(2, 0, rows));
    lses.push_back(lse.flatten(2, 3).narrow(2, 0, rows));
  }
  auto out = outs.size() == 1 ? outs[0] : torch::cat(outs, 2);
  auto lse = lses.size() == 1 ? lses[0] : torch::cat(lses, 2);
  return {out.transpose(1, 2), lse.transpose(1, 2)};
}

}  // namespace longnet::attention
