// dilated (LongNet) against the masked oracle, and one case written out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attention/dilated.h"
#include "attention/merge.h"
#include "attention/registry.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

// [H, T, T]: pair (w, r) with head h at offset offset(h): same segment (of min(w, T), cut from
// position 0), both positions kept (position in segment = offset mod r), and the past if causal.
torch::Tensor dilated_allowed(int64_t T, int64_t H, int64_t w, int64_t r, bool causal,
                              const std::function<int64_t(int64_t)>& offset) {
  w = std::min(w, T);
  auto pos = torch::arange(T, torch::kLong);
  auto seg = torch::div(pos, w, "floor"), inseg = torch::remainder(pos, w);
  std::vector<torch::Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    auto sel = torch::remainder(inseg, r) == offset(h);
    auto a = sel.unsqueeze(1) & sel.unsqueeze(0) & (seg.unsqueeze(1) == seg.unsqueeze(0));
    if (causal) a = a & causal_allowed(T);
    heads.push_back(a);
  }
  return torch::stack(heads);
}

// The DESIGN.md definition, via the oracle: per pair masked attention, mixed by lse; or, for
// head_groups, group g's heads with pair g alone at offset g mod r_g.
// Under dropout every pair's attention gets the same factors (a pair met by two (w, r) pairs is
// dropped or kept in both).
attention::AttentionOutput dilated_oracle(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                          const attention::AttentionOptions& o, bool causal,
                                          const torch::Tensor& factors = {}) {
  const int64_t T = q.size(1), H = q.size(2);
  const int64_t n = static_cast<int64_t>(o.dilated.segment_lengths.size());
  if (o.dilated.mix == attention::Mix::kHeadGroups) {
    std::vector<torch::Tensor> outs, lses;
    for (int64_t g = 0; g < n; ++g) {
      const auto [first, count] = attention::head_group(H, n, g);
      const int64_t r = o.dilated.dilation_rates[g];
      auto mask = dilated_allowed(T, count, o.dilated.segment_lengths[g], r, causal, [&](int64_t) { return g % r; });
      auto res = masked_attention(q.narrow(2, first, count), k.narrow(2, first, count), v.narrow(2, first, count), mask,
                                  factors.defined() ? factors.narrow(1, first, count) : factors);
      outs.push_back(res.out);
      lses.push_back(res.lse);
    }
    return {torch::cat(outs, 2), torch::cat(lses, 2)};
  }
  attention::AttentionOutput mixed;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = o.dilated.dilation_rates[i];
    auto mask = dilated_allowed(T, H, o.dilated.segment_lengths[i], r, causal, [&](int64_t h) { return h % r; });
    auto res = masked_attention(q, k, v, mask, factors);
    mixed = i == 0 ? res : attention::merge(mixed, res);
  }
  return mixed;
}

struct Case {
  int64_t B, T, H, D;
  std::vector<int64_t> w, r;
  std::string mix;
  bool causal;
  int64_t block = 16;
};

void check(const Case& c, torch::ScalarType dtype, double tol, double dropout = 0) {
  auto opts = torch::TensorOptions().dtype(dtype);
  auto q = torch::randn({c.B, c.T, c.H, c.D}, opts).requires_grad_();
  auto k = torch::randn({c.B, c.T, c.H, c.D}, opts).requires_grad_();
  auto v = torch::randn({c.B, c.T, c.H, c.D}, opts).requires_grad_();
  attention::AttentionOptions o;
  o.kind = "dilated";
  o.dilated.segment_lengths = c.w;
  o.dilated.dilation_rates = c.r;
  EXPECT_TRUE(attention::parse(c.mix, o.dilated.mix)) << c.mix;
  o.block_size = c.block;
  o.dropout = dropout;
  auto kernel = attention::make_kernel(o);
  attention::DropoutKey key;
  key.rate = dropout;
  key.seed = 3;
  key.step = 17;
  key.layer = 1;
  key.sample0 = 2;
  kernel->dropout_key() = key;
  auto got = kernel->forward(q, k, v, c.causal);
  auto want = dilated_oracle(q, k, v, o, c.causal,
                             dropout > 0 ? oracle_dropout(key, c.B, c.H, c.T, dtype) : torch::Tensor());
  SCOPED_TRACE(::testing::Message() << "dropout=" << dropout << " B=" << c.B << " T=" << c.T << " H=" << c.H << " mix=" << c.mix
                                    << " causal=" << c.causal << " pairs=" << c.w.size());
  expect_matches_oracle(got, want, q, k, v, tol);
}

// Heads not a multiple of the pairs, lengths not multiples of any segment, segments longer
// than the sequence, every rate > 1 (positions no pair selects), batch > 1.
const std::vector<Case> kCases = {
    {2, 37, 5, 8, {8, 16, 32}, {1, 2, 4}, "lse", true},
    {2, 37, 5, 8, {8, 16, 32}, {1, 2, 4}, "lse", false},
    {1, 50, 4, 4, {12, 64}, {2, 3}, "lse", true},
    {2, 45, 5, 8, {8, 16, 32}, {1, 2, 4}, "head_groups", true},
    {1, 29, 7, 4, {6, 10}, {2, 3}, "head_groups", false},
    {3, 19, 3, 4, {100}, {1}, "lse", true},
    {1, 70, 2, 8, {32, 64}, {1, 2}, "lse", true, 8},
};

