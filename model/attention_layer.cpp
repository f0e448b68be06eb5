#include "model/attention_layer.h"

#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/torch.h>

#include "attention/length_scale.h"
#include "attention/registry.h"

namespace longnet::model {

MultiHeadAttentionOptions MultiHeadAttentionOptions::from(const ModelOptions& m) {
  return MultiHeadAttentionOptions(m.d_model, m.n_heads)
      .n_kv_heads(m.kv_heads())
      .bias(m.bias)
      .subln(m.norm == NormPlacement::kSubLn)
      .norm_type(m.norm_type)
      .pos(m.pos)
      .max_seq_len(m.max_seq_len)
      .rope_theta(m.rope_theta)
      .xpos_scale_base(m.xpos_scale_base)
      .dropout(m.dropout)
      .attention(m.attention);
}

MultiHeadAttentionImpl::MultiHeadAttentionImpl(const MultiHeadAttentionOptions& o) : options(o) {
  const int64_t C = o.d_model(), H = o.n_heads(), G = o.kv_heads(), D = o.head_dim();
  TORCH_CHECK(C % H == 0, "d_model ", C, " is not a multiple of n_heads ", H);
  TORCH_CHECK(H % G == 0, "n_heads ", H, " is not a multiple of n_kv_heads ", G);
  q_rows_ = H * D;
  kv_rows_ = G * D;
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(C, q_rows_ + 2 * kv_rows_).bias(o.bias())));
  if (o.subln()) inner_norm = register_module("inner_norm", Norm(C, o.bias(), o.norm_type()));
  out = register_module("out", torch::nn::Linear(torch::nn::LinearOptions(C, C).bias(o.bias())));
  if (o.pos() != PositionKind::kNone) {
    rotary = register_module("rotary", Rotary(RotaryOptions(D, o.max_seq_len())
                                                  .theta(o.rope_theta())
                                                  .xpos(o.pos() == PositionKind::kXpos)
                                                  .xpos_scale_base(o.xpos_scale_base())));
  }
  kernel_ = register_module("kernel", attention::make_kernel(o.attention()));
  dropout_ = register_module("dropout", torch::nn::Dropout(o.dropout()));
}

void MultiHeadAttentionImpl::set_sequence_parallel(attention::SequenceParallelPtr sp) {
  sp_ = std::move(sp);
  kernel_ = replace_module("kernel", attention::make_sequence_parallel_kernel(options.attention(), sp_));
}

attention::DecodeShape MultiHeadAttentionImpl::decode_shape(int64_t batch, const torch::TensorOptions& o) const {
  attention::DecodeShape shape;
  shape.batch = batch;
  shape.heads = options.n_heads();
  shape.kv_heads = options.kv_heads();
  shape.head_dim = options.head_dim();
  shape.max_len = options.max_seq_len();
  shape.options = o;
  return shape;
}

torch::Tensor MultiHeadAttentionImpl::forward(const torch::Tensor& x) { return attend(x, nullptr); }

torch::Tensor MultiHeadAttentionImpl::extend(const torch::Tensor& x, attention::DecodeCache& cache) {
  return attend(x, &cache);
}

torch::Tensor MultiHeadAttentionImpl::attend(const torch::Tensor& x, attention::DecodeCache* cache) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  const int64_t H = options.n_heads(), G = options.kv_heads(), D = options.head_dim();
  auto y = qkv(x);  // [B, T, (H + 2G) D]
  // One copy each into head-major [B, H, T, D] and [B, G, T, D]: the kernels work head-major,
  // and the [B, T, H, D] views passed below are transposes of contiguous tensors. split (not
  // narrow): its backward writes the three gradients into one [B, T, (H + 2G) D] buffer, and
  // separate copies let v outlive k without holding k's memory.
  auto parts = y.split_with_sizes({q_rows_, kv_rows_, kv_rows_}, -1);
  auto head_major = [&](const torch::Tensor& t, int64_t heads) {
    return t.view({B, T, heads, D}).transpose(1, 2).contiguous();
  };
  auto q = head_major(parts[0], H), k = head_major(parts[1], G), v = head_major(parts[2], G);
  if (rotary && cache) {
    const auto positions = torch::arange(cache->length, cache->length + T, torch::kLong);
    q = rotary->forward_at(q, false, positions, options.max_seq_len());
    k = rotary->forward_at(k, true, positions, options.max_seq_len());
  } else if (rotary && sp_) {
    q = rotary->forward_at(q, false, sp_->positions(), sp_->length());
    k = rotary->forward_at(k, true, sp_->positions(), sp_->length());
  } else if (rotary) {
    q = rotary(q);
    k = rotary(k, /*keys=*/true);
  }
  if (const int64_t L = options.attention().length_scale; L > 0) {
    // The factor on each query row's scores (attention/length_scale.h), [B or 1, 1, T, 1].
    const bool causal = options.attention().causal;
    const auto n = cache  ? attention::keys_seen(torch::arange(cache->length, cache->length + T, torch::kLong),
                                                 cache->length + T, causal, nullptr)
                   : sp_  ? attention::keys_seen(sp_->positions(), sp_->length(), causal, nullptr)
                          : attention::keys_seen(torch::arange(T, torch::kLong), T, causal, documents_.get());
    // float32 at least: q goes back to v's dtype below.
    const auto factor_type = q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    q = q * attention::length_scale_factors(n, L).to(q.device(), factor_type).unsqueeze(1).unsqueeze(-1);
  }
  // The kernels take q, k, v of one dtype. Under autocast (precision.h) the projection gives
  // bfloat16 and rotary's float32 tables promote q and k: back to v's dtype.
  q = q.to(v.scalar_type());
  k = k.to(v.scalar_type());
  torch::Tensor a;
  {
    // The kernels choose their own internal precision (float32 softmax statistics and lse for
    // bfloat16 inputs): autocast must not recast the products inside them, nor differently in
    // their recomputing backward.
    c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
    if (cache) {
      // The cache holds the G key/value heads; the kernel reads them for their query heads.
      a = kernel_->extend(*cache, q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).out;
    } else {
      if (G < H) {  // each key/value head serves H / G consecutive query heads
        k = k.repeat_interleave(H / G, 1);
        v = v.repeat_interleave(H / G, 1);
      }
      const bool causal = options.attention().causal;
      a = documents_ ? attention::attend_documents(*kernel_, q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                                   causal, *documents_).out
                     : kernel_->forward(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal).out;
    }
  }
  auto h = a.reshape({B, T, C});
  if (inner_norm) h = inner_norm(h);
  return dropout_(out(h));
}

}  // namespace longnet::model
