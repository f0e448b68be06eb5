#include "attention/dense.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "attention/blockwise.h"
#include "attention/ring.h"

namespace longnet::attention {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Causal mask of a single tile at the origin, [Tq, Tk], true above the diagonal.
torch::Tensor causal_mask(int64_t Tq, int64_t Tk) {
  return torch::ones({Tq, Tk}, torch::kBool).triu(1);
}

// When all keys fit in one tile, the probabilities themselves are O(T * block): keep them, and
// use LibTorch's fused softmax and its backward instead of the tile core (far fewer passes
// over memory at the short lengths of small models; at T = 64, 48 heads of D = 32 it also beats
// the flash core: 1.0 / 2.3 ms forward / forward+backward against 2.3 / 9.6).
bool single_tile(const torch::Tensor& q, const torch::Tensor& k, int64_t q_block, int64_t k_block) {
  return q.size(2) <= q_block && k.size(2) <= k_block;
}

// Inputs and outputs in the [B, H, T, D] layout; the scale is folded into q.
class TiledAttentionFunction : public torch::autograd::Function<TiledAttentionFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q,
                               const torch::Tensor& k, const torch::Tensor& v, bool causal,
                               int64_t q_block, int64_t k_block, const std::vector<int64_t>& dropout) {
    ctx->set_materialize_grads(false);  // an unused lse keeps no gradient (blockwise.h)
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["q_block"] = q_block;
    ctx->saved_data["k_block"] = k_block;
    ctx->saved_data["dropout"] = dropout;
    const auto drop = DropoutKey::unpack(dropout);
    if (single_tile(q, k, q_block, k_block)) {
      // Reduced precision computes in float32 and rounds out once; the lse stays float32.
      const auto f = [](const torch::Tensor& t) { return reduced_precision(t) ? t.to(torch::kFloat) : t; };
      const auto qf = f(q), kf = f(k), vf = f(v);
      auto s = torch::matmul(qf, kf.transpose(-1, -2));  // [B, H, Tq, Tk]
      if (causal) s.masked_fill_(causal_mask(q.size(2), k.size(2)), -std::numeric_limits<double>::infinity());
      auto m = s.amax(-1);
      auto p = torch::softmax(s, -1);
      // p_max = exp(m - lse), so lse = m - log(p_max): no second pass of exp over s.
      auto lse = m - p.amax(-1).log();
      if (drop.active()) {
        auto z = dropout_factors_all(drop, q.size(0), q.size(1), torch::arange(q.size(2)), torch::arange(k.size(2)),
                                     p.scalar_type(), p.device());
        auto out = torch::matmul(p * z, vf).to(q.scalar_type());
        ctx->save_for_backward({qf, kf, vf, out, lse, p, z});
        return {out, lse};
      }
      auto out = torch::matmul(p, vf).to(q.scalar_type());
      ctx->save_for_backward({qf, kf, vf, out, lse, p});
      return {out, lse};
    }
    TileSpec spec;
    spec.causal = causal;
    spec.q_block = q_block;
    spec.k_block = k_block;
    spec.dropout = &drop;
    torch::Tensor out, lse;
    tiled_forward(q, k, v, spec, out, lse);
    ctx->save_for_backward({q, k, v, out, lse});
    return {out, lse};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &q = saved[0], &k = saved[1], &v = saved[2], &out = saved[3], &lse = saved[4];
    TileSpec spec;
    spec.causal = ctx->saved_data["causal"].toBool();
    spec.q_block = ctx->saved_data["q_block"].toInt();
    spec.k_block = ctx->saved_data["k_block"].toInt();
    const auto drop = DropoutKey::unpack(ctx->saved_data["dropout"].toIntVector());
    spec.dropout = &drop;
    auto dout = grads[0].defined() ? grads[0].contiguous() : torch::zeros_like(out);
    if (saved.size() >= 6) {
      // q, k, v and p as the forward computed them (float32 for reduced-precision inputs); the
      // gradients go back in the output's dtype.
      // With dropout factors z: out = (p z) v, so dv = (p z)^T dout and dp = z (dout v^T).
      const auto& p = saved[5];
      const auto type = out.scalar_type();
      const auto dout_f = dout.to(p.scalar_type());
      const bool dropped = saved.size() == 7;
      auto dv = torch::matmul((dropped ? p * saved[6] : p).transpose(-1, -2), dout_f);
      auto dp = torch::matmul(dout_f, v.transpose(-1, -2));
      if (dropped) dp.mul_(saved[6]);
      // ds = p * (dp - sum_j dp_j p_j) is softmax's own backward; d lse / d s = p.
      auto ds = torch::_softmax_backward_data(dp, p, -1, p.scalar_type());
      if (grads[1].defined()) ds.add_(p * grads[1].to(p.scalar_type()).unsqueeze(-1));
      return {torch::matmul(ds, k).to(type), torch::matmul(ds.transpose(-1, -2), q).to(type), dv.to(type),
              torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
    }
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    tiled_backward(q, k, v, out, lse, dout, grads[1], spec, dq, dk, dv);
    return {dq, dk, dv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

AttentionOutput tiled_attention_heads(const torch::Tensor& q_scaled, const torch::Tensor& k,
                                      const torch::Tensor& v, bool causal, int64_t q_block,
                                      int64_t k_block, const DropoutKey& dropout) {
  auto res = TiledAttentionFunction::apply(q_scaled.contiguous(), k.contiguous(), v.contiguous(), causal, q_block,
                                           k_block, dropout.pack());
  return {res[0], res[1]};
}

AttentionOutput tiled_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, bool causal, int64_t q_block,
                                int64_t k_block, double softmax_scale, const DropoutKey& dropout) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "q, k, v must be [B, T, H, D]");
  TORCH_CHECK(!causal || q.size(1) == k.size(1), "causal attention needs Tq == Tk");
  // [B, T, H, D] -> [B, H, T, D], so every tile is a contiguous slice.
  const auto h = head_major(q, k, v, softmax_scale);
  auto res = tiled_attention_heads(h.q, h.k, h.v, causal, q_block, k_block, dropout);
  return {res.out.transpose(1, 2), res.lse.transpose(1, 2)};
}

