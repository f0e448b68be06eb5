#include "model/recompute.h"

#include <ATen/core/ivalue.h>

#include "model/lm.h"
#include "model/precision.h"

namespace longnet::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// What the backward pass needs besides x: the function, the RNG state it started from and the
// autocast state it ran under (precision.h).
struct Recomputation : torch::CustomClassHolder {
  std::function<torch::Tensor(const torch::Tensor&)> fn;
  torch::Tensor rng_state;
  AutocastState autocast;
  c10::Device device = c10::kCPU;
};

at::Generator generator_of(const c10::Device& device) { return at::globalContext().defaultGenerator(device); }

class RecomputeFunction : public torch::autograd::Function<RecomputeFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x, c10::intrusive_ptr<Recomputation> r) {
    {
      auto gen = generator_of(x.device());
      std::lock_guard<std::mutex> lock(gen.mutex());
      r->rng_state = gen.get_state();
    }
    r->device = x.device();
    r->autocast = AutocastState::current(x.device().type());
    torch::Tensor y;
    {
      torch::NoGradGuard no_grad;  // nothing inside fn is recorded: its activations die here
      y = r->fn(x);
    }
    ctx->save_for_backward({x});
    ctx->saved_data["r"] = c10::IValue::make_capsule(r);
    return {y};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto x = ctx->get_saved_variables()[0];
    auto r = c10::static_intrusive_pointer_cast<Recomputation>(ctx->saved_data["r"].toCapsule());
    auto gen = generator_of(r->device);
    torch::Tensor now;
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      now = gen.get_state();
      gen.set_state(r->rng_state);
    }
    auto xd = x.detach().requires_grad_(x.requires_grad());
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      AutocastScope autocast(r->autocast);
      y = r->fn(xd);
    }
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_state(now);  // the rest of the step draws as if nothing had been replayed
    }
    // Re-entrant backward: parameters accumulate into .grad as in an uncheckpointed run.
    torch::autograd::backward({y}, {grads[0]});
    return {xd.requires_grad() ? xd.grad() : torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor recompute_in_backward(const std::function<torch::Tensor(const torch::Tensor&)>& fn,
                                    const torch::Tensor& x) {
  // Without a graph to join (no grad, or an input nothing depends on) there is nothing to save.
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return fn(x);
  auto r = c10::make_intrusive<Recomputation>();
  r->fn = fn;
  return RecomputeFunction::apply(x, r)[0];
}

void apply_activation_checkpointing(LanguageModelImpl& model, const CheckpointPolicy& policy) {
  if (policy.mode == CheckpointPolicy::Mode::kNone) {
    model.set_block_runner(nullptr);
    return;
  }
  model.set_block_runner([policy](int64_t i, BlockImpl& block, const torch::Tensor& x) {
    if (!policy.covers(i)) return block.forward(x);
    return recompute_in_backward([&block](const torch::Tensor& t) { return block.forward(t); }, x);
  });
}

}  // namespace longnet::model
