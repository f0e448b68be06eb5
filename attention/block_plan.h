#pragma once
// block_sparse's plan of one query block against a range of keys, shared by the kernel in one
// process (the range is the whole sequence) and across ranks (the range is a received packet or
// a piece of the rank's own rows): which key rows the block mask keeps, and how the tiled core
// sees them. The kept rows are gathered into as few sets as the causal mask allows, each
// attended by one tiled call and merged by lse.
#include <ATen/core/Tensor.h>
#include <ATen/core/TensorAccessor.h>

#include <utility>
#include <vector>

#include "attention/blockwise.h"

namespace longnet::attention {

// Kept key rows (relative to the range's start), ascending, and the tiled core's spec for them.
struct KeySet {
  std::vector<std::pair<int64_t, int64_t>> ranges;  // [start, end)
  at::Tensor index;  // the rows as one int64 index, when there is more than one range
  TileSpec spec;

  int64_t size() const;
  // The set's rows of t along dim (a view when they are one range).
  at::Tensor take(const at::Tensor& t, int64_t dim) const;
  // into[rows] += g along dim.
  void add_back(const at::Tensor& into, const at::Tensor& g, int64_t dim) const;
  void add(int64_t start, int64_t end);  // appends rows, merging with the last range when adjacent
};

// The key sets of query block i (rows [q_first, q_end) of it lie in the query range) against
// keys [k_pos, k_pos + k_len) under `mask` [nb, nb] (blocks of b rows). Under causal masking
// only the diagonal block needs masking: its rows are gathered after the other kept rows and
// the set's positions are placed so that the gathered keys end at the diagonal's true
// positions (every earlier key then lies in every query's past). That needs the diagonal's rows
// to start at its block's start; when the range cuts the diagonal block after its start, the
// diagonal rows are a set of their own at their true positions. Without causal masking: one
// set. `dropout` (may be null) goes into the specs, with the gathered rows' true positions.
std::vector<KeySet> plan_key_sets(const at::TensorAccessor<bool, 2>& mask, int64_t b, bool causal, int64_t k_block,
                                  int64_t i, int64_t q_first, int64_t k_pos, int64_t k_len, const at::Device& device,
                                  const DropoutKey* dropout);

}  // namespace longnet::attention
