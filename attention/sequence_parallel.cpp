#include "attention/sequence_parallel.h"

#include <torch/torch.h>

#include <stdexcept>

#include "attention/dilated.h"
#include "attention/registry.h"

namespace longnet::attention {

SequenceParallel::SequenceParallel(c10::intrusive_ptr<c10d::ProcessGroup> group, bool zigzag)
    : group_(std::move(group)), zigzag_(zigzag) {
  TORCH_CHECK(group_, "sequence parallelism needs a process group");
}

void SequenceParallel::set_length(int64_t length) {
  if (layout_ && layout_->length() == length) return;
  layout_.emplace(length, rank(), size(), zigzag_);
  positions_ = layout_->positions(rank());
}

const RingLayout& SequenceParallel::layout() const {
  TORCH_CHECK(layout_, "sequence parallel: set_length was not called before the forward");
  return *layout_;
}

torch::Tensor SequenceParallel::local_rows(const torch::Tensor& x) const {
  TORCH_CHECK(x.size(1) == length(), "sequence parallel: a batch of ", x.size(1), " tokens, the layout is for ",
              length());
  return x.index_select(1, positions_.to(x.device()));
}

bool SequenceParallel::split_for(const AttentionOptions& options) {
  return options.causal && options.kind != "dilated";
}

namespace {

class SequenceParallelKernel : public AttentionKernel {
 public:
  SequenceParallelKernel(const AttentionOptions& options, SequenceParallelPtr sp)
      : options_(options), sp_(std::move(sp)), local_(make_kernel(options)) {
    if (options.kind != "dense" && options.kind != "ring" && options.kind != "block_sparse" &&
        options.kind != "dilated")
      throw std::invalid_argument("attention kind '" + options.kind + "' has no sequence-parallel form");
  }

  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override {
    const auto& layout = sp_->layout();
    if (options_.kind == "block_sparse")
      return block_sparse_across_ranks(q, k, v, causal, options_, layout, sp_->group(), /*packet_rows=*/0, drawn());
    if (options_.kind == "dilated")
      return dilated_across_ranks(q, k, v, causal, options_, layout, sp_->group(), drawn());
    return ring_attention(q, k, v, causal, layout, sp_->group(), options_.block_size, options_.key_block,
                          /*packet_rows=*/0, options_.softmax_scale, drawn());
  }
  std::string kind() const override { return options_.kind; }
  double attended_pairs(int64_t T, bool causal) const override { return local_->attended_pairs(T, causal); }

 private:
  AttentionOptions options_;
  SequenceParallelPtr sp_;
  KernelPtr local_;  // the single-process kernel, for its FLOP count
};

}  // namespace

KernelPtr make_sequence_parallel_kernel(const AttentionOptions& options, SequenceParallelPtr sp) {
  auto kernel = std::make_shared<SequenceParallelKernel>(options, std::move(sp));
  kernel->dropout_key().rate = options.dropout;
  return kernel;
}

}  // namespace longnet::attention