AttentionOutput DenseAttention::forward(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, bool causal) {
  return tiled_attention(q, k, v, causal, options_.block_size, std::max(options_.block_size, options_.key_block),
                         options_.softmax_scale, drawn());
}

namespace {

struct DenseCache : DecodeCache {
  KvRows rows;
  int64_t rows_held() const override { return rows.rows_held(); }
  int64_t bytes() const override { return rows.bytes(); }
};

DenseCache& dense_cache(DecodeCache& cache) {
  auto* c = dynamic_cast<DenseCache*>(&cache);
  TORCH_CHECK(c, "dense attention was given another kernel's decode cache");
  return *c;
}

}  // namespace

std::unique_ptr<DecodeCache> dense_start_decoding(const AttentionOptions& options, const DecodeShape& shape) {
  auto c = std::make_unique<DenseCache>();
  c->shape = shape;
  c->scale = softmax_scale_for(options.softmax_scale, shape.head_dim);
  c->rows = KvRows(shape, shape.kv_heads, shape.max_len);
  return c;
}

AttentionOutput dense_decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v) {
  auto& c = dense_cache(cache);
  c.rows.append(k.unsqueeze(2), v.unsqueeze(2));
  auto res = attend_one(q, c.rows.k.view(), c.rows.v.view());
  if (c.length + 1 == c.shape.max_len) c.rows.clear();
  return res;
}

void dense_decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) {
  auto& c = dense_cache(cache);
  if (c.length < c.shape.max_len) c.rows.append(k, v);
}

std::unique_ptr<DecodeCache> DenseAttention::start_decoding(const DecodeShape& shape) const {
  return dense_start_decoding(options_, shape);
}
AttentionOutput DenseAttention::decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                            const torch::Tensor& v) {
  return dense_decode_step(cache, q, k, v);
}
void DenseAttention::decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) {
  dense_decode_absorb(cache, k, v);
}

KernelEntry dense_entry() {
  KernelEntry e;
  e.make = [](const AttentionOptions& o) { return std::make_shared<DenseAttention>(o); };
  e.across = ring_across_ranks;
  return e;
}

}  // namespace longnet::attention
