#include "tests/attention/oracle.h"

#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "attention/block_sparse.h"
#include "attention/dilated.h"
#include "attention/merge.h"
#include "tests/support/support.h"

namespace longnet::testing {

Qkv random_qkv(int64_t B, int64_t T, int64_t H, int64_t D, torch::ScalarType dtype) {
  auto opts = torch::TensorOptions().dtype(dtype);
  return {torch::randn({B, T, H, D}, opts).requires_grad_(), torch::randn({B, T, H, D}, opts).requires_grad_(),
          torch::randn({B, T, H, D}, opts).requires_grad_()};
}

attention::AttentionOutput masked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                            const torch::Tensor& allowed, const torch::Tensor& dropout_factors) {
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
  // Products and sums by broadcasting, not einsum/matmul: the BLAS path of a double matmul was
  // seen to give results 1e-9 apart from one process to the next, more than the tolerances.
  auto s = (q.unsqueeze(2) * k.unsqueeze(1)).sum(-1).permute({0, 3, 1, 2}) * scale;  // [B, H, Tq, Tk]
  auto mask = allowed.dim() == 2 ? allowed.view({1, 1, allowed.size(0), allowed.size(1)}) : allowed.unsqueeze(0);
  s = s.masked_fill(mask.logical_not(), -std::numeric_limits<double>::infinity());
  auto lse = torch::logsumexp(s, -1);                                   // [B, H, Tq]
  auto empty = torch::isinf(lse);
  auto p = torch::exp(s - torch::where(empty, torch::zeros_like(lse), lse).unsqueeze(-1));
  if (dropout_factors.defined()) p = p * dropout_factors;
  // [B, Tq, Tk, H, 1] * [B, 1, Tk, H, D], summed over the keys -> [B, Tq, H, D]
  auto out = (p.permute({0, 2, 3, 1}).unsqueeze(-1) * v.unsqueeze(1)).sum(2);
  return {out, lse.transpose(1, 2)};
}

void expect_matches_oracle(const attention::AttentionOutput& got, const attention::AttentionOutput& want,
                           const Qkv& x, double tol) {
  EXPECT_TRUE(AllClose(got.out, want.out, tol)) << "out";
  EXPECT_TRUE(AllClose(got.lse, want.lse, tol)) << "lse";
  auto gout = torch::randn_like(got.out);
  // Out alone first (the model's use: the lse gets no gradient, and the kernels take the
  // flash backward where it fits), then out and lse.
  auto o1 = torch::autograd::grad({got.out}, {x.q, x.k, x.v}, {gout}, /*retain_graph=*/true);
  auto o2 = torch::autograd::grad({want.out}, {x.q, x.k, x.v}, {gout}, /*retain_graph=*/true);
  EXPECT_TRUE(AllClose(o1[0], o2[0], tol)) << "dq (out only)";
  EXPECT_TRUE(AllClose(o1[1], o2[1], tol)) << "dk (out only)";
  EXPECT_TRUE(AllClose(o1[2], o2[2], tol)) << "dv (out only)";
  auto glse = torch::randn_like(got.lse).masked_fill(torch::isinf(want.lse), 0.0);
  auto g1 = torch::autograd::grad({got.out, got.lse}, {x.q, x.k, x.v}, {gout, glse});
  auto g2 = torch::autograd::grad({want.out, want.lse}, {x.q, x.k, x.v}, {gout, glse});
  EXPECT_TRUE(AllClose(g1[0], g2[0], tol)) << "dq";
  EXPECT_TRUE(AllClose(g1[1], g2[1], tol)) << "dk";
  EXPECT_TRUE(AllClose(g1[2], g2[2], tol)) << "dv";
}

torch::Tensor oracle_dropout(const attention::DropoutKey& key, int64_t B, int64_t H, int64_t T,
                             torch::ScalarType dtype) {
  auto pos = torch::arange(T, torch::kLong);
  return attention::dropout_factors_all(key, B, H, pos, pos, dtype, torch::kCPU);
}

