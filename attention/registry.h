#pragma once
// The one place that maps YAML `attention.kind` to a kernel (STYLE.md, rules 3 and 12). Each
// kernel's own file defines its entry — how to build it, which of its options are valid, its
// form across the ranks of a sequence-parallel group, the split that form wants, its benchmark
// settings — and register_builtin_kernels() lists the entries, one line each. Nothing outside
// the kernels' files asks for a kind by name.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <functional>
#include <string>
#include <vector>

#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/ring_layout.h"
#include "attention/transport.h"
#include "common/option_problems.h"

namespace longnet::attention {

using KernelFactory = std::function<KernelPtr(const AttentionOptions&)>;


// What a kind's rules may depend on besides its options.
struct KernelContext {
  int64_t seq_len = 0;  // data.seq_len
  int64_t n_heads = 0;  // model.n_heads
};

// A kind's computation across the ranks of a group: q, k, v this rank's rows [B, T_local, H, D]
// under `layout` -> this rank's rows of the single-process kernel's output over the sequence.
// stats (may be null): where the bytes it sends and the time it waits for transfers are added.
using CrossRankKernel = std::function<AttentionOutput(
    const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v, bool causal, const AttentionOptions& options,
    const RingLayout& layout, const c10::intrusive_ptr<c10d::ProcessGroup>& group, const DropoutKey& dropout,
    TransferStats* stats)>;

struct KernelEntry {
  KernelFactory make;
  // The problems of the options this kind reads (the shared ones are checked for every kind).
  std::function<std::vector<OptionProblem>(const AttentionOptions&, const KernelContext&)> check;
  CrossRankKernel across;  // null: the kind has no sequence-parallel form
  bool zigzag = true;      // under causal masking its cross-rank form wants the zigzag split (ring_layout.h)
  // `longnet bench attention`'s settings for the kind at length T from the shared ones in `base`
  // (block sizes); density: the kept fraction asked of a sparse pattern. Null: `base` as it is.
  std::function<AttentionOptions(AttentionOptions base, int64_t T, double density, bool causal)> bench;
  // `longnet bench ring`'s settings for the cross-rank form, the same at every T and P so that
  // its tables compare across them. Null: `base` as it is.
  std::function<AttentionOptions(AttentionOptions base)> bench_across;
};

// Registers the built-in kernels; idempotent. Called once at start-up by the tools and tests
// (static self-registration inside a static library can be dropped by the linker).
void register_builtin_kernels();
void register_kernel(const std::string& kind, KernelEntry entry);
bool has_kernel(const std::string& kind);
std::vector<std::string> kernel_kinds();  // sorted
// Throws ConfigError listing the valid kinds when `kind` is unknown.
const KernelEntry& kernel_entry(const std::string& kind);

// Throws ConfigError listing the valid kinds when `options.kind` is unknown.
KernelPtr make_kernel(const AttentionOptions& options);
// Every problem of `options`: the kind itself, the options all kinds share, the kind's own.
std::vector<OptionProblem> check_options(const AttentionOptions& options, const KernelContext& context);

// A kernel's attended pairs at length T over dense attention's (causal: the lower triangle): the
// kept fraction for block_sparse, a work ratio for dilated, whose (w, r) pairs can meet the
// same (query, key) pair more than once.
double density(const AttentionKernel& kernel, int64_t T, bool causal);

}  // namespace longnet::attention
