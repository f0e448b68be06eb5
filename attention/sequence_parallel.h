#pragma once
// Sequence parallelism: the P ranks of a process group each hold a share of every sequence (the
// rows a RingLayout gives them) and attention runs across the group, so that no rank ever holds
// the whole sequence's activations. Whoever feeds the model (the trainer, the evaluator) sets the
// length of the sequence in hand; the model's layers read the layout from here.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <memory>
#include <optional>

#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/ring_layout.h"
#include "attention/transport.h"

namespace longnet::attention {

class SequenceParallel {
 public:
  // zigzag: the causal ring's balanced split (ring_layout.h); `zigzag_split` picks it per kernel.
  SequenceParallel(c10::intrusive_ptr<c10d::ProcessGroup> group, bool zigzag);

  // The next sequences are `length` tokens long (all ranks call it with the same length).
  void set_length(int64_t length);
  // Of the sequence in hand; set_length must have been called.
  const RingLayout& layout() const;
  const torch::Tensor& positions() const { return positions_; }  // this rank's rows [T_local] int64
  int64_t length() const { return layout().length(); }
  // x: [B, T, ...] the whole sequence -> [B, T_local, ...] this rank's rows.
  torch::Tensor local_rows(const torch::Tensor& x) const;

  const c10::intrusive_ptr<c10d::ProcessGroup>& group() const { return group_; }
  int rank() const { return group_->getRank(); }
  int size() const { return group_->getSize(); }
  bool zigzag() const { return zigzag_; }
  // What this group's attention transfers have sent and waited for, since the last reset.
  TransferStats& transfers() { return transfers_; }

  // Whether the kernel's cross-rank form wants the zigzag split: under causal masking, as its
  // registry entry says (ring-style kernels: every rank gets the same share of the triangle;
  // dilated: contiguous, LongNet's segments); without causal masking, contiguous.
  static bool zigzag_split(const AttentionOptions& options);

 private:
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  bool zigzag_;
  std::optional<RingLayout> layout_;
  torch::Tensor positions_;
  TransferStats transfers_;
};

using SequenceParallelPtr = std::shared_ptr<SequenceParallel>;

// The cross-rank form of `options.kind` (its registry entry's `across`). Its forward takes this rank's rows of q, k, v ([B, T_local, H, D]) and returns this
// rank's rows of the single-process kernel's output over the whole sequence.
KernelPtr make_sequence_parallel_kernel(const AttentionOptions& options, SequenceParallelPtr sp);

}  // namespace longnet::attention
