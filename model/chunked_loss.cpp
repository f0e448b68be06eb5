#include "model/chunked_loss.h"

#include <torch/torch.h>

#include "common/targets.h"
#include "model/precision.h"

namespace longnet::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// One chunk's logits and their log-sum-exp: [n, V], [n], in the weight's dtype (the product
// itself in autocast's dtype when autocast is on).
std::pair<torch::Tensor, torch::Tensor> logits_of(const torch::Tensor& h, const torch::Tensor& weight) {
  auto logits = torch::matmul(h, weight.t()).to(weight.scalar_type());
  return {logits, torch::logsumexp(logits, -1)};
}

class ChunkedCrossEntropy : public torch::autograd::Function<ChunkedCrossEntropy> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& h, const torch::Tensor& weight,
                               const torch::Tensor& targets, int64_t chunk) {
    torch::NoGradGuard no_grad;
    ctx->save_for_backward({h, weight, targets});
    ctx->saved_data["chunk"] = chunk;
    // The backward recomputes the logits as this forward did (precision.h).
    const auto autocast = AutocastState::current(h.device().type());
    ctx->saved_data["autocast"] = autocast.enabled;
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(autocast.dtype);
    return {chunked_token_losses(h, weight, targets, chunk).sum()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &h = saved[0], &weight = saved[1], &targets = saved[2];
    const int64_t chunk = ctx->saved_data["chunk"].toInt(), N = h.size(0);
    AutocastScope scope({h.device().type(), ctx->saved_data["autocast"].toBool(),
                         static_cast<at::ScalarType>(ctx->saved_data["autocast_dtype"].toInt())});
    auto dh = torch::empty_like(h), dw = torch::zeros_like(weight);
    const auto g = grads[0];
    for (int64_t s = 0; s < N; s += chunk) {
      const int64_t n = std::min(chunk, N - s);
      auto hc = h.narrow(0, s, n);
      auto [logits, lse] = logits_of(hc, weight);
      auto d = logits.sub_(lse.unsqueeze(-1)).exp_();  // softmax
      const auto t = targets.narrow(0, s, n);
      d.scatter_add_(1, t.clamp_min(0).unsqueeze(1), torch::full({n, 1}, -1.0, d.options()));
      d.mul_((t != kNoTarget).unsqueeze(1) * g);  // a position without a target has no gradient
      dh.narrow(0, s, n).copy_(torch::matmul(d, weight));
      dw.add_(torch::matmul(d.t(), hc));
    }
    return {dh, dw, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

at::Tensor chunked_token_losses(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& targets,
                                int64_t chunk) {
  torch::NoGradGuard no_grad;
  const int64_t N = h.size(0);
  auto losses = torch::empty({N}, weight.options());
  for (int64_t s = 0; s < N; s += chunk) {
    const int64_t n = std::min(chunk, N - s);
    auto [logits, lse] = logits_of(h.narrow(0, s, n), weight);
    const auto t = targets.narrow(0, s, n);
    losses.narrow(0, s, n).copy_((lse - logits.gather(1, t.clamp_min(0).unsqueeze(1)).squeeze(1)).masked_fill(t == kNoTarget, 0));
  }
  return losses;
}

at::Tensor chunked_cross_entropy_sum(const at::Tensor& h, const at::Tensor& weight, const at::Tensor& targets,
                                     int64_t chunk) {
  return ChunkedCrossEntropy::apply(h, weight, targets, chunk)[0];
}

}  // namespace longnet::model
