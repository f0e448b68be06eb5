#pragma once
// Gradient all-reduce for data parallelism, bucketed and overlapped with backward (as PyTorch's
// DDP reducer): the parameters' gradients live in a few flat buckets (each .grad is a view into
// one), filled in the order backward produces them (the last layers first); a hook after each
// parameter's gradient accumulation counts it, and a bucket whose gradients are all in is summed
// over the group asynchronously while backward goes on. Buckets are launched in one fixed order
// on every rank, as collectives must be. A parameter's gradient may be accumulated several
// times in one backward (activation checkpointing and MLP chunks run nested backward passes);
// how often is learned in the first step, whose buckets all go out at its end.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#include <torch/types.h>

#include <memory>
#include <vector>

namespace longnet::train {

class GradientSync {
 public:
  GradientSync(const std::vector<torch::Tensor>& params, c10::intrusive_ptr<c10d::ProcessGroup> group,
               int64_t bucket_bytes);
  ~GradientSync();

  // Start of a step: every gradient is zero (the buckets are zeroed; replaces zero_grad).
  void zero();
  // The next backward pass is the step's last: sum each bucket over the group as soon as it is
  // complete.
  void arm();
  // After that backward: launches what it did not complete (parameters without a gradient),
  // waits for every bucket; the gradients are then the sums over the group.
  void finish();

  int64_t buckets() const;
  // Buckets of the last step that went out before finish(): the overlap backward allowed.
  int64_t launched_during_backward() const;

  struct State;  // shared with the hooks on the parameters' gradient accumulators

 private:
  std::shared_ptr<State> state_;
};

}  // namespace longnet::train
