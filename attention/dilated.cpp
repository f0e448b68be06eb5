#include "attention/dilated.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "attention/dense.h"
#include "attention/merge.h"

namespace longnet::attention {
namespace {

using torch::indexing::Slice;

// One pair (w, r) applied to heads [h0, h1) of the head-major q, k, v ([B, H, T, D], q scaled),
// with head h using offset (h mod r) when offset < 0, else the given offset for all of them.
// Returns out [B, h1 - h0, T, D] and lse [B, h1 - h0, T]: zero and -inf where not selected.
AttentionOutput dilated_pair(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, int64_t w,
                             int64_t r, int64_t h0, int64_t h1, int64_t fixed_offset, bool causal,
                             const AttentionOptions& o_opts) {
  const int64_t B = q.size(0), T = q.size(2), D = q.size(3), Hg = h1 - h0;
  w = std::min(w, T);
  const int64_t n_full = T / w, tail = T - n_full * w;
  auto out = torch::zeros({B, Hg, T, D}, q.options());
  auto lse = torch::full({B, Hg, T}, -std::numeric_limits<double>::infinity(), q.options());
  // Heads sharing an offset form a strided slice of heads; their kept positions form a strided
  // slice of each segment: one batched call per (offset, full segments | tail), no loop over
  // segments.
  const int64_t n_offsets = fixed_offset >= 0 ? 1 : std::min(r, Hg);
  for (int64_t i = 0; i < n_offsets; ++i) {
    // Heads h in [h0, h1) with h mod r == o; under a fixed offset, all of them.
    int64_t o, first, step;
    if (fixed_offset >= 0) {
      o = fixed_offset;
      first = 0;
      step = 1;
    } else {
      first = i;
      o = (h0 + i) % r;
      step = r;
    }
    const auto heads = Slice(first, Hg, step);
    auto run = [&](int64_t start, int64_t n_seg, int64_t len) {
      if (o >= len) return;  // a short tail segment may hold no position at this offset
      const auto keep = Slice(o, len, r);
      auto pick = [&](const torch::Tensor& x) {  // [B, Hg, T, D] -> [B * n_seg, Ho, m, D]
        auto seg = x.index({Slice(), Slice(h0, h1)}).narrow(2, start, n_seg * len).unflatten(2, {n_seg, len});
        auto sel = seg.index({Slice(), heads, Slice(), keep});  // [B, Ho, n_seg, m, D]
        return sel.permute({0, 2, 1, 3, 4}).reshape({B * n_seg, sel.size(1), sel.size(3), D});
      };
      auto res = tiled_attention_heads(pick(q), pick(k), pick(v), causal, o_opts.block_size,
                                       std::max(o_opts.block_size, o_opts.key_block));
      const int64_t Ho = res.out.size(1), m = res.out.size(2);
      auto o_view = out.index({Slice(), heads}).narrow(2, start, n_seg * len).unflatten(2, {n_seg, len});
      auto l_view = lse.index({Slice(), heads}).narrow(2, start, n_seg * len).unflatten(2, {n_seg, len});
      o_view.index_put_({Slice(), Slice(), Slice(), keep},
                        res.out.view({B, n_seg, Ho, m, D}).permute({0, 2, 1, 3, 4}));
      l_view.index_put_({Slice(), Slice(), Slice(), keep}, res.lse.view({B, n_seg, Ho, m}).permute({0, 2, 1, 3}));
    };
    if (n_full > 0) run(0, n_full, w);
    if (tail > 0) run(n_full * w, 1, tail);
  }
  return {out, lse};
}

}  // namespace

DilatedAttention::DilatedAttention(const AttentionOptions& options) : options_(options) {
  TORCH_CHECK(options.segment_lengths.size() == options.dilation_rates.size() && !options.segment_lengths.empty(),
              "dilated attention needs one dilation rate per segment length");
}

std::pair<int64_t, int64_t> head_group(int64_t H, int64_t n_pairs, int64_t g) {
  const int64_t base = H / n_pairs, extra = H % n_pairs;
  const int64_t first = g * base + std::min(g, extra);
  return {first, base + (g < extra ? 1 : 0)};
}

AttentionOutput DilatedAttention::forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          bool causal) {
  TORCH_CHECK(q.sizes() == k.sizes() && k.sizes() == v.sizes(), "dilated attention is self-attention: q, k, v of one shape");
  const int64_t H = q.size(2), D = q.size(3);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  auto qh = (q * scale).transpose(1, 2), kh = k.transpose(1, 2), vh = v.transpose(1, 2);  // [B, H, T, D]
  const auto& ws = options_.segment_lengths;
  const auto& rs = options_.dilation_rates;
  const int64_t n_pairs = static_cast<int64_t>(ws.size());
  AttentionOutput result;
  if (options_.mix == "head_groups") {
    std::vector<torch::Tensor> outs, lses;
    for (int64_t g = 0; g < n_pairs; ++g) {
      const auto [first, count] = head_group(H, n_pairs, g);
      if (count == 0) continue;
      auto r = dilated_pair(qh, kh, vh, ws[g], rs[g], first, first + count, g % rs[g], causal, options_);
      outs.push_back(r.out);
      lses.push_back(r.lse);
    }
    result = {torch::cat(outs, 1), torch::cat(lses, 1)};
  } else {
    for (int64_t i = 0; i < n_pairs; ++i) {
      auto r = dilated_pair(qh, kh, vh, ws[i], rs[i], 0, H, -1, causal, options_);
      result = i == 0 ? r : merge(result, r);
    }
  }
  return {result.out.transpose(1, 2), result.lse.transpose(1, 2)};
}

double DilatedAttention::attended_pairs(int64_t T, bool causal) const {
  // Per pair: segments of w' = min(w, T) keep about w'/r positions each.
  double pairs = 0;
  const double n_pairs = static_cast<double>(options_.segment_lengths.size());
  for (size_t i = 0; i < options_.segment_lengths.size(); ++i) {
    const double w = static_cast<double>(std::min(options_.segment_lengths[i], T));
    const double m = std::ceil(w / options_.dilation_rates[i]);
    const double per_segment = causal ? m * (m + 1) / 2 : m * m;
    pairs += (static_cast<double>(T) / w) * per_segment / (options_.mix == "head_groups" ? n_pairs : 1.0);
  }
  return pairs;
}

}  // namespace longnet::attention