torch::Tensor causal_allowed(int64_t T) { return torch::ones({T, T}, torch::kBool).tril(); }

namespace {

void print(std::ostream& s, const std::string& v) { s << v; }
void print(std::ostream& s, attention::Mix v) { s << attention::name_of(v); }
void print(std::ostream& s, attention::Dilate v) { s << attention::name_of(v); }
template <typename T>
void print(std::ostream& s, const T& v) { s << v; }
template <typename A, typename B>
void print(std::ostream& s, const std::pair<A, B>& v) { s << "(" << v.first << "," << v.second << ")"; }
template <typename T>
void print(std::ostream& s, const std::vector<T>& v) {
  s << "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s << ",";
    print(s, v[i]);
  }
  s << "]";
}

}  // namespace

std::string describe(const KernelCase& c) {
  std::ostringstream s;
  s << "B=" << c.B << " T=" << c.T << " H=" << c.H << " D=" << c.D << " causal=" << c.causal;
  // Every attention.* key, through the options' own field list.
  attention::attention_fields(c.options, [&](const char* key, const auto& value) {
    s << " " << key << "=";
    print(s, value);
  });
  return s.str();
}

namespace {

// dense (and ring in one process): every key, or the past.
attention::AttentionOutput dense_oracle(const Qkv& x, const attention::AttentionOptions&, bool causal,
                                        const torch::Tensor& factors) {
  const int64_t T = x.q.size(1);
  return masked_attention(x.q, x.k, x.v, causal ? causal_allowed(T) : torch::ones({T, T}, torch::kBool), factors);
}

// [H, T, T]: pair (w, r) with head h at offset offset(h): same segment (of min(w, T), cut from
// position 0), the key's position kept (position in segment = offset mod r), the query's too
// unless dilate: keys, and the past if causal. Under dilate: every_offset, in every head, the
// query's and the key's positions in the segment equal mod r; under dilate: distance, the
// query's position minus the key's equal to offset(h) mod r.
torch::Tensor dilated_allowed(int64_t T, int64_t H, int64_t w, int64_t r, bool causal,
                              const std::function<int64_t(int64_t)>& offset, attention::Dilate dilate) {
  w = std::min(w, T);
  auto pos = torch::arange(T, torch::kLong);
  auto seg = torch::div(pos, w, "floor"), inseg = torch::remainder(pos, w);
  auto residue = torch::remainder(inseg, r);
  std::vector<torch::Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    auto sel = residue == offset(h);
    auto rows = dilate == attention::Dilate::kKeys ? torch::ones_like(sel) : sel;
    auto kept = dilate == attention::Dilate::kEveryOffset ? residue.unsqueeze(1) == residue.unsqueeze(0)
                : dilate == attention::Dilate::kDistance
                    ? torch::remainder(inseg.unsqueeze(1) - inseg.unsqueeze(0), r) == offset(h)
                    : rows.unsqueeze(1) & sel.unsqueeze(0);
    auto a = kept & (seg.unsqueeze(1) == seg.unsqueeze(0));
    if (causal) a = a & causal_allowed(T);
    heads.push_back(a);
  }
  return torch::stack(heads);
}

