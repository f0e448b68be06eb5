#pragma once
// Tiled exact softmax attention, forward and backward, without autograd (flash-attention
// style: the backward recomputes each tile's probabilities from the saved log-sum-exp, so
// nothing of size Tq x Tk is ever held). Dense, ring and the sparse kernels are built on it.
#include <ATen/core/Tensor.h>

#include <functional>
#include <utility>

#include "attention/dropout.h"

namespace longnet::attention {

// kAuto: LibTorch's flash attention for the CPU wherever it computes the same thing (see
// blockwise.cpp), else the tile loop; kLoop: the tile loop always (benchmarks, tests).
enum class TileCore { kAuto, kLoop };

// Where the queries and keys sit in the sequence: causal masking compares absolute
// positions, so a chunk of a longer sequence (the ring's k/v chunks) is masked correctly.
struct TileSpec {
  bool causal = false;
  int64_t q_pos0 = 0;  // absolute position of q[:, :, 0]
  int64_t k_pos0 = 0;  // absolute position of k[:, :, 0]
  int64_t q_block = 128;
  int64_t k_block = 128;
  TileCore core = TileCore::kAuto;

  // Attention dropout (dropout.h), when `dropout` is set and active (then always the tile loop:
  // the flash kernels draw their own masks). The hash takes each pair's absolute positions:
  // drop_q_pos [Tq] / drop_k_pos [Tk] int64 where the rows are not q_pos0 + i / k_pos0 + j
  // (dilated's strided rows, gathered blocks). The unit's stream: `drop_stream` for the *_into
  // calls; tiled_forward/backward derive it for unit (n, h) as stream(n, head0 + h * head_step).
  const DropoutKey* dropout = nullptr;
  uint64_t drop_stream = 0;
  int64_t head0 = 0, head_step = 1;
  at::Tensor drop_q_pos, drop_k_pos;

  bool drops() const { return dropout != nullptr && dropout->active(); }
};

// q: [B, H, Tq, D], k, v: [B, H, Tk, D], contiguous -> out: [B, H, Tq, D], lse: [B, H, Tq].
// q is used as given: the caller folds the softmax scale into it.
// A query with no allowed key gets out = 0 and lse = -inf.
void tiled_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const TileSpec& spec, at::Tensor& out, at::Tensor& lse);

// Gradients of out (dout: [B, H, Tq, D]) and lse (dlse: [B, H, Tq], may be undefined)
// with respect to q, k, v, accumulated (add_) into dq, dk, dv of the inputs' shapes.
// Only an undefined dlse lets the backward take the flash core (blockwise.cpp), so every
// kernel's autograd function sets materialize_grads off: its lse, which training never uses,
// then gets an undefined gradient rather than LibTorch's default of zeros.
void tiled_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                    const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                    const at::Tensor& dlse, const TileSpec& spec, at::Tensor& dq,
                    at::Tensor& dk, at::Tensor& dv);

// The same loops, serial, on any leading dims (one (batch, head) unit: [Tq, D]); the caller
// owns out (zeros on entry) and lse (-inf on entry), and dq, dk, dv are accumulated into.
void tiled_forward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                        const TileSpec& spec, const at::Tensor& out, const at::Tensor& lse);
void tiled_backward_into(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const at::Tensor& out, const at::Tensor& lse, const at::Tensor& dout,
                         const at::Tensor& dlse, const TileSpec& spec, const at::Tensor& dq,
                         const at::Tensor& dk, const at::Tensor& dv);

// Exact attention with an additive score bias, through LibTorch's CPU flash kernels: q, k, v
// [B, H, T, D] contiguous (the scale folded into q), bias [1, H, Tq, Tk] broadcast over the
// batch (any view whose last stride is 1 or 0, e.g. a strided view of a short periodic buffer;
// -inf nowhere on a whole row). Out [B, H, Tq, D], lse [B, H, Tq] (float32 for reduced inputs);
// the backward accumulates into dq, dk, dv and has no lse gradient. Only where
// biased_core_fits(q): the CPU, float32, float64 or bfloat16.
bool biased_core_fits(const at::Tensor& q);
std::pair<at::Tensor, at::Tensor> biased_forward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                                 const at::Tensor& bias, bool causal);
void biased_backward(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& out,
                     const at::Tensor& lse, const at::Tensor& dout, const at::Tensor& bias, bool causal,
                     const at::Tensor& dq, const at::Tensor& dk, const at::Tensor& dv);

// Reduced-precision inputs (bfloat16, half): out keeps the input's dtype, the lse is float32
// (merges of partial results need its precision), and the tile loop computes in float32.
bool reduced_precision(const at::Tensor& x);
at::TensorOptions lse_options(const at::Tensor& q);

// q, k, v: [B, T, H, D] -> contiguous head-major [B, H, T, D], q times the softmax scale
// (attention.softmax_scale; 0: 1/sqrt(D)): what the tiled core takes. k and v are not copied
// when they are transposes of head-major tensors (as the model's attention layer passes them).
struct HeadMajor {
  at::Tensor q, k, v;
};
HeadMajor head_major(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double softmax_scale);

// f(u) for u in [0, units): one unit per intra-op thread, each run single-threaded with grad
// mode off, when the units spread well over the threads; otherwise in turn (and then each
// op uses all threads).
void for_each_unit(int64_t units, const std::function<void(int64_t)>& f);

}  // namespace longnet::attention
