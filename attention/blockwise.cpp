#include "attention/blockwise.h"

#include <ATen/Parallel.h>
#include <ATen/ops/_scaled_dot_product_flash_attention_for_cpu.h>
#include <ATen/ops/_scaled_dot_product_flash_attention_for_cpu_backward.h>
#include <ATen/ops/_scaled_dot_product_efficient_attention.h>
#include <ATen/ops/_scaled_dot_product_efficient_attention_backward.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/merge.h"

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

// s: [..., bq, bk] scores of one tile, masked in place. Keys at or before the tile's first
// query are never masked, so only the columns after it are compared and filled.
void apply_mask_(torch::Tensor& s, TileMask m, const TileSpec& spec, int64_t qs, int64_t qe, int64_t ks,
                 int64_t ke) {
  if (m != TileMask::kPartial) return;
  const int64_t first_masked = std::max<int64_t>(ks, spec.q_pos0 + qs + 1 - spec.k_pos0);
  if (first_masked >= ke) return;
  s.narrow(-1, first_masked - ks, ke - first_masked)
      .masked_fill_(future_mask(spec, qs, qe, first_masked, ke, s.device()), kNegInf);
}

// The dropout factors z of the pairs of query rows [qs, qe) and key rows [ks, ke): [bq, bk].
torch::Tensor tile_factors(const TileSpec& spec, int64_t qs, int64_t qe, int64_t ks, int64_t ke,
                           const torch::Tensor& like) {
  auto pos = [](const at::Tensor& explicit_pos, int64_t pos0, int64_t s, int64_t e) {
    return explicit_pos.defined() ? explicit_pos.narrow(0, s, e - s) : torch::arange(pos0 + s, pos0 + e, torch::kLong);
  };
  return dropout_factors(*spec.dropout, spec.drop_stream, pos(spec.drop_q_pos, spec.q_pos0, qs, qe),
                         pos(spec.drop_k_pos, spec.k_pos0, ks, ke), like.scalar_type(), like.device());
}

// -inf (no keys) -> 0 so that exp(s - lse) is 0 rather than NaN.
torch::Tensor finite_or_zero(const torch::Tensor& x) {
  return torch::where(torch::isfinite(x), x, torch::zeros_like(x));
}

// LibTorch's flash attention computes what the tile loop computes for two masks: none, and
// causal with the first query and the first key at the same position ("top-left"). On the CPU,
// through the kernels' own per-(batch, head) calls, it ran 1.2-2.6x faster than the loop on the
// tile shapes the kernels use, except a short non-causal row of many keys (block_sparse's row
// of past blocks, 256 x 1024: 1.2-1.3x slower; `longnet bench core`), which therefore takes the
// loop (loop_is_faster). On CUDA tensors the same pieces go to LibTorch's memory-efficient SDPA
// kernel (compiled here, not yet run: docs/build.md). The loop also serves a backward that
// carries a gradient of the lse, which flash's backward has no input for, and dropout.

// The keys [ks, ke) that query rows [qs, Tq) attend under one flash mask. The tile loop masks
// key j for query i iff k_pos0 + j > q_pos0 + i; with d = q_pos0 - k_pos0 that is at most
// two pieces: the keys before d, seen by every query, and from there a top-left causal square.
struct FlashPiece {
  int64_t qs, ks, ke;
  bool causal;
};

std::vector<FlashPiece> flash_pieces(const TileSpec& spec, int64_t Tq, int64_t Tk) {
  if (Tq == 0 || Tk == 0) return {};  // no pair: out stays 0, lse -inf
  if (!spec.causal) return {{0, 0, Tk, false}};
  const int64_t d = spec.q_pos0 - spec.k_pos0;
  std::vector<FlashPiece> pieces;
  if (d >= 0) {
    if (d > 0) pieces.push_back({0, 0, std::min(d, Tk), false});
    if (Tk > d) pieces.push_back({0, d, Tk, true});
  } else if (Tq > -d) {
    pieces.push_back({-d, 0, Tk, true});  // queries before -d see none of these keys
  }
  return pieces;
}

