#include "model/rotary.h"

#include <torch/torch.h>

namespace longnet::model {

RotaryImpl::RotaryImpl(int64_t head_dim, int64_t max_seq_len, double theta) {
  TORCH_CHECK(head_dim % 2 == 0, "rotary encoding needs an even head_dim, got ", head_dim);
  auto inv_freq = torch::pow(theta, -torch::arange(0, head_dim, 2, torch::kDouble) / head_dim);
  auto angles = torch::outer(torch::arange(max_seq_len, torch::kDouble), inv_freq);  // [T, D/2]
  auto full = torch::cat({angles, angles}, -1);                                      // [T, D]
  cos_ = full.cos().to(torch::kFloat);
  sin_ = full.sin().to(torch::kFloat);
}

torch::Tensor RotaryImpl::forward(const torch::Tensor& x) {
  const int64_t T = x.size(-2), D = x.size(-1);
  TORCH_CHECK(T <= cos_.size(0), "sequence of ", T, " tokens exceeds model.max_seq_len ", cos_.size(0));
  if (cos_.scalar_type() != x.scalar_type() || cos_.device() != x.device()) {
    cos_ = cos_.to(x.options());
    sin_ = sin_.to(x.options());
  }
  auto cos = cos_.narrow(0, 0, T), sin = sin_.narrow(0, 0, T);  // [T, D], broadcast over [...]
  auto x1 = x.narrow(-1, 0, D / 2), x2 = x.narrow(-1, D / 2, D / 2);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}

}  // namespace longnet::model
