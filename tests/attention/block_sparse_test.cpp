// block_sparse's block masks (its oracle cases are in the kernel table, oracle.cpp).
#include <gtest/gtest.h>

#include "attention/block_sparse.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

attention::AttentionOptions options_of(int64_t block, int64_t local, std::vector<std::pair<int64_t, int64_t>> pairs,
                                       int64_t random = 0) {
  attention::AttentionOptions o;
  o.kind = "block_sparse";
  o.block_size = block;
  o.block_sparse.local_blocks = local;
  o.block_sparse.random_blocks = random;
  o.block_sparse.seed = 11;
  o.block_sparse.pairs = std::move(pairs);
  return o;
}

// The table's cases run in the oracle suite (oracle.cpp); here the block masks themselves.
class BlockSparseTest : public SeededTest {};

TEST_F(BlockSparseTest, CausalDropsBlocksAboveTheDiagonalAndReportsDensity) {
  attention::BlockSparseAttention kernel(options_of(8, 1, {{0, 7}}));
  auto m = kernel.block_mask(64, true);
  EXPECT_FALSE(m[0][7].item<bool>());
  EXPECT_FALSE(m.triu(1).any().item<bool>());
  EXPECT_EQ(m.sum().item<int64_t>(), 8 + 7);  // the diagonal and one block behind
  EXPECT_NEAR(kernel.density(64, true), 15.0 / 64, 1e-12);
  // Attended pairs: 8 diagonal blocks of 8*9/2 and 7 full blocks of 64.
  EXPECT_DOUBLE_EQ(kernel.attended_pairs(64, true), 8 * 36 + 7 * 64);
}

TEST_F(BlockSparseTest, RandomBlocksAreSeeded) {
  const auto o = options_of(8, -1, {}, 3);
  attention::BlockSparseAttention a(o), b(o);
  EXPECT_TRUE(torch::equal(a.block_mask(128, false), b.block_mask(128, false)));
  auto reseeded = o;
  reseeded.block_sparse.seed = 12;
  EXPECT_FALSE(torch::equal(a.block_mask(128, false), attention::BlockSparseAttention(reseeded).block_mask(128, false)));
}

}  // namespace
}  // namespace longnet::testing