// [..., T, D] -> [1, units, T, D], the layout the flash kernels take.
at::Tensor as_bhtd(const at::Tensor& x) { return x.reshape({1, -1, x.size(-2), x.size(-1)}); }

// The lse dtype flash works in: float for reduced floats, else the input's.
at::ScalarType flash_lse_type(const at::Tensor& q) {
  return reduced_precision(q) ? at::kFloat : q.scalar_type();
}

// One flash call on a piece, inputs and outputs [1, units, T, D] / lse [1, units, Tq]: LibTorch's
// flash kernel for the CPU, or on CUDA its memory-efficient SDPA kernel (the one that returns
// the lse for any Tq, Tk and float32, bfloat16 or half; its causal mask is top-left too). Its
// lse comes padded to a multiple of 32 queries.
std::pair<at::Tensor, at::Tensor> flash_piece_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                      bool causal) {
  if (q.is_cuda()) {
    auto [o, l, seed, offset] = at::_scaled_dot_product_efficient_attention(q, k, v, {}, /*compute_log_sumexp=*/true,
                                                                             0.0, causal, /*scale=*/1.0);
    return {o, l.narrow(-1, 0, q.size(-2))};
  }
  auto [o, l] = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, {}, /*scale=*/1.0);
  return {o, l};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> flash_piece_backward(const at::Tensor& dout, const at::Tensor& q,
                                                                    const at::Tensor& k, const at::Tensor& v,
                                                                    const at::Tensor& out, const at::Tensor& lse,
                                                                    bool causal) {
  if (q.is_cuda()) {
    constexpr int64_t kAlign = 32;  // the padding the memory-efficient kernel gives its lse
    const int64_t rows = q.size(-2), padded = (rows + kAlign - 1) / kAlign * kAlign;
    auto lse_padded = at::zeros({lse.size(0), lse.size(1), padded}, lse.options());
    lse_padded.narrow(-1, 0, rows).copy_(lse);
    // No dropout: the philox seed and offset are unused, as in the forward's own empty ones.
    auto unused = at::empty({}, at::dtype(at::kLong));
    auto [dq, dk, dv, dbias] = at::_scaled_dot_product_efficient_attention_backward(
        dout, q, k, v, at::Tensor(), out, lse_padded, unused, unused, 0.0, {true, true, true, false}, causal,
        /*scale=*/1.0);
    return {dq, dk, dv};
  }
  return at::_scaled_dot_product_flash_attention_for_cpu_backward(dout, q, k, v, out, lse, 0.0, causal, {},
                                                                  /*scale=*/1.0);
}

void flash_forward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const TileSpec& spec,
                        const at::Tensor& out, const at::Tensor& lse) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  bool first = true;
  for (const auto& p : flash_pieces(spec, Tq, Tk)) {
    auto qp = q.narrow(-2, p.qs, Tq - p.qs);
    auto [o, l] = flash_piece_forward(as_bhtd(qp), as_bhtd(k.narrow(-2, p.ks, p.ke - p.ks)),
                                      as_bhtd(v.narrow(-2, p.ks, p.ke - p.ks)), p.causal);
    auto out_rows = out.narrow(-2, p.qs, Tq - p.qs), lse_rows = lse.narrow(-1, p.qs, Tq - p.qs);
    o = o.reshape(out_rows.sizes());
    l = l.reshape(lse_rows.sizes()).to(lse.scalar_type());
    if (first) {
      out_rows.copy_(o);
      lse_rows.copy_(l);
      first = false;
    } else {
      merge_into_(out_rows, lse_rows, o, l);
    }
  }
}

// A backward on float32 copies of reduced-precision q, k, v, out and dout: `run` gets the copies
// and float32 gradients, which are then added to dq, dk, dv, each rounded once.
using Backward = std::function<void(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& out, const at::Tensor& dout, const at::Tensor& dq,
                                    const at::Tensor& dk, const at::Tensor& dv)>;
