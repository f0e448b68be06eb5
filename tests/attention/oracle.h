#pragma once
// The oracle every kernel is tested against (DESIGN.md): dense softmax attention with an
// explicit boolean mask of the allowed (query, key) pairs, written as plainly as possible; each
// kind's attended pairs written out as such a mask; and the kernel table the oracle suite runs
// over (oracle_suite_test.cpp).
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "attention/dropout.h"
#include "attention/kernel.h"
#include "attention/options.h"

namespace longnet::testing {

// The float64 tolerance of the oracle tests. The kernels agree with the oracle to ~1e-15 in most
// processes, but LibTorch's double GEMM (MKL) was seen to land 1e-9 away in a few processes
// out of forty, the same inputs giving the same result within a process: a bug in a kernel
// shows as 1e-3 or more.
constexpr double kFloat64Tol = 1e-8;

// Random q, k, v of [B, T, H, D] in `dtype`, requiring gradients.
struct Qkv {
  torch::Tensor q, k, v;
};
Qkv random_qkv(int64_t B, int64_t T, int64_t H, int64_t D, torch::ScalarType dtype);

// q: [B, Tq, H, D], k, v: [B, Tk, H, D], allowed: [H, Tq, Tk] or [Tq, Tk] bool
// -> out: [B, Tq, H, D], lse: [B, Tq, H]. A query with no allowed key: out 0, lse -inf.
// dropout_factors [B, H, Tq, Tk] (optional): multiplied into the probabilities after the softmax.
attention::AttentionOutput masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& allowed, const torch::Tensor& dropout_factors = {});

// The factors of `key` for every (batch row, head) of [B, T, H, D] inputs at positions 0..T-1,
// from the kernels' own hash (attention/dropout.h): [B, H, T, T].
torch::Tensor oracle_dropout(const attention::DropoutKey& key, int64_t B, int64_t H, int64_t T,
                             torch::ScalarType dtype);

// What the kernel of `options.kind` must compute on q, k, v ([B, T, H, D], positions 0..T-1),
// from the DESIGN.md definition of its pattern through masked_attention; factors as there.
// Throws for a kind the table below does not know.
attention::AttentionOutput kernel_oracle(const Qkv& x, const attention::AttentionOptions& options, bool causal,
                                         const torch::Tensor& factors = {});

// [Tq, Tk] mask: key position <= query position.
torch::Tensor causal_allowed(int64_t T);

// Expects a kernel's result to match the oracle's: out and lse, and the gradients of q, k, v
// under a random upstream gradient of out alone, then of both out and lse (lse feeds the merges of the dilated and
// ring kernels, so its gradient matters; it is zero where the oracle's lse is -inf, a query
// with no key). Failures print the max difference.
void expect_matches_oracle(const attention::AttentionOutput& got, const attention::AttentionOutput& want,
                           const Qkv& x, double tol);

// One oracle case: a kernel's options and the shape it runs on.
struct KernelCase {
  attention::AttentionOptions options;
  int64_t B, T, H, D;
  bool causal;
};
std::string describe(const KernelCase& c);  // for failure messages

// The kernel table: every built-in kind with its oracle (the pairs it attends, as a mask) and the
// cases it is checked on (lengths that are not multiples of its blocks or segments, blocks longer
// than the sequence, each pattern alone and combined).
struct KernelTableEntry {
  std::string kind;
  std::function<attention::AttentionOutput(const Qkv&, const attention::AttentionOptions&, bool causal,
                                           const torch::Tensor& factors)>
      oracle;
  std::vector<KernelCase> cases;
  // The (query, key) pairs the causal pattern reads at length T with H heads, one [H, T, T]
  // mask per part whose keys the kind's decode cache holds apart (dilated: one per pair, and
  // under dilate: distance one per pair and class of heads; the others: one): what a cache may
  // keep is what later queries read in each part.
  std::function<std::vector<torch::Tensor>(const attention::AttentionOptions&, int64_t T, int64_t H)> reads;
};
const std::vector<KernelTableEntry>& kernel_table();

}  // namespace longnet::testing
