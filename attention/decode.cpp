#include "attention/decode.h"

#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "attention/blockwise.h"

namespace longnet::attention {

double softmax_scale_for(double softmax_scale, int64_t head_dim) {
  return softmax_scale > 0 ? softmax_scale : 1.0 / std::sqrt(static_cast<double>(head_dim));
}

RowBuffer::RowBuffer(const DecodeShape& shape, int64_t heads, int64_t most) : shape_(shape), heads_(heads), most_(most) {}

void RowBuffer::append(const at::Tensor& rows) {
  const int64_t n = rows.size(2);
  TORCH_CHECK(size_ + n <= most_, "decode cache: ", size_ + n, " rows, more than the ", most_, " it was sized for");
  if (!data_.defined() || size_ + n > data_.size(2)) {
    int64_t cap = data_.defined() ? data_.size(2) : 16;
    while (cap < size_ + n) cap *= 2;
    cap = std::min(cap, most_);
    auto grown = torch::empty({shape_.batch, heads_, cap, shape_.head_dim}, rows.options());
    if (size_ > 0) grown.narrow(2, 0, size_).copy_(data_.narrow(2, 0, size_));
    data_ = grown;
  }
  data_.narrow(2, size_, n).copy_(rows);
  size_ += n;
}

at::Tensor RowBuffer::view() const {
  if (!data_.defined()) return torch::empty({shape_.batch, heads_, 0, shape_.head_dim}, shape_.options);
  return data_.narrow(2, 0, size_);
}

void RowBuffer::clear() {
  size_ = 0;
  data_ = at::Tensor();
}

int64_t RowBuffer::bytes() const { return data_.defined() ? static_cast<int64_t>(data_.nbytes()) : 0; }

AttentionOutput attend_one(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t B = q.size(0), Hq = q.size(1), D = q.size(2), Hk = k.size(1), n = k.size(2);
  TORCH_CHECK(Hq % Hk == 0, "attend_one: ", Hq, " query heads over ", Hk, " key heads");
  if (n == 0)
    return {torch::zeros_like(q), torch::full({B, Hq}, -std::numeric_limits<double>::infinity(), lse_options(q))};
  const auto f = [](const at::Tensor& t) { return reduced_precision(t) ? t.to(torch::kFloat) : t; };
  auto s = torch::matmul(f(q).reshape({B, Hk, Hq / Hk, D}), f(k).transpose(-1, -2));  // [B, Hk, g, n]
  auto lse = torch::logsumexp(s, -1);
  auto out = torch::matmul(torch::exp(s - lse.unsqueeze(-1)), f(v));  // [B, Hk, g, D]
  return {out.reshape({B, Hq, D}).to(q.scalar_type()), lse.reshape({B, Hq})};
}

AttentionOutput AttentionKernel::extend(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v) {
  torch::NoGradGuard no_grad;
  TORCH_CHECK(!is_training(), "incremental decoding runs in eval mode");
  const int64_t n = q.size(1), H = q.size(2), G = k.size(2);
  TORCH_CHECK(cache.length + n <= cache.shape.max_len, "decoding past the ", cache.shape.max_len,
              " positions the cache was started for");
  if (n > 1 && cache.length == 0) {
    auto ke = G < H ? k.repeat_interleave(H / G, 2) : k, ve = G < H ? v.repeat_interleave(H / G, 2) : v;
    auto res = forward(q, ke, ve, /*causal=*/true);
    cache.length = n;
    decode_absorb(cache, k.transpose(1, 2).contiguous(), v.transpose(1, 2).contiguous());
    return res;
  }
  std::vector<torch::Tensor> outs, lses;
  for (int64_t t = 0; t < n; ++t) {
    auto r = decode_step(cache, q.select(1, t) * cache.scale, k.select(1, t), v.select(1, t));
    ++cache.length;
    outs.push_back(r.out);
    lses.push_back(r.lse);
  }
  return {torch::stack(outs, 1), torch::stack(lses, 1)};
}

}  // namespace longnet::attention
