#include "model/rotary.h"

#include <torch/torch.h>

namespace longnet::model {

RotaryImpl::RotaryImpl(const RotaryOptions& o) : options(o) {
  const int64_t D = o.head_dim();
  TORCH_CHECK(D % 2 == 0, "rotary encoding needs an even head_dim, got ", D);
  auto inv_freq = torch::pow(o.theta(), -torch::arange(0, D, 2, torch::kDouble) / D);
  auto angles = torch::outer(torch::arange(o.max_seq_len(), torch::kDouble), inv_freq);  // [T, D/2]
  auto full = torch::cat({angles, angles}, -1);                                         // [T, D]
  cos64_ = full.cos();  // float64 masters; cos_, sin_ are their casts to the inputs' type
  sin64_ = full.sin();
  cos_ = cos64_.to(torch::kFloat);
  sin_ = sin64_.to(torch::kFloat);
  if (o.xpos()) {
    // torchscale's zeta_i = (2i + 0.4 D) / (1.4 D), one per rotated pair (both halves).
    auto zeta = (torch::arange(0, D, 2, torch::kDouble) + 0.4 * D) / (1.4 * D);
    log_zeta_ = torch::cat({zeta, zeta}).log();
  }
}

torch::Tensor RotaryImpl::forward(const torch::Tensor& x, bool keys) {
  const int64_t T = x.size(-2), D = x.size(-1);
  TORCH_CHECK(T <= cos_.size(0), "sequence of ", T, " tokens exceeds model.max_seq_len ", cos_.size(0));
  if (cos_.scalar_type() != x.scalar_type() || cos_.device() != x.device()) {
    cos_ = cos64_.to(x.options());
    sin_ = sin64_.to(x.options());
  }
  auto cos = cos_.narrow(0, 0, T), sin = sin_.narrow(0, 0, T);  // [T, D], broadcast over [...]
  if (options.xpos()) {
    // scale[n, i] = zeta_i^((n - T/2) / base), inverted for keys.
    auto n = torch::arange(T, torch::kDouble) - static_cast<double>(T / 2);
    auto scale = torch::exp(torch::outer(n / options.xpos_scale_base(), log_zeta_) * (keys ? -1.0 : 1.0));
    scale = scale.to(x.options());
    cos = cos * scale;
    sin = sin * scale;
  }
  auto x1 = x.narrow(-1, 0, D / 2), x2 = x.narrow(-1, D / 2, D / 2);
  return x * cos + torch::cat({-x2, x1}, -1) * sin;
}

}  // namespace longnet::model
