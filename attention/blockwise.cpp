#include "attention/blockwise.h"

#include <torch/torch.h>

#include <algorithm>
#include <limits>

namespace longnet::attention {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Which part of a (query tile, key tile) pair survives the causal mask.
enum class TileMask { kNone, kPartial, kAll };

TileMask classify(const TileSpec& spec, int64_t qs, int64_t qe, int64_t ks, int64_t ke) {
  if (!spec.causal) return TileMask::kNone;
  const int64_t q_first = spec.q_pos0 + qs, q_last = spec.q_pos0 + qe - 1;
  const int64_t k_first = spec.k_pos0 + ks, k_last = spec.k_pos0 + ke - 1;
  if (k_first > q_last) return TileMask::kAll;     // every key is in every query's future
  if (k_last <= q_first) return TileMask::kNone;   // every key is in every query's past
  return TileMask::kPartial;
}

// [bq, bk] boolean: true where key position > query position (masked out).
torch::Tensor future_mask(const TileSpec& spec, int64_t qs, int64_t qe, int64_t ks, int64_t ke,
                          const torch::Device& device) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(device);
  auto qpos = torch::arange(spec.q_pos0 + qs, spec.q_pos0 + qe, opts).unsqueeze(1);
  auto kpos = torch::arange(spec.k_pos0 + ks, spec.k_pos0 + ke, opts).unsqueeze(0);
  return kpos > qpos;
}

// s: [B, H, bq, bk] scores of one tile, masked in place.
void apply_mask_(torch::Tensor& s, TileMask m, const TileSpec& spec, int64_t qs, int64_t qe,
                 int64_t ks, int64_t ke) {
  if (m == TileMask::kPartial) s.masked_fill_(future_mask(spec, qs, qe, ks, ke, s.device()), kNegInf);
}

// -inf (no keys) -> 0 so that exp(s - lse) is 0 rather than NaN.
torch::Tensor finite_or_zero(const torch::Tensor& x) {
  return torch::where(torch::isfinite(x), x, torch::zeros_like(x));
}

}  // namespace

void tiled_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const TileSpec& spec, at::Tensor& out, at::Tensor& lse) {
  torch::NoGradGuard no_grad;
  const int64_t Tq = q.size(2), Tk = k.size(2);
  out = torch::zeros_like(q);
  lse = torch::full({q.size(0), q.size(1), Tq}, kNegInf, q.options());
  for (int64_t qs = 0; qs < Tq; qs += spec.q_block) {
    const int64_t qe = std::min(Tq, qs + spec.q_block);
    auto qb = q.narrow(2, qs, qe - qs);
    auto ob = out.narrow(2, qs, qe - qs);
    auto lb = lse.narrow(2, qs, qe - qs);
    // The keys this query tile can see: all of them, or under causal masking those up to its
    // last query. When they fit in one key tile, one fused softmax does the row (fewer passes
    // over the scores than the online rescaling below).
    int64_t k_end = Tk;
    if (spec.causal) k_end = std::clamp<int64_t>(spec.q_pos0 + qe - spec.k_pos0, 0, Tk);
    if (k_end == 0) continue;
    if (k_end <= spec.k_block) {
      auto s = torch::matmul(qb, k.narrow(2, 0, k_end).transpose(-1, -2));  // [B,H,bq,k_end]
      apply_mask_(s, classify(spec, qs, qe, 0, k_end), spec, qs, qe, 0, k_end);
      auto m = s.amax(-1);
      auto p = torch::softmax(s, -1);
      // p_max = exp(m - lse), so lse = m - log(p_max). Rows with no key: m = -inf, p = NaN.
      auto row_lse = m - p.amax(-1).log();
      auto empty = torch::isinf(m);
      if (empty.any().item<bool>()) {
        p.masked_fill_(empty.unsqueeze(-1), 0.0);
        row_lse.masked_fill_(empty, -std::numeric_limits<double>::infinity());
      }
      ob.copy_(torch::matmul(p, v.narrow(2, 0, k_end)));
      lb.copy_(row_lse);
      continue;
    }
    // Online softmax over key tiles: running max m, running sum l, unnormalised acc.
    torch::Tensor m, l, acc;
    for (int64_t ks = 0; ks < k_end; ks += spec.k_block) {
      const int64_t ke = std::min(k_end, ks + spec.k_block);
      const TileMask mask = classify(spec, qs, qe, ks, ke);
      if (mask == TileMask::kAll) continue;
      auto s = torch::matmul(qb, k.narrow(2, ks, ke - ks).transpose(-1, -2));  // [B,H,bq,bk]
      apply_mask_(s, mask, spec, qs, qe, ks, ke);
      auto tile_m = s.amax(-1, /*keepdim=*/true);                  // [B,H,bq,1]
      if (!m.defined()) {
        m = finite_or_zero(tile_m);
        s.sub_(m).exp_();
        l = s.sum(-1, true);
        acc = torch::matmul(s, v.narrow(2, ks, ke - ks));
      } else {
        auto m_new = finite_or_zero(torch::maximum(m, tile_m));
        auto rescale = torch::exp(m - m_new);
        s.sub_(m_new).exp_();
        l.mul_(rescale).add_(s.sum(-1, true));
        acc.mul_(rescale).add_(torch::matmul(s, v.narrow(2, ks, ke - ks)));
        m = m_new;
      }
    }
    if (!m.defined()) continue;  // every key masked for this query tile
    // l == 0 only for rows with no allowed key: their acc is 0 too, so out stays 0.
    ob.copy_(acc / l.clamp_min(std::numeric_limits<float>::min()));
    lb.copy_((m + l.log()).squeeze(-1));
  }
}

