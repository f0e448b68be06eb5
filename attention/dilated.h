#pragma once
// `dilated`: LongNet's dilated attention (Ding et al. 2023, section 2.2). For each pair
// (segment length w, dilation rate r): cut the sequence into segments of w, keep every r-th
// position of each segment starting at offset h mod r for head h, attend inside the sparse
// segment, scatter back. The pairs are mixed by their softmax denominators (eq. 10: the lse
// merge), or, with mix: head_groups, each contiguous group of heads uses one pair.
// With dilate: keys only the keys are thinned: every query of a segment attends, in head h,
// to the segment's keys at offset h mod r (options.h), so that the heads of one layer together
// see every key of the segment.
// With dilate: every_offset every head keeps every offset: a query attends, in all heads, to
// the segment's keys at its own offset (one unit per offset over all heads).
// With dilate: distance head h keeps, for every query of a segment, the keys at a distance
// from it of h mod r, mod r: the query rows at offset o read the keys at offset (o - h) mod r
// (one unit per query offset over the heads of that distance).
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <vector>

#include "attention/decode.h"
#include "attention/kernel.h"
#include "attention/options.h"
#include "attention/registry.h"
#include "attention/ring_layout.h"
#include "attention/transport.h"

namespace longnet::attention {

class DilatedAttention : public AttentionKernel {
 public:
  explicit DilatedAttention(const AttentionOptions& options);
  // q, k, v: [B, T, H, D] -> out: [B, T, H, D], lse: [B, T, H]
  AttentionOutput forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          bool causal) override;
  std::string kind() const override { return "dilated"; }

  // Summed over the (segment, rate) pairs; under head_groups, averaged over the head groups.
  double attended_pairs(int64_t T, bool causal) const override;

  // Decoding keeps, per unit (pair and offset, below), the rows of the pair's current segment
  // at the unit's offset, for the key/value heads its query heads read: a row leaves when its
  // segment can have no later query of the unit. A row two pairs both read is held by each,
  // and under dilate: distance a row that two classes of heads read (grouped key/value heads
  // serving query heads of both) by each class.
  std::unique_ptr<DecodeCache> start_decoding(const DecodeShape& shape) const override;

 protected:
  AttentionOutput decode_step(DecodeCache& cache, const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) override;
  void decode_absorb(DecodeCache& cache, const torch::Tensor& k, const torch::Tensor& v) override;

 private:
  AttentionOptions options_;
};

// One batched piece of the work: pair (w, r) on a strided slice of heads: the keys at `offset`
// of each segment, and the queries at q_offset (LongNet and every_offset: the same offset;
// distance: another) or, with all_queries (dilate: keys), every query of the segment.
struct DilatedUnit {
  int64_t pair, w, r, offset, q_offset;
  int64_t h_first, h_end, h_step;  // heads h_first, h_first + h_step, ... < h_end
  bool all_queries = false;
};
std::vector<DilatedUnit> dilated_units(const AttentionOptions& options, int64_t H);

// The offsets of a unit's query rows, each attended as one strided slice of the segment:
// {q_offset}, or every offset 0 .. r - 1 under all_queries.
std::vector<int64_t> query_offsets(const DilatedUnit& u);

// Where, in a causal tile of a unit's kept rows, the keys start against the queries at
// q_offset: query i sits at q_offset + i r and key j at offset + j r, so key j is in the past
// of query i iff j + (q_offset < offset ? 1 : 0) <= i.
inline int64_t key_shift(const DilatedUnit& u, int64_t q_offset) { return q_offset < u.offset ? 1 : 0; }

// LongNet's distributed dilated attention (section 3.1) over a contiguous split of the
// sequence: segments inside a rank's rows stay local; for a segment that spans ranks, each
// rank sends only the rows its dilation keeps to the ranks of the segment that attend to them
// (causal: the later ones), so what a rank sends does not grow with T for a fixed w / r; the
// backward sends each of those rows' dk/dv back to its owner. q, k, v: this rank's rows
// [B, T_local, H, D] -> the rows of DilatedAttention(options) over the whole sequence. stats
// (may be null): where the bytes sent and the time waited are added.
AttentionOutput dilated_across_ranks(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                     bool causal, const AttentionOptions& options, const RingLayout& layout,
                                     const c10::intrusive_ptr<c10d::ProcessGroup>& group,
                                     const DropoutKey& dropout = {}, TransferStats* stats = nullptr);

// `dilated`: one rate >= 1 per segment length >= 1, mix lse or head_groups (then at least one
// head per pair); across ranks LongNet's distributed algorithm on the contiguous split.
KernelEntry dilated_entry();

// A sequence no pair cuts (T <= every segment length) under rates of 1 and 2 alone: each head's
// pattern is then how many units attend each (query i, key j), m_h(i mod 2, j mod 2), and the
// lse mix of the units is one softmax over every key with the scores s_ij + log m_h: one dense
// call with that bias (blockwise.h, biased_forward) instead of a call per unit. Taken where
// m_h >= 1 everywhere (a rate-1 pair reaches every head), so that the dense call attends no more
// pairs than the units do, and where m_h depends on (i + j) mod 2 alone (dilate: distance,
// every_offset) or on j mod 2 alone (dilate: keys), so that the bias is a strided view of two
// values per head. A packed window's short documents all go this way. The bias [1, H, T, T],
// or an undefined tensor where this does not apply; `like` gives its device and dtype.
torch::Tensor one_call_bias(const AttentionOptions& options, int64_t H, int64_t T, const torch::Tensor& like);

// The most bytes of temporaries (float copies of a unit's strided rows and a score tile per
// item) with which a unit's (batch, head, segment) items run as one call rather than one call
// each (dilated.cpp, fits_one_call): 64 MiB. Tests set 0 to take the per-item path, which long
// sequences take.
int64_t& dilated_batch_limit();

// Heads [first, first + count) of group g under mix: head_groups: H split into one contiguous
// group per pair, the remainder going to the first groups.
std::pair<int64_t, int64_t> head_group(int64_t H, int64_t n_pairs, int64_t g);

}  // namespace longnet::attention
