#pragma once
// Attention-probability dropout (YAML `attention.dropout`) whose mask is a pure function of
// (seed, step, layer, sample, head, query position, key position): a counter-based hash, not a
// generator's state. Dense, dilated, block-sparse and ring therefore drop the same (query, key)
// pairs, on any number of ranks and in whatever order their tiles run, and a checkpointed block
// that is recomputed in backward draws the same mask again without any saved RNG state.
//
// Dropout acts on the normalised probabilities: out_i = sum_j P_ij z_ij v_j with z_ij = keep_ij /
// (1 - rate) and P = softmax(s) as without dropout. The lse is unchanged, so partial results
// still merge exactly (merge.h), and the backward is the tiled one with P z in place of P for dv
// and dP z in place of dP (delta_i = dout_i . out_i still holds: DESIGN.md's derivation with P z).
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace longnet::attention {

// Which mask one forward draws. The kernel owns rate and layer; whoever runs the steps (the
// trainer) sets step and sample0 before each micro-batch's forward.
struct DropoutKey {
  double rate = 0;       // probability of dropping a pair; 0: off
  uint64_t seed = 0;     // the run's seed
  uint64_t step = 0;     // the optimizer step (the same in forward and recompute)
  uint64_t layer = 0;    // the model's layer index
  int64_t sample0 = 0;   // the global index of batch row 0 (micro-batch and data-parallel rank)
  int64_t position0 = 0; // the absolute position of the kernel's row 0: a document of a packed
                         //   window run alone (documents.h) hashes its pairs where they sit

  bool active() const { return rate > 0; }
  // As int64s, for an autograd function's saved_data, and back.
  std::vector<int64_t> pack() const;
  static DropoutKey unpack(const std::vector<int64_t>& packed);

  // The hash state of batch row b and query head `head`: one per (batch row, head) unit.
  uint64_t stream(int64_t b, int64_t head) const;
};

// [Tq, Tk] float of `dtype` on `device`: 1/(1 - rate) where pair (q_pos[i], k_pos[j]) is kept,
// 0 where it is dropped. q_pos: [Tq], k_pos: [Tk] int64 positions (any device), absolute once
// key.position0 is added to them. On
// the CPU a loop computes it; on other devices (CUDA) tensor operations on the device compute
// the same hash (dropout_factors_by_tensor_ops), so no mask is drawn on the host and copied.
at::Tensor dropout_factors(const DropoutKey& key, uint64_t stream, const at::Tensor& q_pos,
                           const at::Tensor& k_pos, at::ScalarType dtype, const at::Device& device);

// The device path of dropout_factors on any device: the same 64-bit hash in int64 tensor
// operations (wrapping multiplication, logical shifts by masking), equal to the CPU loop bit
// for bit (a test compares them on the CPU).
at::Tensor dropout_factors_by_tensor_ops(const DropoutKey& key, uint64_t stream, const at::Tensor& q_pos,
                                         const at::Tensor& k_pos, at::ScalarType dtype, const at::Device& device);

// The same mask for every (batch row, head) at once, for the oracle and the one-tile dense path:
// [B, H, Tq, Tk] factors of the pairs (q_pos[i], k_pos[j]) of rows 0..B-1 and heads 0..H-1.
at::Tensor dropout_factors_all(const DropoutKey& key, int64_t B, int64_t H, const at::Tensor& q_pos,
                               const at::Tensor& k_pos, at::ScalarType dtype, const at::Device& device);

}  // namespace longnet::attention
