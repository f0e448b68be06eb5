#include "train/grad_sync.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#include <mutex>

namespace longnet::train {

struct GradientSync::State {
  c10::intrusive_ptr<c10d::ProcessGroup> group;
  std::vector<torch::Tensor> flat;                      // one per bucket
  std::vector<int64_t> bucket_of;                       // per parameter
  std::vector<int64_t> size;                            // parameters per bucket
  std::vector<int64_t> pending;                         // per bucket, this pass
  std::vector<c10::intrusive_ptr<c10d::Work>> work;     // per bucket, launched
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: they hold the hooks
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
    const int64_t b = bucket_of[param];
    if (pending[b] > 0 && --pending[b] == 0) launch_ready();
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
    s.size.push_back(static_cast<int64_t>(members[b].size()));
  }
  s.pending = s.size;
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
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->pending = state_->size;
  state_->next = 0;
  state_->armed = true;
}

void GradientSync::finish() {
  auto& s = *state_;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.launched_early = s.next;
    for (auto& p : s.pending) p = 0;  // parameters that got no gradient this step: zeros
    s.launch_ready();
    s.armed = false;
  }
  for (auto& w : s.work) {
    if (w) w->wait();
    w.reset();
  }
}

}  // namespace longnet::train