void backward_in_float32(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                         const at::Tensor& dout, const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv,
                         const Backward& run) {
  auto f = [](const at::Tensor& t) { return t.to(at::kFloat); };
  auto dq32 = at::zeros_like(dq, at::kFloat), dk32 = at::zeros_like(dk, at::kFloat), dv32 = at::zeros_like(dv, at::kFloat);
  run(f(q), f(k), f(v), f(out), f(dout), dq32, dk32, dv32);
  dq.add_(dq32);
  dk.add_(dk32);
  dv.add_(dv32);
}

// Each piece's gradients from the whole tile's out and lse: p = exp(s - lse) and
// delta = dout . out are those of all the keys, as in the tile loop.
void flash_backward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                         const at::Tensor& lse, const at::Tensor& dout, const TileSpec& spec, const at::Tensor& dq,
                         const at::Tensor& dk, const at::Tensor& dv) {
  if (q.device().is_cpu() && reduced_precision(q)) {
    // LibTorch's CPU flash backward in bfloat16 adds every key block's dq, dk, dv into bfloat16
    // (rounded at each block), and its bfloat16 GEMMs keep memory for every new shape: over a
    // run of packed documents of many lengths the process grew by more than 1 GB. In float32
    // neither happens.
    return backward_in_float32(q, k, v, out, dout, dq, dk, dv,
                               [&](const at::Tensor& q32, const at::Tensor& k32, const at::Tensor& v32,
                                   const at::Tensor& out32, const at::Tensor& dout32, const at::Tensor& dq32,
                                   const at::Tensor& dk32, const at::Tensor& dv32) {
                                 flash_backward_into(q32, k32, v32, out32, lse, dout32, spec, dq32, dk32, dv32);
                               });
  }
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  const auto lse_f = lse.to(flash_lse_type(q));
  for (const auto& p : flash_pieces(spec, Tq, Tk)) {
    const int64_t rows = Tq - p.qs, keys = p.ke - p.ks;
    auto [gq, gk, gv] = flash_piece_backward(
        as_bhtd(dout.narrow(-2, p.qs, rows)), as_bhtd(q.narrow(-2, p.qs, rows)), as_bhtd(k.narrow(-2, p.ks, keys)),
        as_bhtd(v.narrow(-2, p.ks, keys)), as_bhtd(out.narrow(-2, p.qs, rows)),
        lse_f.narrow(-1, p.qs, rows).reshape({1, -1, rows}), p.causal);
    auto dq_rows = dq.narrow(-2, p.qs, rows), dk_rows = dk.narrow(-2, p.ks, keys), dv_rows = dv.narrow(-2, p.ks, keys);
    dq_rows.add_(gq.reshape(dq_rows.sizes()));
    dk_rows.add_(gk.reshape(dk_rows.sizes()));
    dv_rows.add_(gv.reshape(dv_rows.sizes()));
  }
}

// The measured exception on the CPU: a non-causal tile with at least four times as many keys as
// queries.
bool loop_is_faster(const at::Tensor& q, const at::Tensor& k, const TileSpec& spec) {
  return q.device().is_cpu() && !spec.causal && k.size(-2) >= 4 * q.size(-2);
}

// CPU: float32, float64, bfloat16. CUDA: float32, bfloat16, half, with a head dimension the
// memory-efficient kernel takes (a multiple of 8, at most 128 here, so that its backward fits).
bool flash_core_fits(const at::Tensor& q) {
  const auto t = q.scalar_type();
  if (q.is_cuda())
    return (t == at::kFloat || t == at::kBFloat16 || t == at::kHalf) && q.size(-1) % 8 == 0 && q.size(-1) <= 128;
  return q.device().is_cpu() && (t == at::kFloat || t == at::kDouble || t == at::kBFloat16);
}

}  // namespace

bool biased_core_fits(const at::Tensor& q) { return q.device().is_cpu() && flash_core_fits(q); }

