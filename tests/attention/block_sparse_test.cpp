// block_sparse against the masked oracle, and its block masks.
#include <gtest/gtest.h>

#include "attention/block_sparse.h"
#include "attention/registry.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

// [T, T] position mask from the kernel's own block mask, plus causal masking inside blocks.
torch::Tensor block_allowed(const attention::BlockSparseAttention& kernel, int64_t T, int64_t b, bool causal) {
  auto m = kernel.block_mask(T, causal);
  auto blk = torch::div(torch::arange(T, torch::kLong), b, "floor");
  auto a = m.index({blk.unsqueeze(1), blk.unsqueeze(0)});
  return causal ? a & causal_allowed(T) : a;
}

struct Case {
  int64_t B, T, H, D, block, local, stride, global, random;
  std::vector<std::pair<int64_t, int64_t>> pairs;
  bool causal;
};

attention::AttentionOptions options_of(const Case& c) {
  attention::AttentionOptions o;
  o.kind = "block_sparse";
  o.block_size = c.block;
  o.block_sparse.local_blocks = c.local;
  o.block_sparse.stride = c.stride;
  o.block_sparse.global_blocks = c.global;
  o.block_sparse.random_blocks = c.random;
  o.block_sparse.seed = 11;
  o.block_sparse.pairs = c.pairs;
  return o;
}

void check(const Case& c, torch::ScalarType dtype, double tol, double dropout = 0) {
  auto opts = torch::TensorOptions().dtype(dtype);
  auto q = torch::randn({c.B, c.T, c.H, c.D}, opts).requires_grad_();
  auto k = torch::randn({c.B, c.T, c.H, c.D}, opts).requires_grad_();
  auto v = torch::randn({c.B, c.T, c.H, c.D}, opts).requires_grad_();
  auto o = options_of(c);
  o.dropout = dropout;
  auto kernel_ptr = attention::make_kernel(o);
  const auto& kernel = dynamic_cast<const attention::BlockSparseAttention&>(*kernel_ptr);
  attention::DropoutKey key;
  key.rate = dropout;
  key.seed = 9;
  key.step = 4;
  key.layer = 3;
  kernel_ptr->dropout_key() = key;
  auto got = kernel_ptr->forward(q, k, v, c.causal);
  auto want = masked_attention(q, k, v, block_allowed(kernel, c.T, c.block, c.causal),
                               dropout > 0 ? oracle_dropout(key, c.B, c.H, c.T, dtype) : torch::Tensor());
  SCOPED_TRACE(::testing::Message() << "dropout=" << dropout << " T=" << c.T << " block=" << c.block << " local=" << c.local << " stride="
                                    << c.stride << " global=" << c.global << " random=" << c.random
                                    << " causal=" << c.causal);
  expect_matches_oracle(got, want, q, k, v, tol);
}

// Lengths that are not multiples of the block; each pattern alone and combined.
const std::vector<Case> kCases = {
    {2, 45, 3, 8, 8, 1, 0, 0, 0, {}, true},
    {2, 45, 3, 8, 8, 1, 0, 0, 0, {}, false},
    {1, 61, 2, 4, 8, -1, 3, 0, 0, {}, true},
    {2, 50, 3, 4, 8, 0, 0, 2, 0, {}, false},
    {2, 50, 3, 4, 8, 0, 0, 2, 0, {}, true},
    {1, 64, 2, 4, 8, -1, 0, 0, 2, {}, true},
    {1, 40, 2, 4, 8, -1, 0, 0, 0, {{4, 0}, {2, 3}, {0, 4}}, false},
    {2, 77, 5, 8, 16, 1, 2, 1, 1, {{3, 1}}, true},
    {2, 77, 5, 8, 16, 1, 2, 1, 1, {{3, 1}}, false},
};

class BlockSparseTest : public SeededTest {};

TEST_F(BlockSparseTest, MatchesOracleFloat64) {
  for (const auto& c : kCases) check(c, torch::kDouble, kFloat64Tol);
}

// Attention dropout: the gathered keys hash at their own positions, not the gathered order's.
TEST_F(BlockSparseTest, DropoutMatchesOracleGivenTheSameMask) {
  for (const auto& c : kCases) check(c, torch::kDouble, kFloat64Tol, 0.3);
}

TEST_F(BlockSparseTest, MatchesOracleFloat32) {
  for (const auto& c : kCases) check(c, torch::kFloat, 1e-5);
}

TEST_F(BlockSparseTest, MatchesOracleWithTwoThreads) {
  at::set_num_threads(2);
  for (const auto& c : kCases) check(c, torch::kDouble, kFloat64Tol);
}

TEST_F(BlockSparseTest, CausalDropsBlocksAboveTheDiagonalAndReportsDensity) {
  Case c{1, 64, 1, 4, 8, 1, 0, 0, 0, {{0, 7}}, true};
  attention::BlockSparseAttention kernel(options_of(c));
  auto m = kernel.block_mask(64, true);
  EXPECT_FALSE(m[0][7].item<bool>());
  EXPECT_FALSE(m.triu(1).any().item<bool>());
  EXPECT_EQ(m.sum().item<int64_t>(), 8 + 7);  // the diagonal and one block behind
  EXPECT_NEAR(kernel.density(64, true), 15.0 / 64, 1e-12);
  // Attended pairs: 8 diagonal blocks of 8*9/2 and 7 full blocks of 64.
  EXPECT_DOUBLE_EQ(kernel.attended_pairs(64, true), 8 * 36 + 7 * 64);
}

TEST_F(BlockSparseTest, RandomBlocksAreSeeded) {
  Case c{1, 128, 1, 4, 8, -1, 0, 0, 3, {}, false};
  attention::BlockSparseAttention a(options_of(c)), b(options_of(c));
  EXPECT_TRUE(torch::equal(a.block_mask(128, false), b.block_mask(128, false)));
  auto o = options_of(c);
  o.block_sparse.seed = 12;
  EXPECT_FALSE(torch::equal(a.block_mask(128, false), attention::BlockSparseAttention(o).block_mask(128, false)));
}

}  // namespace
}  // namespace longnet::testing