void tiled_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                    const at::Tensor& dlse, const TileSpec& spec, at::Tensor& dq,
                    at::Tensor& dk, at::Tensor& dv) {
  torch::NoGradGuard no_grad;
  const int64_t Tq = q.size(2), Tk = k.size(2);
  // ds = p * (dp - delta), delta_i = dout_i . out_i - dlse_i  (d lse_i / d s_ij = p_ij).
  auto delta = (dout * out).sum(-1, true);  // [B,H,Tq,1]
  if (dlse.defined()) delta = delta - dlse.unsqueeze(-1);
  auto lse_safe = finite_or_zero(lse).unsqueeze(-1);
  for (int64_t qs = 0; qs < Tq; qs += spec.q_block) {
    const int64_t qe = std::min(Tq, qs + spec.q_block), bq = qe - qs;
    auto qb = q.narrow(2, qs, bq);
    auto dob = dout.narrow(2, qs, bq);
    auto deltab = delta.narrow(2, qs, bq);
    auto lseb = lse_safe.narrow(2, qs, bq);
    auto dqb = dq.narrow(2, qs, bq);
    int64_t k_end = Tk;
    if (spec.causal) k_end = std::clamp<int64_t>(spec.q_pos0 + qe - spec.k_pos0, 0, Tk);
    for (int64_t ks = 0; ks < k_end; ks += spec.k_block) {
      const int64_t ke = std::min(k_end, ks + spec.k_block), bk = ke - ks;
      const TileMask mask = classify(spec, qs, qe, ks, ke);
      if (mask == TileMask::kAll) continue;
      auto kb = k.narrow(2, ks, bk);
      auto vb = v.narrow(2, ks, bk);
      auto p = torch::matmul(qb, kb.transpose(-1, -2));  // [B,H,bq,bk]
      apply_mask_(p, mask, spec, qs, qe, ks, ke);
      p.sub_(lseb).exp_();
      dv.narrow(2, ks, bk).add_(torch::matmul(p.transpose(-1, -2), dob));
      auto ds = torch::matmul(dob, vb.transpose(-1, -2));  // dp
      ds.sub_(deltab).mul_(p);
      dqb.add_(torch::matmul(ds, kb));
      dk.narrow(2, ks, bk).add_(torch::matmul(ds.transpose(-1, -2), qb));
    }
  }
}

}  // namespace longnet::attention
