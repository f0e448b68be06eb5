// dilated (LongNet): random configurations against the masked oracle (its fixed cases are in the
// kernel table, oracle.cpp), and one case written out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "attention/dilated.h"
#include "attention/registry.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

class DilatedTest : public SeededTest {};

// The table's cases (oracle.cpp) run in the oracle suite; here random segment lengths, rates
// and head counts on top.
TEST_F(DilatedTest, MatchesOracleOnRandomConfigurations) {
  const attention::Dilate dilates[] = {attention::Dilate::kQueriesAndKeys, attention::Dilate::kKeys,
                                       attention::Dilate::kEveryOffset, attention::Dilate::kDistance};
  for (int trial = 0; trial < 12; ++trial) {
    KernelCase c{{}, 1 + torch::randint(2, {1}).item<int64_t>(), 5 + torch::randint(60, {1}).item<int64_t>(),
                 1 + torch::randint(6, {1}).item<int64_t>(), 4, trial % 2 == 0};
    auto& o = c.options;
    o.kind = "dilated";
    o.block_size = 16;
    o.dilated.mix = trial % 3 == 0 ? attention::Mix::kHeadGroups : attention::Mix::kLse;
    o.dilated.dilate = dilates[trial / 3];  // each with head_groups once, causal and not
    o.dilated.segment_lengths.clear();
    o.dilated.dilation_rates.clear();
    const int64_t n = 1 + torch::randint(3, {1}).item<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      o.dilated.segment_lengths.push_back(2 + torch::randint(40, {1}).item<int64_t>());
      o.dilated.dilation_rates.push_back(1 + torch::randint(4, {1}).item<int64_t>());
    }
    if (o.dilated.mix == attention::Mix::kHeadGroups) c.H = std::max(c.H, n);
    SCOPED_TRACE(describe(c));
    auto x = random_qkv(c.B, c.T, c.H, c.D, torch::kDouble);
    // Both ways of running a unit's items: one call on the whole view (these sizes, by default)
    // and one call per (batch, head, segment), as a long sequence's views run.
    const int64_t limit = attention::dilated_batch_limit();
    for (const int64_t l : {limit, int64_t{0}}) {
      SCOPED_TRACE(l == 0 ? "one call per item" : "one call per view");
      attention::dilated_batch_limit() = l;
      expect_matches_oracle(attention::make_kernel(o)->forward(x.q, x.k, x.v, c.causal),
                            kernel_oracle(x, o, c.causal), x, kFloat64Tol);
      attention::dilated_batch_limit() = limit;
    }
  }
}

// LongNet, section 2.2, written out for T = 8, H = 2, causal, with q = 0 so that every allowed
// key gets the same weight: out = mean of the allowed values, lse = log(number of keys).
// Pair 1: w = 4, r = 2. Head 0 keeps {0, 2} and {4, 6}; head 1 (offset 1) keeps {1, 3}, {5, 7}.
// Pair 2: w = 8, r = 4. Head 0 keeps {0, 4}; head 1 keeps {1, 5}.
// Mixed by softmax denominators, out = (sum of both pairs' values) / (n1 + n2).
// The written-out cases: T = 8, H = 2, pairs (4, 2) and (8, 4), causal, q = k = 0 and v = the
// position in both heads, under the given dilate.
attention::AttentionOutput uniform_attention_t8(attention::Dilate dilate) {
  const int64_t T = 8;
  auto q = torch::zeros({1, T, 2, 1}, torch::kDouble);
  auto v = torch::arange(T, torch::kDouble).view({1, T, 1, 1}).expand({1, T, 2, 1}).contiguous();
  attention::AttentionOptions o;
  o.kind = "dilated";
  o.dilated.segment_lengths = {4, 8};
  o.dilated.dilation_rates = {2, 4};
  o.dilated.dilate = dilate;
  return attention::make_kernel(o)->forward(q, q, v, /*causal=*/true);
}