// dilated: per pair masked attention, mixed by lse; or, for head_groups, group g's heads with
// pair g alone at offset g mod r_g. Under dropout every pair's attention gets the same factors
// (a pair met by two (w, r) pairs is dropped or kept in both).
attention::AttentionOutput dilated_oracle(const Qkv& x, const attention::AttentionOptions& o, bool causal,
                                          const torch::Tensor& factors) {
  const int64_t T = x.q.size(1), H = x.q.size(2);
  const int64_t n = static_cast<int64_t>(o.dilated.segment_lengths.size());
  const auto dilate = o.dilated.dilate;
  if (o.dilated.mix == attention::Mix::kHeadGroups) {
    std::vector<torch::Tensor> outs, lses;
    for (int64_t g = 0; g < n; ++g) {
      const auto [first, count] = attention::head_group(H, n, g);
      const int64_t r = o.dilated.dilation_rates[g];
      auto mask = dilated_allowed(T, count, o.dilated.segment_lengths[g], r, causal, [&](int64_t) { return g % r; }, dilate);
      auto res = masked_attention(x.q.narrow(2, first, count), x.k.narrow(2, first, count),
                                  x.v.narrow(2, first, count), mask,
                                  factors.defined() ? factors.narrow(1, first, count) : factors);
      outs.push_back(res.out);
      lses.push_back(res.lse);
    }
    return {torch::cat(outs, 2), torch::cat(lses, 2)};
  }
  attention::AttentionOutput mixed;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = o.dilated.dilation_rates[i];
    auto mask = dilated_allowed(T, H, o.dilated.segment_lengths[i], r, causal, [&](int64_t h) { return h % r; }, dilate);
    auto res = masked_attention(x.q, x.k, x.v, mask, factors);
    mixed = i == 0 ? res : attention::merge(mixed, res);
  }
  return mixed;
}

// block_sparse: the kernel's own block mask (its planner is tested on its own) spread to
// positions, plus causal masking inside the blocks.
attention::AttentionOutput block_sparse_oracle(const Qkv& x, const attention::AttentionOptions& o, bool causal,
                                               const torch::Tensor& factors) {
  const int64_t T = x.q.size(1);
  auto blocks = attention::BlockSparseAttention(o).block_mask(T, causal);
  auto blk = torch::div(torch::arange(T, torch::kLong), o.block_size, "floor");
  auto allowed = blocks.index({blk.unsqueeze(1), blk.unsqueeze(0)});
  return masked_attention(x.q, x.k, x.v, causal ? allowed & causal_allowed(T) : allowed, factors);
}

std::vector<torch::Tensor> dense_reads(const attention::AttentionOptions&, int64_t T, int64_t H) {
  return {causal_allowed(T).expand({H, T, T})};
}

std::vector<torch::Tensor> dilated_reads(const attention::AttentionOptions& o, int64_t T, int64_t H) {
  const int64_t n = static_cast<int64_t>(o.dilated.segment_lengths.size());
  const auto dilate = o.dilated.dilate;
  std::vector<torch::Tensor> parts;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t w = o.dilated.segment_lengths[i], r = o.dilated.dilation_rates[i];
    if (o.dilated.mix == attention::Mix::kHeadGroups) {
      const auto [first, count] = attention::head_group(H, n, i);
      auto part = torch::zeros({H, T, T}, torch::kBool);
      if (count > 0) part.narrow(0, first, count).copy_(dilated_allowed(T, count, w, r, true, [&](int64_t) { return i % r; }, dilate));
      parts.push_back(part);
    } else if (dilate == attention::Dilate::kDistance) {
      // The heads of one distance class hold their keys apart from the other classes'.
      auto all = dilated_allowed(T, H, w, r, true, [&](int64_t h) { return h % r; }, dilate);
      for (int64_t c = 0; c < std::min(r, H); ++c) {
        auto part = torch::zeros({H, T, T}, torch::kBool);
        for (int64_t h = c; h < H; h += r) part[h].copy_(all[h]);
        parts.push_back(part);
      }
    } else {
      parts.push_back(dilated_allowed(T, H, w, r, true, [&](int64_t h) { return h % r; }, dilate));
    }
  }
  return parts;
}

std::vector<torch::Tensor> block_sparse_reads(const attention::AttentionOptions& o, int64_t T, int64_t H) {
  auto blocks = attention::BlockSparseAttention(o).block_mask(T, true);
  auto blk = torch::div(torch::arange(T, torch::kLong), o.block_size, "floor");
  return {(blocks.index({blk.unsqueeze(1), blk.unsqueeze(0)}) & causal_allowed(T)).expand({H, T, T})};
}