std::pair<at::Tensor, at::Tensor> biased_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& bias, bool causal) {
  TORCH_CHECK(biased_core_fits(q), "biased attention runs on the CPU in float32, float64 or bfloat16");
  auto [o, l] = at::_scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, causal, bias, /*scale=*/1.0);
  return {o, l};
}

void biased_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                     const at::Tensor& lse, const at::Tensor& dout, const at::Tensor& bias, bool causal,
                     const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv) {
  TORCH_CHECK(biased_core_fits(q), "biased attention runs on the CPU in float32, float64 or bfloat16");
  if (reduced_precision(q)) {  // in float32, as flash_backward_into (above) and for the same reasons
    return backward_in_float32(q, k, v, out, dout, dq, dk, dv,
                               [&](const at::Tensor& q32, const at::Tensor& k32, const at::Tensor& v32,
                                   const at::Tensor& out32, const at::Tensor& dout32, const at::Tensor& dq32,
                                   const at::Tensor& dk32, const at::Tensor& dv32) {
                                 biased_backward(q32, k32, v32, out32, lse, dout32, bias, causal, dq32, dk32, dv32);
                               });
  }
  auto [gq, gk, gv] = at::_scaled_dot_product_flash_attention_for_cpu_backward(
      dout.contiguous(), q, k, v, out, lse.to(q.scalar_type()), 0.0, causal, bias, /*scale=*/1.0);
  dq.add_(gq);
  dk.add_(gk);
  dv.add_(gv);
}

bool reduced_precision(const at::Tensor& x) {
  return x.scalar_type() == at::kBFloat16 || x.scalar_type() == at::kHalf;
}

at::TensorOptions lse_options(const at::Tensor& q) {
  return q.options().dtype(reduced_precision(q) ? at::kFloat : q.scalar_type());
}

void tiled_forward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                  const TileSpec& spec, const at::Tensor& out, const at::Tensor& lse) {
  if (spec.core == TileCore::kAuto && !spec.drops() && flash_core_fits(q) && !loop_is_faster(q, k, spec))
    return flash_forward_into(q, k, v, spec, out, lse);
  if (reduced_precision(q)) {  // the loop in float32, the result rounded once
    auto out32 = out.to(at::kFloat);
    tiled_forward_into(q.to(at::kFloat), k.to(at::kFloat), v.to(at::kFloat), spec, out32, lse);
    out.copy_(out32);
    return;
  }
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  for (int64_t qs = 0; qs < Tq; qs += spec.q_block) {
    const int64_t qe = std::min(Tq, qs + spec.q_block);
    auto qb = q.narrow(-2, qs, qe - qs);
    auto ob = out.narrow(-2, qs, qe - qs);
    auto lb = lse.narrow(-1, qs, qe - qs);
    // The keys this query tile can see: all of them, or under causal masking those up to its
    // last query. A row that fits one key tile is one pass of the loop below: max, exp, sum and
    // one matmul over the scores, the 1/sum applied to the [bq, D] output, not to the scores.
    int64_t k_end = Tk;
    if (spec.causal) k_end = std::clamp<int64_t>(spec.q_pos0 + qe - spec.k_pos0, 0, Tk);
    if (k_end == 0) continue;
    // Online softmax over key tiles: running max m, running sum l, unnormalised acc.
    torch::Tensor m, l, acc;
    for (int64_t ks = 0; ks < k_end; ks += spec.k_block) {
      const int64_t ke = std::min(k_end, ks + spec.k_block);
      const TileMask mask = classify(spec, qs, qe, ks, ke);
      if (mask == TileMask::kAll) continue;
      auto s = torch::matmul(qb, k.narrow(-2, ks, ke - ks).transpose(-1, -2));  // [B,H,bq,bk]
      apply_mask_(s, mask, spec, qs, qe, ks, ke);
      auto tile_m = s.amax(-1, /*keepdim=*/true);                  // [B,H,bq,1]
      // The sum l is over the undropped probabilities: dropout scales P after normalising.
      auto dropped = [&](torch::Tensor& e) -> torch::Tensor& {
        return spec.drops() ? e.mul_(tile_factors(spec, qs, qe, ks, ke, e)) : e;
      };
      if (!m.defined()) {
        m = finite_or_zero(tile_m);
        s.sub_(m).exp_();
        l = s.sum(-1, true);
        acc = torch::matmul(dropped(s), v.narrow(-2, ks, ke - ks));
      } else {
        auto m_new = finite_or_zero(torch::maximum(m, tile_m));
        auto rescale = torch::exp(m - m_new);
        s.sub_(m_new).exp_();
        l.mul_(rescale).add_(s.sum(-1, true));
        acc.mul_(rescale).add_(torch::matmul(dropped(s), v.narrow(-2, ks, ke - ks)));
        m = m_new;
      }
    }
    if (!m.defined()) continue;  // every key masked for this query tile
    // l == 0 only for rows with no allowed key: their acc is 0 too, so out stays 0.
    ob.copy_(acc / l.clamp_min(std::numeric_limits<float>::min()));
    lb.copy_((m + l.log()).squeeze(-1));
  }
}