TEST_F(DilatedTest, MatchesTheLongNetDefinitionWrittenOutByHand) {
  const int64_t T = 8;
  auto r = uniform_attention_t8(attention::Dilate::kQueriesAndKeys);
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

// dilate: every_offset on the same pairs, T = 8: every head sees, in each pair, the keys of
// its segment at the query's own offset, so both heads give the same rows, and positions that
// no head kept above get pair 2's keys at offsets 2 and 3.
// Pair 1 (w = 4, r = 2): t sees {s, s+2} of its half at t's parity; pair 2 (w = 8, r = 4): {t mod 4, t mod 4 + 4}.
TEST_F(DilatedTest, EveryOffsetMatchesItsDefinitionWrittenOutByHand) {
  const int64_t T = 8;
  auto r = uniform_attention_t8(attention::Dilate::kEveryOffset);
  // 0: {0} | {0} -> 0, log 2        1: {1} | {1} -> 1, log 2       2: {0,2} | {2} -> 4/3, log 3
  // 3: {1,3} | {3} -> 7/3, log 3    4: {4} | {0,4} -> 8/3, log 3   5: {5} | {1,5} -> 11/3, log 3
  // 6: {4,6} | {2,6} -> 18/4, log 4 7: {5,7} | {3,7} -> 22/4, log 4
  const double out[T] = {0, 1, 4.0 / 3, 7.0 / 3, 8.0 / 3, 11.0 / 3, 4.5, 5.5};
  const double lse[T] = {std::log(2), std::log(2), std::log(3), std::log(3),
                         std::log(3), std::log(3), std::log(4), std::log(4)};
  for (int64_t t = 0; t < T; ++t)
    for (int64_t h = 0; h < 2; ++h) {
      EXPECT_NEAR(r.out[0][t][h][0].item<double>(), out[t], 1e-12) << "head " << h << ", t=" << t;
      EXPECT_NEAR(r.lse[0][t][h].item<double>(), lse[t], 1e-12) << "head " << h << ", t=" << t;
    }
}

// dilate: distance on the same pairs, T = 8: head 0 sees, in each pair, the keys of its segment
// at a distance = 0 mod r (every_offset's rows, above), head 1 those at a distance = 1 mod r:
// the keys one position further back, none where the segment starts at the query.
// Head 1: pair 1 (w = 4, r = 2): t sees t - 1, t - 3 in its half; pair 2 (w = 8, r = 4): t - 1, t - 5.
TEST_F(DilatedTest, DistanceMatchesItsDefinitionWrittenOutByHand) {
  const int64_t T = 8;
  auto r = uniform_attention_t8(attention::Dilate::kDistance);
  const double ninf = -std::numeric_limits<double>::infinity();
  const double out0[T] = {0, 1, 4.0 / 3, 7.0 / 3, 8.0 / 3, 11.0 / 3, 4.5, 5.5};
  const double lse0[T] = {std::log(2), std::log(2), std::log(3), std::log(3),
                          std::log(3), std::log(3), std::log(4), std::log(4)};
  // 0: {} | {} -> 0, -inf           1: {0} | {0} -> 0, log 2       2: {1} | {1} -> 1, log 2
  // 3: {0,2} | {2} -> 4/3, log 3    4: {} | {3} -> 3, log 1        5: {4} | {0,4} -> 8/3, log 3
  // 6: {5} | {1,5} -> 11/3, log 3   7: {4,6} | {2,6} -> 18/4, log 4
  const double out1[T] = {0, 0, 1, 4.0 / 3, 3, 8.0 / 3, 11.0 / 3, 4.5};
  const double lse1[T] = {ninf, std::log(2), std::log(2), std::log(3), 0, std::log(3), std::log(3), std::log(4)};
  for (int64_t t = 0; t < T; ++t) {
    EXPECT_NEAR(r.out[0][t][0][0].item<double>(), out0[t], 1e-12) << "head 0, t=" << t;
    EXPECT_NEAR(r.lse[0][t][0].item<double>(), lse0[t], 1e-12) << "head 0, t=" << t;
    EXPECT_NEAR(r.out[0][t][1][0].item<double>(), out1[t], 1e-12) << "head 1, t=" << t;
    const double l1 = r.lse[0][t][1].item<double>();
    if (std::isinf(lse1[t])) EXPECT_TRUE(std::isinf(l1) && l1 < 0) << t; else EXPECT_NEAR(l1, lse1[t], 1e-12) << t;
  }
}

// Where no pair cuts the sequence and the rates are 1 and 2, the pattern is one dense call with
// the bias log m_h (dilated.h); the oracle suite's cases (oracle.cpp) check its results.
TEST_F(DilatedTest, OneCallBiasIsTheLogOfHowManyUnitsAttendEachPair) {
  attention::AttentionOptions o;
  o.kind = "dilated";
  o.dilated.segment_lengths = {2048, 4096};
  o.dilated.dilation_rates = {1, 2};
  o.dilated.dilate = attention::Dilate::kDistance;
  const auto like = torch::zeros({1}, torch::kDouble);
  // distance: head 0 (and 2) reads the rate-2 pair's keys at an even distance, head 1 at an odd one.
  auto bias = attention::one_call_bias(o, 4, 5, like);
  ASSERT_TRUE(bias.defined());
  ASSERT_EQ(bias.sizes(), (std::vector<int64_t>{1, 4, 5, 5}));
  for (int64_t h = 0; h < 4; ++h)
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 5; ++j)
        EXPECT_DOUBLE_EQ(bias[0][h][i][j].item<double>(), (i - j - h) % 2 == 0 ? std::log(2.0) : 0.0)
            << "head " << h << ", query " << i << ", key " << j;
  // keys: head h reads the keys at j = h mod 2 in both its query parities.
  o.dilated.dilate = attention::Dilate::kKeys;
  bias = attention::one_call_bias(o, 2, 6, like);
  ASSERT_TRUE(bias.defined());
  for (int64_t h = 0; h < 2; ++h)
    for (int64_t i = 0; i < 6; ++i)
      for (int64_t j = 0; j < 6; ++j)
        EXPECT_DOUBLE_EQ(bias[0][h][i][j].item<double>(), (j - h) % 2 == 0 ? std::log(2.0) : 0.0);
  // Where it does not apply: a pair that cuts the sequence, a rate above 2, LongNet's rows
  // (m depends on i and j apart), a head with no rate-1 pair (m = 0 somewhere).
  EXPECT_FALSE(attention::one_call_bias(o, 4, 2049, like).defined());
  auto rate3 = o;
  rate3.dilated.dilation_rates = {1, 3};
  EXPECT_FALSE(attention::one_call_bias(rate3, 4, 100, like).defined());
  auto longnet = o;
  longnet.dilated.dilate = attention::Dilate::kQueriesAndKeys;
  EXPECT_FALSE(attention::one_call_bias(longnet, 4, 100, like).defined());
  auto groups = o;
  groups.dilated.mix = attention::Mix::kHeadGroups;
  EXPECT_FALSE(attention::one_call_bias(groups, 4, 100, like).defined());
}