class DilatedTest : public SeededTest {};

TEST_F(DilatedTest, MatchesOracleFloat64) {
  for (const auto& c : kCases) check(c, torch::kDouble, kFloat64Tol);
}

// Attention dropout: each segment's rows hash at their sequence positions and heads, so the
// kernel draws the oracle's mask whatever the segment, rate, offset or head group.
TEST_F(DilatedTest, DropoutMatchesOracleGivenTheSameMask) {
  for (const auto& c : kCases) check(c, torch::kDouble, kFloat64Tol, 0.3);
}

TEST_F(DilatedTest, MatchesOracleFloat32) {
  for (const auto& c : kCases) check(c, torch::kFloat, 1e-5);
}

TEST_F(DilatedTest, MatchesOracleWithTwoThreads) {
  at::set_num_threads(2);
  for (const auto& c : kCases) check(c, torch::kDouble, kFloat64Tol);
}

TEST_F(DilatedTest, MatchesOracleOnRandomConfigurations) {
  for (int trial = 0; trial < 6; ++trial) {
    Case c{1 + torch::randint(2, {1}).item<int64_t>(), 5 + torch::randint(60, {1}).item<int64_t>(),
           1 + torch::randint(6, {1}).item<int64_t>(), 4, {}, {}, trial % 3 == 0 ? "head_groups" : "lse", trial % 2 == 0};
    const int64_t n = 1 + torch::randint(3, {1}).item<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      c.w.push_back(2 + torch::randint(40, {1}).item<int64_t>());
      c.r.push_back(1 + torch::randint(4, {1}).item<int64_t>());
    }
    if (c.mix == "head_groups") c.H = std::max(c.H, n);
    check(c, torch::kDouble, kFloat64Tol);
  }
}

// LongNet, section 2.2, written out for T = 8, H = 2, causal, with q = 0 so that every allowed
// key gets the same weight: out = mean of the allowed values, lse = log(number of keys).
// Pair 1: w = 4, r = 2. Head 0 keeps {0, 2} and {4, 6}; head 1 (offset 1) keeps {1, 3}, {5, 7}.
// Pair 2: w = 8, r = 4. Head 0 keeps {0, 4}; head 1 keeps {1, 5}.
// Mixed by softmax denominators, out = (sum of both pairs' values) / (n1 + n2).
TEST_F(DilatedTest, MatchesTheLongNetDefinitionWrittenOutByHand) {
  const int64_t T = 8;
  auto q = torch::zeros({1, T, 2, 1}, torch::kDouble);
  auto v = torch::arange(T, torch::kDouble).view({1, T, 1, 1}).expand({1, T, 2, 1}).contiguous();
  attention::AttentionOptions o;
  o.kind = "dilated";
  o.dilated.segment_lengths = {4, 8};
  o.dilated.dilation_rates = {2, 4};
  auto r = attention::make_kernel(o)->forward(q, q, v, /*causal=*/true);
  const double ninf = -std::numeric_limits<double>::infinity();
  // position t: head 0 keys of pair 1 | pair 2 -> out, lse
  // 0: {0} | {0} -> 0, log 2      2: {0,2} | {} -> 1, log 2     4: {4} | {0,4} -> 8/3, log 3
  // 6: {4,6} | {} -> 5, log 2     odd positions: not kept -> 0, -inf
  const double out0[T] = {0, 0, 1, 0, 8.0 / 3, 0, 5, 0};
  const double lse0[T] = {std::log(2), ninf, std::log(2), ninf, std::log(3), ninf, std::log(2), ninf};
  // head 1: 1: {1} | {1} -> 1, log 2   3: {1,3} | {} -> 2, log 2   5: {5} | {1,5} -> 11/3, log 3
  // 7: {5,7} | {} -> 6, log 2          even positions: not kept -> 0, -inf
  const double out1[T] = {0, 1, 0, 2, 0, 11.0 / 3, 0, 6};
  const double lse1[T] = {ninf, std::log(2), ninf, std::log(2), ninf, std::log(3), ninf, std::log(2)};
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_NEAR(r.out[0][t][0][0].item<double>(), out0[t], 1e-12) << "head 0, t=" << t;
    EXPECT_NEAR(r.out[0][t][1][0].item<double>(), out1[t], 1e-12) << "head 1, t=" << t;
    const double l0 = r.lse[0][t][0].item<double>(), l1 = r.lse[0][t][1].item<double>();
    if (std::isinf(lse0[t])) EXPECT_TRUE(std::isinf(l0) && l0 < 0) << t; else EXPECT_NEAR(l0, lse0[t], 1e-12) << t;
    if (std::isinf(lse1[t])) EXPECT_TRUE(std::isinf(l1) && l1 < 0) << t; else EXPECT_NEAR(l1, lse1[t], 1e-12) << t;
  }
}

TEST_F(DilatedTest, HeadGroupsSplitTheRemainderToTheFirstGroups) {
  EXPECT_EQ(attention::head_group(8, 3, 0), std::make_pair(int64_t{0}, int64_t{3}));
  EXPECT_EQ(attention::head_group(8, 3, 1), std::make_pair(int64_t{3}, int64_t{3}));
  EXPECT_EQ(attention::head_group(8, 3, 2), std::make_pair(int64_t{6}, int64_t{2}));
}

}  // namespace
}  // namespace longnet::testing
