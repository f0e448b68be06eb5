#include "train/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <limits>
#include <mutex>
#include <stdexcept>
#include <utility>

namespace longnet::train {

struct GradientSync::State {
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::vector<torch::Tensor> flat;                      // one per bucket
  std::vector<int64_t> bucket_of;                       // per parameter
  std::vector<std::vector<int64_t>> members;            // parameters per bucket
  // How often each parameter's gradient is accumulated in one backward: once, or once per
  // recomputed piece that uses it (activation checkpointing, MLP chunks run nested backward
  // passes). Learned in the first step, whose buckets all go out at the end.
  std::vector<int64_t> expected, fired;
  bool learned = false, late = false;
  std::vector<int64_t> pending;                         // per bucket: accumulations still to come
  std::vector<c10::intrusive_ptr<c10d::Work>> work;     // per bucket, launched
  // Kept alive: they hold the hooks. (A shared_ptr or, in newer LibTorch, an intrusive_ptr.)
  std::vector<decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()))> accumulators;
  size_t next = 0;                                      // next bucket to launch
  size_t launched_early = 0;
  bool armed = false;
  std::mutex mutex;

  void launch_ready() {
    while (next < flat.size() && pending[next] == 0) {
      std::vector<torch::Tensor> t = {flat[next]};
      work[next] = group->allreduce(t);
      ++next;
    }
  }
  void ready(int64_t param) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed) return;
    ++fired[param];
    if (!learned) return;
    const int64_t b = bucket_of[param];
    if (static_cast<size_t>(b) < next) late = true;  // its bucket is already on its way: the sum would be wrong
    else if (pending[b] > 0 && --pending[b] == 0) launch_ready();
  }
};

namespace {

class ReadyHook : public torch::autograd::FunctionPostHook {
 public:
  ReadyHook(std::weak_ptr<GradientSync::State> state, int64_t param) : state_(std::move(state)), param_(param) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    if (auto s = state_.lock()) s->ready(param_);
    return outputs;
  }

 private:
  std::weak_ptr<GradientSync::State> state_;
  int64_t param_;
};

}  // namespace

GradientSync::GradientSync(const std::vector<torch::Tensor>& params, c10::intrusive_ptr<c10d::ProcessGroup> group,
                           int64_t bucket_bytes)
    : state_(std::make_shared<State>()) {
  auto& s = *state_;
  s.group = std::move(group);
  s.bucket_of.assign(params.size(), 0);
  // Reverse registration order: backward reaches the last layers first.
  std::vector<std::vector<size_t>> members(1);
  int64_t bytes = 0;
  for (size_t k = params.size(); k-- > 0;) {
    const int64_t b = params[k].numel() * params[k].element_size();
    if (bytes > 0 && bytes + b > bucket_bytes) {
      members.emplace_back();
      bytes = 0;
    }
    members.back().push_back(k);
    bytes += b;
  }
  for (size_t b = 0; b < members.size(); ++b) {
    int64_t numel = 0;
    for (size_t k : members[b]) numel += params[k].numel();
    auto flat = torch::zeros({numel}, params.front().options());
    int64_t at = 0;
    for (size_t k : members[b]) {
      auto p = params[k];
      p.mutable_grad() = flat.narrow(0, at, p.numel()).view(p.sizes());
      at += p.numel();
      s.bucket_of[k] = static_cast<int64_t>(b);
    }
    s.flat.push_back(flat);
    s.members.emplace_back(members[b].begin(), members[b].end());
  }
  s.expected.assign(params.size(), 0);
  s.fired.assign(params.size(), 0);
  s.work.resize(s.flat.size());
  for (size_t k = 0; k < params.size(); ++k) {
    auto acc = torch::autograd::impl::grad_accumulator(params[k]);
    acc->add_post_hook(std::make_unique<ReadyHook>(state_, static_cast<int64_t>(k)));
    s.accumulators.push_back(std::move(acc));
  }
}

GradientSync::~GradientSync() = default;

int64_t GradientSync::buckets() const { return static_cast<int64_t>(state_->flat.size()); }
int64_t GradientSync::launched_during_backward() const { return static_cast<int64_t>(state_->launched_early); }

void GradientSync::zero() {
  for (auto& f : state_->flat) f.zero_();
}

void GradientSync::arm() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.fired.assign(s.fired.size(), 0);
  s.pending.assign(s.flat.size(), 0);
  for (size_t b = 0; b < s.flat.size(); ++b)
    for (int64_t k : s.members[b]) s.pending[b] += s.learned ? s.expected[k] : 1;
  if (!s.learned) s.pending.assign(s.flat.size(), std::numeric_limits<int64_t>::max());
  s.next = 0;
  s.late = false;
  s.armed = true;
  if (s.learned) s.launch_ready();  // buckets whose parameters get no gradient
}

void GradientSync::finish() {
  auto& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.launched_early = s.next;
    for (auto& p : s.pending) p = 0;  // parameters that got no gradient this step: zeros
    s.launch_ready();
    s.armed = false;
    if (!s.learned) {
      s.expected = s.fired;
      s.learned = true;
    }
  }
  for (auto& w : s.work) {
    if (w) w->wait();
    w.reset();
  }
  if (s.late)
    throw std::logic_error("gradient all-reduce: a parameter's gradient arrived after its bucket was sent (the "
                           "backward pass changed shape since the first step); the step's gradients are wrong");
}

}  // namespace longnet::train
