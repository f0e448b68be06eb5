// The decode caches (attention/decode.h) of every kind in the kernel table. Decoding a sequence
// position by position after a prompt of several lengths gives the masked oracle's out and lse
// at every position, with as many key/value heads as query heads and with fewer (grouped-query);
// after each step the cache holds exactly the rows that later queries read, part by part (the
// table's `reads`), so a sparse pattern's cache is as small as the pattern.
#include <gtest/gtest.h>

#include <string>

#include "attention/decode.h"
#include "attention/registry.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

const KernelTableEntry& table_entry(const std::string& kind) {
  for (const auto& e : kernel_table())
    if (e.kind == kind) return e;
  throw std::invalid_argument(kind);
}

// Rows a cache may hold after L of T positions: per part and key/value head g, the keys j < L
// that a query i >= L of some head that g serves reads.
int64_t rows_read_later(const std::vector<torch::Tensor>& parts, int64_t L, int64_t T, int64_t G) {
  int64_t n = 0;
  for (const auto& part : parts) {
    const int64_t H = part.size(0);
    auto later = part.narrow(1, L, T - L).narrow(2, 0, L).any(1);  // [H, L]
    n += later.reshape({G, H / G, L}).any(1).sum().item<int64_t>();
  }
  return n;
}

// Key/value head counts to decode with: H, and the largest proper divisor of H.
std::vector<int64_t> kv_head_counts(int64_t H) {
  std::vector<int64_t> out = {H};
  for (int64_t g = H - 1; g >= 1; --g)
    if (H % g == 0) {
      out.push_back(g);
      break;
    }
  return out;
}

// Prompts of one position (every position a decode step), about a third, and all but one.
std::vector<int64_t> prompt_lengths(int64_t T) {
  std::vector<int64_t> out = {1};
  for (int64_t n : {T / 3, T - 1})
    if (n > out.back()) out.push_back(n);
  return out;
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

class DecodeCacheTest : public SeededTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(DecodeCacheTest, StepsMatchTheOracleAndTheCacheHoldsWhatLaterQueriesRead) {
  const auto& entry = table_entry(GetParam());
  int64_t checked = 0;
  for (const auto& c : entry.cases) {
    if (!c.causal) continue;
    const auto parts = entry.reads(c.options, c.T, c.H);
    for (int64_t G : kv_head_counts(c.H)) {
      auto kernel = attention::make_kernel(c.options);
      kernel->eval();
      auto q = torch::randn({c.B, c.T, c.H, c.D}, torch::kDouble);
      auto k = torch::randn({c.B, c.T, G, c.D}, torch::kDouble), v = torch::randn({c.B, c.T, G, c.D}, torch::kDouble);
      const auto want = kernel_oracle({q, k.repeat_interleave(c.H / G, 2), v.repeat_interleave(c.H / G, 2)}, c.options, true);
      for (int64_t prompt : prompt_lengths(c.T)) {
        SCOPED_TRACE(describe(c) + " kv_heads=" + std::to_string(G) + " prompt=" + std::to_string(prompt));
        attention::DecodeShape shape;
        shape.batch = c.B;
        shape.heads = c.H;
        shape.kv_heads = G;
        shape.head_dim = c.D;
        shape.max_len = c.T;
        shape.options = torch::TensorOptions(torch::kDouble);
        auto cache = kernel->start_decoding(shape);
        std::vector<torch::Tensor> outs, lses;
        for (int64_t t = 0; t < c.T; t += (t == 0 ? prompt : 1)) {
          const int64_t n = t == 0 ? prompt : 1;
          auto r = kernel->extend(*cache, q.narrow(1, t, n), k.narrow(1, t, n), v.narrow(1, t, n));
          outs.push_back(r.out);
          lses.push_back(r.lse);
          ASSERT_EQ(cache->length, t + n);
          ASSERT_EQ(cache->rows_held(), rows_read_later(parts, t + n, c.T, G)) << "after position " << t + n - 1;
        }
        const auto out = torch::cat(outs, 1), lse = torch::cat(lses, 1);
        EXPECT_LT(max_diff(out, want.out), kFloat64Tol);
        const auto empty = torch::isinf(want.lse);
        EXPECT_TRUE(torch::equal(torch::isinf(lse), empty)) << "queries with no key differ";
        EXPECT_LT(max_diff(lse.masked_fill(empty, 0), want.lse.masked_fill(empty, 0)), kFloat64Tol);
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 3);
}

INSTANTIATE_TEST_SUITE_P(Kinds, DecodeCacheTest, ::testing::Values("dense", "ring", "dilated", "block_sparse"),
                         [](const auto& info) { return info.param; });

// Every registered kind is decoded above: a new kind fails here until the table has it.
TEST(DecodeCacheKinds, EveryRegisteredKindIsInTheTable) {
  for (const auto& kind : attention::kernel_kinds()) EXPECT_NO_THROW(table_entry(kind)) << kind;
}

TEST(DecodeCacheLimits, DecodingPastMaxLenIsRefused) {
  attention::AttentionOptions o;
  auto kernel = attention::make_kernel(o);
  kernel->eval();
  attention::DecodeShape shape;
  shape.max_len = 2;
  shape.head_dim = 4;
  auto cache = kernel->start_decoding(shape);
  auto x = torch::randn({1, 3, 1, 4});
  EXPECT_THROW(kernel->extend(*cache, x, x, x), c10::Error);
  kernel->extend(*cache, x.narrow(1, 0, 2), x.narrow(1, 0, 2), x.narrow(1, 0, 2));
  EXPECT_THROW(kernel->extend(*cache, x.narrow(1, 2, 1), x.narrow(1, 2, 1), x.narrow(1, 2, 1)), c10::Error);
}

}  // namespace
}  // namespace longnet::testing
