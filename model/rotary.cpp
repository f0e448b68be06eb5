#include "model/rotary.h"

#include <torch/torch.h>

namespace longnet::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// rot(x) = [-x2, x1] on the halves of the last dim, and its transpose rot^T(u) = [u2, -u1].
torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}
torch::Tensor rotate_half_t(const torch::Tensor& u) {
  const int64_t h = u.size(-1) / 2;
  return torch::cat({u.narrow(-1, h, h), -u.narrow(-1, 0, h)}, -1);
}

// y = x * cos + rot(x) * sin, linear in x: the backward needs only the tables, so none of the
// [.., T, D] temporaries of the forward is kept for it (at long T they would be several
// copies of q and k per layer).
class RotateFunction : public torch::autograd::Function<RotateFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& cos,
                               const torch::Tensor& sin) {
    ctx->save_for_backward({cos, sin});
    return {x * cos + rotate_half(x) * sin};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& g = grads[0];
    return {g * saved[0] + rotate_half_t(g * saved[1]), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

// Tables up to this many entries (T * D) are kept between calls; longer ones are rebuilt per
// call (a [1M, 32] pair would be 256 MB in every layer, and costs little to recompute).
constexpr int64_t kCachedTableEntries = int64_t{1} << 20;

RotaryImpl::RotaryImpl(const RotaryOptions& o) : options(o) {
  const int64_t D = o.head_dim();
  TORCH_CHECK(D % 2 == 0, "rotary encoding needs an even head_dim, got ", D);
  auto inv_freq = torch::pow(o.theta(), -torch::arange(0, D, 2, torch::kDouble) / D);
  inv_freq_ = torch::cat({inv_freq, inv_freq});  // [D]: pair (i, i + D/2) turns at inv_freq[i]
  if (o.xpos()) {
    // torchscale's zeta_i = (2i + 0.4 D) / (1.4 D), one per rotated pair (both halves).
    auto zeta = (torch::arange(0, D, 2, torch::kDouble) + 0.4 * D) / (1.4 * D);
    log_zeta_ = torch::cat({zeta, zeta}).log();
  }
}

std::pair<torch::Tensor, torch::Tensor> RotaryImpl::tables(const torch::Tensor& n, int64_t length, bool keys,
                                                           const torch::TensorOptions& to) {
  auto angles = torch::outer(n, inv_freq_);  // [T, D], float64 so that large t * freq stay exact
  auto cos = angles.cos(), sin = angles.sin();
  if (options.xpos()) {
    // scale[n, i] = zeta_i^((n - length/2) / base), inverted for keys.
    auto scale = torch::exp(torch::outer((n - static_cast<double>(length / 2)) / options.xpos_scale_base(), log_zeta_) *
                            (keys ? -1.0 : 1.0));
    cos.mul_(scale);
    sin.mul_(scale);
  }
  return {cos.to(to), sin.to(to)};
}

torch::Tensor RotaryImpl::forward(const torch::Tensor& x, bool keys) {
  const int64_t T = x.size(-2), D = x.size(-1);
  TORCH_CHECK(T <= options.max_seq_len(), "sequence of ", T, " tokens exceeds model.max_seq_len ", options.max_seq_len());
  torch::Tensor cos, sin;
  if (T * D > kCachedTableEntries) {
    std::tie(cos, sin) = tables(torch::arange(T, torch::kDouble), T, keys, x.options());
  } else {
    auto& c = cache_[keys ? 1 : 0];
    if (!c.cos.defined() || c.T != T || c.cos.scalar_type() != x.scalar_type() || c.cos.device() != x.device()) {
      std::tie(c.cos, c.sin) = tables(torch::arange(T, torch::kDouble), T, keys, x.options());
      c.T = T;
    }
    cos = c.cos;
    sin = c.sin;
  }
  return RotateFunction::apply(x, cos, sin)[0];
}

torch::Tensor RotaryImpl::forward_at(const torch::Tensor& x, bool keys, const torch::Tensor& positions, int64_t length) {
  TORCH_CHECK(positions.dim() == 1 && positions.size(0) == x.size(-2), "rotary: ", positions.size(0),
              " positions for ", x.size(-2), " rows");
  TORCH_CHECK(length <= options.max_seq_len(), "sequence of ", length, " tokens exceeds model.max_seq_len ",
              options.max_seq_len());
  auto [cos, sin] = tables(positions.to(torch::kDouble), length, keys, x.options());
  return RotateFunction::apply(x, cos, sin)[0];
}

}  // namespace longnet::model