TEST_F(DilatedTest, HeadGroupsSplitTheRemainderToTheFirstGroups) {
  EXPECT_EQ(attention::head_group(8, 3, 0), std::make_pair(int64_t{0}, int64_t{3}));
  EXPECT_EQ(attention::head_group(8, 3, 1), std::make_pair(int64_t{3}, int64_t{3}));
  EXPECT_EQ(attention::head_group(8, 3, 2), std::make_pair(int64_t{6}, int64_t{2}));
}

// bfloat16 inputs: the pairs are merged into an output of the input's dtype, rounded at each
// merge, and the backward takes that output. That costs dilated no more accuracy than dense
// loses to its one rounding: against each kernel's own float64 result, on the shapes of
// configs/passkey.yaml's dilated run (heads of 32, segments 1,024 to 4,096 at rates 1 to 4,
// documents of up to 128 tokens) with scores sharp enough for a copying head.
TEST_F(DilatedTest, BFloat16LosesNoMoreThanDenseDoes) {
  const int64_t B = 4, T = 128, H = 4, D = 32;
  auto round = [](const torch::Tensor& x) { return x.to(torch::kBFloat16).to(torch::kDouble); };
  auto q = round(3 * torch::randn({B, T, H, D}, torch::kDouble)), k = round(3 * torch::randn({B, T, H, D}, torch::kDouble));
  auto v = round(torch::randn({B, T, H, D}, torch::kDouble)), gout = round(torch::randn({B, T, H, D}, torch::kDouble));
  // The relative error of out, dq, dk, dv in bfloat16 against float64.
  auto errors = [&](const attention::AttentionOptions& o) {
    auto kernel = attention::make_kernel(o);
    auto run = [&](torch::ScalarType t) {
      auto qt = q.to(t).requires_grad_(), kt = k.to(t).requires_grad_(), vt = v.to(t).requires_grad_();
      auto out = kernel->forward(qt, kt, vt, /*causal=*/true).out;
      auto g = torch::autograd::grad({out}, {qt, kt, vt}, {gout.to(t)});
      return std::vector<torch::Tensor>{out, g[0], g[1], g[2]};
    };
    auto want = run(torch::kDouble), got = run(torch::kBFloat16);
    std::vector<double> e;
    for (size_t i = 0; i < want.size(); ++i)
      e.push_back(((got[i].to(torch::kDouble) - want[i]).norm() / want[i].norm()).item<double>());
    return e;
  };
  attention::AttentionOptions o;
  o.block_size = 256;
  o.kind = "dense";
  const auto dense = errors(o);
  o.kind = "dilated";
  o.dilated.segment_lengths = {1024, 2048, 4096};
  o.dilated.dilation_rates = {1, 2, 4};
  const auto dilated = errors(o);
  // configs/passkey.yaml's dilated run: its documents go as one biased call (one_call_bias).
  o.dilated.segment_lengths = {2048, 4096};
  o.dilated.dilation_rates = {1, 2};
  o.dilated.dilate = attention::Dilate::kDistance;
  ASSERT_TRUE(attention::one_call_bias(o, H, T, q).defined());
  const auto one_call = errors(o);
  const char* names[] = {"out", "dq", "dk", "dv"};
  for (size_t i = 0; i < dense.size(); ++i) {
    EXPECT_GT(dense[i], 1e-4) << names[i] << ": bfloat16 should round something";
    EXPECT_LT(dilated[i], 1.5 * dense[i]) << names[i] << ": dilated " << dilated[i] << ", dense " << dense[i];
    EXPECT_LT(one_call[i], 1.5 * dense[i]) << names[i] << ": one call " << one_call[i] << ", dense " << dense[i];
  }
}

}  // namespace
}  // namespace longnet::testing