KernelCase with(const std::string& kind, int64_t B, int64_t T, int64_t H, int64_t D, bool causal, int64_t block,
                int64_t key_block = 1024) {
  KernelCase c{{}, B, T, H, D, causal};
  c.options.kind = kind;
  c.options.block_size = block;
  c.options.key_block = key_block;
  return c;
}

// Lengths that are not multiples of the block, blocks larger than T (the single-tile path),
// rows of one key tile (the fused-softmax path, key_block large) and rows of several key tiles
// (the online-softmax path, key_block = block); with two threads the (batch, head) units of the
// tiled core run one per thread (6 units spread evenly, 5 take the multi-threaded-op path).
std::vector<KernelCase> dense_cases(const std::string& kind) {
  struct Shape {
    int64_t B, T, H, D, block;
    bool causal;
  };
  std::vector<KernelCase> cases;
  for (const Shape& s : {Shape{2, 37, 3, 8, 16, true}, Shape{2, 37, 3, 8, 16, false}, Shape{1, 130, 2, 16, 32, true},
                         Shape{3, 5, 4, 4, 64, true}, Shape{2, 64, 4, 8, 64, true}, Shape{1, 1, 1, 4, 8, true},
                         Shape{2, 50, 5, 8, 7, false}, Shape{1, 97, 2, 8, 200, false}, Shape{2, 70, 3, 8, 16, true},
                         Shape{1, 45, 5, 8, 8, true}})
    for (int64_t key_block : {s.block, int64_t{8192}})
      cases.push_back(with(kind, s.B, s.T, s.H, s.D, s.causal, s.block, key_block));
  return cases;
}

// Heads not a multiple of the pairs, lengths not multiples of any segment, segments longer
// than the sequence, every rate > 1 (positions no pair selects), batch > 1.
std::vector<KernelCase> dilated_cases() {
  struct Shape {
    int64_t B, T, H, D;
    std::vector<int64_t> w, r;
    attention::Mix mix;
    bool causal;
    int64_t block = 16;
    attention::Dilate dilate = attention::Dilate::kQueriesAndKeys;
  };
  using attention::Dilate;
  using attention::Mix;
  std::vector<KernelCase> cases;
  for (const Shape& s : {Shape{2, 37, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kLse, true},
                         Shape{2, 37, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kLse, false},
                         Shape{1, 50, 4, 4, {12, 64}, {2, 3}, Mix::kLse, true},
                         Shape{2, 45, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kHeadGroups, true},
                         Shape{1, 29, 7, 4, {6, 10}, {2, 3}, Mix::kHeadGroups, false},
                         Shape{3, 19, 3, 4, {100}, {1}, Mix::kLse, true},
                         Shape{1, 70, 2, 8, {32, 64}, {1, 2}, Mix::kLse, true, 8},
                         // dilate: keys, where a query can precede every key of its residue
                         Shape{2, 37, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kLse, true, 16, Dilate::kKeys},
                         Shape{1, 50, 4, 4, {12, 64}, {2, 3}, Mix::kLse, false, 16, Dilate::kKeys},
                         Shape{2, 45, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kHeadGroups, true, 16, Dilate::kKeys},
                         Shape{1, 70, 2, 8, {32, 64}, {3, 4}, Mix::kLse, true, 8, Dilate::kKeys},
                         // dilate: every_offset, rates above the head count (offsets no head has
                         // under queries_and_keys)
                         Shape{2, 37, 3, 8, {8, 16, 32}, {1, 2, 4}, Mix::kLse, true, 16, Dilate::kEveryOffset},
                         Shape{1, 50, 2, 4, {12, 64}, {2, 3}, Mix::kLse, false, 16, Dilate::kEveryOffset},
                         Shape{2, 45, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kHeadGroups, true, 16, Dilate::kEveryOffset},
                         Shape{1, 70, 2, 8, {32, 64}, {3, 4}, Mix::kLse, true, 8, Dilate::kEveryOffset},
                         // dilate: distance, rates above the head count (distances no head has)
                         Shape{2, 37, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kLse, true, 16, Dilate::kDistance},
                         Shape{1, 50, 2, 4, {12, 64}, {2, 3}, Mix::kLse, false, 16, Dilate::kDistance},
                         Shape{2, 45, 5, 8, {8, 16, 32}, {1, 2, 4}, Mix::kHeadGroups, true, 16, Dilate::kDistance},
                         Shape{1, 70, 2, 8, {32, 64}, {3, 4}, Mix::kLse, true, 8, Dilate::kDistance},
                         // no pair cuts the sequence, rates 1 and 2: one biased dense call
                         // (dilated.h, one_call_bias), by (i + j) mod 2 and by j mod 2
                         Shape{2, 30, 4, 8, {32, 64}, {1, 2}, Mix::kLse, true, 8, Dilate::kDistance},
                         Shape{1, 33, 3, 4, {40, 33}, {2, 1}, Mix::kLse, false, 8, Dilate::kEveryOffset},
                         Shape{2, 25, 3, 8, {32, 25}, {1, 2}, Mix::kLse, true, 8, Dilate::kKeys}}) {
    auto c = with("dilated", s.B, s.T, s.H, s.D, s.causal, s.block);
    c.options.dilated.segment_lengths = s.w;
    c.options.dilated.dilation_rates = s.r;
    c.options.dilated.mix = s.mix;
    c.options.dilated.dilate = s.dilate;
    cases.push_back(c);
  }
  return cases;
}

