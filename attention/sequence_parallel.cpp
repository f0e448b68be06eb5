#include "attention/sequence_parallel.h"

#include <torch/torch.h>

#include <stdexcept>

#include "attention/decode.h"
#include "attention/registry.h"
#include "common/errors.h"

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

bool SequenceParallel::zigzag_split(const AttentionOptions& options) {
  return options.causal && kernel_entry(options.kind).zigzag;
}

namespace {

class SequenceParallelKernel : public AttentionKernel {
 public:
  SequenceParallelKernel(const AttentionOptions& options, SequenceParallelPtr sp)
      : options_(options), sp_(std::move(sp)), local_(make_kernel(options)), across_(kernel_entry(options.kind).across) {
    if (!across_) throw ConfigError("attention.kind: '" + options.kind + "' has no sequence-parallel form");
  }

  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override {
    return across_(q, k, v, causal, options_, sp_->layout(), sp_->group(), drawn(), &sp_->transfers());
  }
  std::string kind() const override { return options_.kind; }
  double attended_pairs(int64_t T, bool causal) const override { return local_->attended_pairs(T, causal); }
  // A sequence-parallel model decodes in one process: the single-process kernel's cache and rule.
  std::unique_ptr<DecodeCache> start_decoding(const DecodeShape& shape) const override {
    return local_->start_decoding(shape);
  }
  AttentionOutput extend(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                         const torch::Tensor& v) override {
    local_->eval();
    return local_->extend(cache, q, k, v);
  }

 protected:
  AttentionOutput decode_step(DecodeCache&, const torch::Tensor&, const torch::Tensor&, const torch::Tensor&) override {
    throw std::logic_error("SequenceParallelKernel::decode_step: extend() goes to the single-process kernel");
  }
  void decode_absorb(DecodeCache&, const torch::Tensor&, const torch::Tensor&) override {
    throw std::logic_error("SequenceParallelKernel::decode_absorb: extend() goes to the single-process kernel");
  }

 private:
  AttentionOptions options_;
  SequenceParallelPtr sp_;
  KernelPtr local_;  // the single-process kernel, for its FLOP count
  CrossRankKernel across_;
};

}  // namespace

KernelPtr make_sequence_parallel_kernel(const AttentionOptions& options, SequenceParallelPtr sp) {
  auto kernel = std::make_shared<SequenceParallelKernel>(options, std::move(sp));
  kernel->dropout_key().rate = options.dropout;
  return kernel;
}

}  // namespace longnet::attention