void tiled_backward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                   const at::Tensor& dlse, const TileSpec& spec, const at::Tensor& dq,
                   const at::Tensor& dk, const at::Tensor& dv) {
  if (spec.core == TileCore::kAuto && !spec.drops() && flash_core_fits(q) && !loop_is_faster(q, k, spec) &&
      !dlse.defined())
    return flash_backward_into(q, k, v, out, lse, dout, spec, dq, dk, dv);
  if (reduced_precision(q)) {  // the loop in float32, each gradient rounded once
    const auto dlse32 = dlse.defined() ? dlse.to(at::kFloat) : dlse;
    return backward_in_float32(q, k, v, out, dout, dq, dk, dv,
                               [&](const at::Tensor& q32, const at::Tensor& k32, const at::Tensor& v32,
                                   const at::Tensor& out32, const at::Tensor& dout32, const at::Tensor& dq32,
                                   const at::Tensor& dk32, const at::Tensor& dv32) {
                                 tiled_backward_into(q32, k32, v32, out32, lse, dout32, dlse32, spec, dq32, dk32, dv32);
                               });
  }
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  // ds = p * (dp - delta), delta_i = dout_i . out_i - dlse_i  (d lse_i / d s_ij = p_ij).
  // With dropout z: out = (p z) v, so dv = (p z)^T dout and dp = z (dout v^T); delta is still
  // dout . out (sum_j p_ij z_ij dout_i . v_j).
  auto delta = (dout * out).sum(-1, true);  // [B,H,Tq,1]
  if (dlse.defined()) delta = delta - dlse.unsqueeze(-1);
  auto lse_safe = finite_or_zero(lse).unsqueeze(-1);
  for (int64_t qs = 0; qs < Tq; qs += spec.q_block) {
    const int64_t qe = std::min(Tq, qs + spec.q_block), bq = qe - qs;
    auto qb = q.narrow(-2, qs, bq);
    auto dob = dout.narrow(-2, qs, bq);
    auto deltab = delta.narrow(-2, qs, bq);
    auto lseb = lse_safe.narrow(-2, qs, bq);
    auto dqb = dq.narrow(-2, qs, bq);
    int64_t k_end = Tk;
    if (spec.causal) k_end = std::clamp<int64_t>(spec.q_pos0 + qe - spec.k_pos0, 0, Tk);
    for (int64_t ks = 0; ks < k_end; ks += spec.k_block) {
      const int64_t ke = std::min(k_end, ks + spec.k_block), bk = ke - ks;
      const TileMask mask = classify(spec, qs, qe, ks, ke);
      if (mask == TileMask::kAll) continue;
      auto kb = k.narrow(-2, ks, bk);
      auto vb = v.narrow(-2, ks, bk);
      auto p = torch::matmul(qb, kb.transpose(-1, -2));  // [B,H,bq,bk]
      apply_mask_(p, mask, spec, qs, qe, ks, ke);
      p.sub_(lseb).exp_();
      auto ds = torch::matmul(dob, vb.transpose(-1, -2));  // dp
      if (spec.drops()) {
        const auto z = tile_factors(spec, qs, qe, ks, ke, p);
        dv.narrow(-2, ks, bk).add_(torch::matmul((p * z).transpose(-1, -2), dob));
        ds.mul_(z);
      } else {
        dv.narrow(-2, ks, bk).add_(torch::matmul(p.transpose(-1, -2), dob));
      }
      ds.sub_(deltab).mul_(p);
      dqb.add_(torch::matmul(ds, kb));
      dk.narrow(-2, ks, bk).add_(torch::matmul(ds.transpose(-1, -2), qb));
    }
  }
}