// Lengths that are not multiples of the block; each pattern alone and combined.
std::vector<KernelCase> block_sparse_cases() {
  struct Shape {
    int64_t B, T, H, D, block, local, stride, global, random;
    std::vector<std::pair<int64_t, int64_t>> pairs;
    bool causal;
  };
  std::vector<KernelCase> cases;
  for (const Shape& s : {Shape{2, 45, 3, 8, 8, 1, 0, 0, 0, {}, true}, Shape{2, 45, 3, 8, 8, 1, 0, 0, 0, {}, false},
                         Shape{1, 61, 2, 4, 8, -1, 3, 0, 0, {}, true}, Shape{2, 50, 3, 4, 8, 0, 0, 2, 0, {}, false},
                         Shape{2, 50, 3, 4, 8, 0, 0, 2, 0, {}, true}, Shape{1, 64, 2, 4, 8, -1, 0, 0, 2, {}, true},
                         Shape{1, 40, 2, 4, 8, -1, 0, 0, 0, {{4, 0}, {2, 3}, {0, 4}}, false},
                         Shape{2, 77, 5, 8, 16, 1, 2, 1, 1, {{3, 1}}, true},
                         Shape{2, 77, 5, 8, 16, 1, 2, 1, 1, {{3, 1}}, false}}) {
    auto c = with("block_sparse", s.B, s.T, s.H, s.D, s.causal, s.block);
    auto& b = c.options.block_sparse;
    b.local_blocks = s.local;
    b.stride = s.stride;
    b.global_blocks = s.global;
    b.random_blocks = s.random;
    b.seed = 11;
    b.pairs = s.pairs;
    cases.push_back(c);
  }
  return cases;
}

}  // namespace

const std::vector<KernelTableEntry>& kernel_table() {
  // `ring` in one process is dense attention through the cross-rank code (one rank, no group).
  static const std::vector<KernelTableEntry> table = {
      {"dense", dense_oracle, dense_cases("dense"), dense_reads},
      {"ring", dense_oracle, dense_cases("ring"), dense_reads},
      {"dilated", dilated_oracle, dilated_cases(), dilated_reads},
      {"block_sparse", block_sparse_oracle, block_sparse_cases(), block_sparse_reads},
  };
  return table;
}

attention::AttentionOutput kernel_oracle(const Qkv& x, const attention::AttentionOptions& options, bool causal,
                                         const torch::Tensor& factors) {
  for (const auto& e : kernel_table())
    if (e.kind == options.kind) return e.oracle(x, options, causal, factors);
  throw std::invalid_argument("the oracle table has no kind " + options.kind);
}

}  // namespace longnet::testing