namespace {

// Each (batch, head) unit on its own thread, its ops single-threaded (ATen and OpenBLAS run
// serially inside a parallel region): LibTorch 1.13's CPU bmm multiplies the B*H small
// matrices one after another, each split across all threads, and every elementwise pass
// does the same; one unit per thread keeps a tile in that core's cache and never syncs.
// Only when the units spread evenly, or are many, over the threads.
bool per_unit_threads(int64_t units) {
  const int64_t threads = at::get_num_threads();
  if (threads < 2 || at::in_parallel_region() || units < threads) return false;
  return units % threads == 0 || units >= 4 * threads;
}

// The spec of unit (batch row n, head h) of a [B, H, T, D] call: its dropout stream.
TileSpec unit_spec(const TileSpec& spec, int64_t n, int64_t h) {
  if (!spec.drops()) return spec;
  TileSpec s = spec;
  s.drop_stream = spec.dropout->stream(n, spec.head0 + h * spec.head_step);
  return s;
}

}  // namespace

HeadMajor head_major(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double softmax_scale) {
  const double scale = softmax_scale > 0 ? softmax_scale : 1.0 / std::sqrt(static_cast<double>(q.size(3)));
  return {(q * scale).transpose(1, 2).contiguous(), k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous()};
}

void for_each_unit(int64_t units, const std::function<void(int64_t)>& f) {
  if (!per_unit_threads(units)) {
    for (int64_t u = 0; u < units; ++u) f(u);
    return;
  }
  at::parallel_for(0, units, 1, [&](int64_t begin, int64_t end) {
    torch::NoGradGuard no_grad;  // grad mode is thread-local: the workers start with it on
    for (int64_t u = begin; u < end; ++u) f(u);
  });
}

void tiled_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const TileSpec& spec, at::Tensor& out, at::Tensor& lse) {
  torch::NoGradGuard no_grad;
  out = torch::zeros_like(q);
  lse = torch::full({q.size(0), q.size(1), q.size(2)}, kNegInf, lse_options(q));
  const int64_t H = q.size(1);
  for_each_unit(q.size(0) * H, [&](int64_t u) {
    const int64_t n = u / H, h = u % H;
    tiled_forward_into(q[n][h], k[n][h], v[n][h], unit_spec(spec, n, h), out[n][h], lse[n][h]);
  });
}

void tiled_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                    const at::Tensor& dlse, const TileSpec& spec, at::Tensor& dq,
                    at::Tensor& dk, at::Tensor& dv) {
  torch::NoGradGuard no_grad;
  const int64_t H = q.size(1);
  for_each_unit(q.size(0) * H, [&](int64_t u) {
    const int64_t n = u / H, h = u % H;
    tiled_backward_into(q[n][h], k[n][h], v[n][h], out[n][h], lse[n][h], dout[n][h],
                        dlse.defined() ? dlse[n][h] : dlse, unit_spec(spec, n, h), dq[n][h], dk[n][h], dv[n][h]);
  });
}

}  // namespace longnet::attention
