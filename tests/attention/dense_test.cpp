// dense (and the tiled core under it) against the masked oracle, forward and backward.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <tuple>

#include "attention/blockwise.h"
#include "attention/dense.h"
#include "attention/merge.h"
#include "attention/registry.h"
#include "common/errors.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

class DenseTest : public SeededTest {};

// The table's cases (oracle.cpp) run in the oracle suite; here random shapes on top.
TEST_F(DenseTest, MatchesOracleOnRandomShapes) {
  for (int trial = 0; trial < 6; ++trial) {
    KernelCase c{{}, 1 + torch::randint(3, {1}).item<int64_t>(), 1 + torch::randint(90, {1}).item<int64_t>(),
                 1 + torch::randint(4, {1}).item<int64_t>(), 2 * (1 + torch::randint(6, {1}).item<int64_t>()),
                 trial % 2 == 0};
    c.options.block_size = 1 + torch::randint(40, {1}).item<int64_t>();
    c.options.key_block = trial % 3 == 0 ? c.options.block_size : 8192;
    SCOPED_TRACE(describe(c));
    auto x = random_qkv(c.B, c.T, c.H, c.D, torch::kDouble);
    auto got = attention::make_kernel(c.options)->forward(x.q, x.k, x.v, c.causal);
    expect_matches_oracle(got, kernel_oracle(x, c.options, c.causal), x, kFloat64Tol);
  }
}

// The tile core itself, both ways (LibTorch's flash kernels where they fit, the tile loop),
// on tiles whose queries and keys start at different positions (the ring's chunks, a
// block_sparse row): keys all in the past, a diagonal inside the keys, keys that begin after
// the first queries (those see none), against the oracle with the same position mask.
TEST_F(DenseTest, TileCoreMatchesOracleAtEveryOffsetBothWays) {
  struct Tile {
    int64_t Tq, Tk, q_pos0, k_pos0;
    bool causal;
  };
  for (const Tile& t : {Tile{24, 40, 30, 0, true}, Tile{24, 40, 50, 0, true}, Tile{24, 40, 10, 0, true},
                        Tile{24, 40, 0, 9, true}, Tile{24, 40, 0, 30, true}, Tile{17, 33, 5, 5, false}}) {
    for (auto core : {attention::TileCore::kAuto, attention::TileCore::kLoop}) {
      for (bool with_dlse : {false, true}) {
        SCOPED_TRACE(::testing::Message() << "Tq=" << t.Tq << " Tk=" << t.Tk << " q_pos0=" << t.q_pos0
                                          << " k_pos0=" << t.k_pos0 << " loop=" << (core == attention::TileCore::kLoop)
                                          << " dlse=" << with_dlse);
        auto opts = torch::TensorOptions().dtype(torch::kDouble);
        auto q = torch::randn({2, 3, t.Tq, 8}, opts), k = torch::randn({2, 3, t.Tk, 8}, opts);
        auto v = torch::randn({2, 3, t.Tk, 8}, opts);
        attention::TileSpec spec;
        spec.causal = t.causal;
        spec.q_pos0 = t.q_pos0;
        spec.k_pos0 = t.k_pos0;
        spec.q_block = 8;
        spec.k_block = 16;
        spec.core = core;
        torch::Tensor out, lse;
        attention::tiled_forward(q, k, v, spec, out, lse);
        // The oracle in [B, T, H, D], with q already scaled: undo its 1/sqrt(D).
        auto qo = (q * std::sqrt(8.0)).transpose(1, 2).requires_grad_();
        auto ko = k.transpose(1, 2).requires_grad_(), vo = v.transpose(1, 2).requires_grad_();
        auto qpos = torch::arange(t.q_pos0, t.q_pos0 + t.Tq).unsqueeze(1);
        auto kpos = torch::arange(t.k_pos0, t.k_pos0 + t.Tk).unsqueeze(0);
        auto allowed = t.causal ? (kpos <= qpos) : torch::ones({t.Tq, t.Tk}, torch::kBool);
        auto want = masked_attention(qo, ko, vo, allowed);
        EXPECT_TRUE(AllClose(out, want.out.transpose(1, 2), kFloat64Tol)) << "out";
        EXPECT_TRUE(AllClose(lse, want.lse.transpose(1, 2), kFloat64Tol)) << "lse";
        auto dout = torch::randn_like(out);
        auto dlse = with_dlse ? torch::randn_like(lse).masked_fill(torch::isinf(lse), 0.0) : torch::Tensor();
        auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
        attention::tiled_backward(q, k, v, out, lse, dout, dlse, spec, dq, dk, dv);
        auto g = with_dlse ? torch::autograd::grad({want.out, want.lse}, {qo, ko, vo},
                                                   {dout.transpose(1, 2), dlse.transpose(1, 2)})
                           : torch::autograd::grad({want.out}, {qo, ko, vo}, {dout.transpose(1, 2)});
        EXPECT_TRUE(AllClose(dq, g[0].transpose(1, 2) * std::sqrt(8.0), kFloat64Tol)) << "dq";
        EXPECT_TRUE(AllClose(dk, g[1].transpose(1, 2), kFloat64Tol)) << "dk";
        EXPECT_TRUE(AllClose(dv, g[2].transpose(1, 2), kFloat64Tol)) << "dv";
      }
    }
  }
  // No keys at all: every query gets out 0 and lse -inf, both ways.
  for (auto core : {attention::TileCore::kAuto, attention::TileCore::kLoop}) {
    attention::TileSpec spec;
    spec.core = core;
    auto q = torch::randn({1, 2, 5, 8}), none = torch::randn({1, 2, 0, 8});
    torch::Tensor out, lse;
    attention::tiled_forward(q, none, none, spec, out, lse);
    EXPECT_TRUE(AllClose(out, torch::zeros_like(q), 0.0));
    EXPECT_TRUE(torch::isneginf(lse).all().item<bool>());
  }
}

// attention.softmax_scale, in every kernel: the kernel with scale s equals the same kernel with
// the default 1/sqrt(D) on q * s * sqrt(D) (each default is checked against the oracle above
// and in its own suite), forward and the gradients.
TEST_F(DenseTest, SoftmaxScaleOverrideReachesEveryKernel) {
  for (const std::string kind : {"dense", "ring", "dilated", "block_sparse"}) {
    SCOPED_TRACE(kind);
    auto opts = torch::TensorOptions().dtype(torch::kDouble);
    auto q = torch::randn({2, 40, 4, 8}, opts).requires_grad_();
    auto k = torch::randn({2, 40, 4, 8}, opts), v = torch::randn({2, 40, 4, 8}, opts);
    attention::AttentionOptions o;
    o.kind = kind;
    o.block_size = 8;
    o.dilated.segment_lengths = {8, 16};
    o.dilated.dilation_rates = {1, 2};
    auto want_kernel = attention::make_kernel(o);
    o.softmax_scale = 0.7;
    auto got_kernel = attention::make_kernel(o);
    auto got = got_kernel->forward(q, k, v, true);
    auto want = want_kernel->forward(q * (0.7 * std::sqrt(8.0)), k, v, true);
    EXPECT_TRUE(AllClose(got.out, want.out, kFloat64Tol)) << "out";
    EXPECT_TRUE(AllClose(got.lse, want.lse, kFloat64Tol)) << "lse";
    auto gout = torch::randn_like(got.out);
    auto g1 = torch::autograd::grad({got.out}, {q}, {gout});
    auto g2 = torch::autograd::grad({want.out}, {q}, {gout});
    EXPECT_TRUE(AllClose(g1[0], g2[0], kFloat64Tol)) << "dq";
  }
}

TEST_F(DenseTest, UnknownKindListsTheValidOnes) {
  attention::AttentionOptions o;
  o.kind = "flashy";
  try {
    attention::make_kernel(o);
    FAIL() << "expected an error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("flashy"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("dense"), std::string::npos);
  }
}

// A kernel is one registry entry: registering one makes it buildable, its rules checked with the
// shared ones, and its lack of a cross-rank form known, without touching anything else.
TEST_F(DenseTest, ANewKindIsOneRegistryEntry) {
  attention::KernelEntry e;
  e.make = [](const attention::AttentionOptions& o) { return std::make_shared<attention::DenseAttention>(o); };
  e.check = [](const attention::AttentionOptions& o, const attention::KernelContext& c) {
    std::vector<OptionProblem> p;
    if (o.block_size > c.seq_len) p.push_back({"attention.block_size", std::to_string(o.block_size), "at most 8"});
    return p;
  };
  attention::register_kernel("test_only", e);
  attention::AttentionOptions o;
  o.kind = "test_only";
  o.block_size = 16;
  o.dropout = 0.5;
  EXPECT_EQ(attention::make_kernel(o)->dropout_key().rate, 0.5);
  auto problems = attention::check_options(o, {8, 4});
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0].key, "attention.block_size");
  o.key_block = 0;
  EXPECT_EQ(attention::check_options(o, {8, 4}).size(), 2u) << "the shared rules apply to every kind";
  EXPECT_FALSE(attention::kernel_entry("test_only").across);
  // Every built-in kind has a cross-rank form and a positive density, at most 1 where no pair
  // is attended twice (dilated's (w, r) pairs overlap when the segments exceed T).
  for (const std::string kind : {"dense", "dilated", "block_sparse", "ring"}) {
    EXPECT_TRUE(attention::kernel_entry(kind).across) << kind;
    attention::AttentionOptions b;
    b.kind = kind;
    b.block_size = 64;
    const auto& entry = attention::kernel_entry(kind);
    if (entry.bench) b = entry.bench(b, 1024, 0.25, true);
    const double d = attention::density(*attention::make_kernel(b), 1024, true);
    EXPECT_GT(d, 0.0) << kind;
    if (kind != "dilated") {
      EXPECT_LE(d, 1.0 + 1e-12) << kind;
    }
  }
}

// bfloat16 inputs (what a GPU run feeds the kernels): out in bfloat16, the lse in float32 (the
// merges need it), within bfloat16's rounding of the float64 result on the same values, for
// every kernel and both cores (flash where it fits, the tile loop computing in float32).
TEST_F(DenseTest, BFloat16InputsGiveFloat32LseForEveryKernel) {
  const int64_t B = 2, T = 40, H = 3, D = 16;
  auto q64 = torch::randn({B, T, H, D}, torch::kDouble).to(torch::kBFloat16).to(torch::kDouble);
  auto k64 = torch::randn({B, T, H, D}, torch::kDouble).to(torch::kBFloat16).to(torch::kDouble);
  auto v64 = torch::randn({B, T, H, D}, torch::kDouble).to(torch::kBFloat16).to(torch::kDouble);
  auto gout = torch::randn({B, T, H, D}, torch::kDouble).to(torch::kBFloat16).to(torch::kDouble);
  for (const std::string kind : {"dense", "ring", "dilated", "block_sparse"})
    for (int64_t block : {int64_t{8}, int64_t{64}})
      for (bool causal : {true, false}) {
        attention::AttentionOptions o;
        o.kind = kind;
        o.block_size = block;
        o.key_block = block;
        o.dilated.segment_lengths = {8, 32};
        o.dilated.dilation_rates = {1, 2};
        auto kernel = attention::make_kernel(o);
        auto run = [&](torch::ScalarType t) {
          auto q = q64.to(t).requires_grad_(), k = k64.to(t).requires_grad_(), v = v64.to(t).requires_grad_();
          auto res = kernel->forward(q, k, v, causal);
          auto g = torch::autograd::grad({res.out}, {q, k, v}, {gout.to(t)});
          return std::make_tuple(res, g);
        };
        auto [want, want_g] = run(torch::kDouble);
        auto [got, got_g] = run(torch::kBFloat16);
        SCOPED_TRACE(::testing::Message() << kind << " block=" << block << " causal=" << causal);
        EXPECT_EQ(got.out.scalar_type(), torch::kBFloat16);
        EXPECT_EQ(got.lse.scalar_type(), torch::kFloat);
        EXPECT_TRUE(AllClose(got.out.to(torch::kDouble), want.out, 3e-2)) << "out";
        EXPECT_TRUE(AllClose(got.lse.to(torch::kDouble), want.lse, 3e-2)) << "lse";
        for (int i = 0; i < 3; ++i) {
          EXPECT_EQ(got_g[i].scalar_type(), torch::kBFloat16);
          EXPECT_TRUE(AllClose(got_g[i].to(torch::kDouble), want_g[i], 6e-2)) << "gradient " << i;
        }
      }
}

// Attention dropout (attention/dropout.h): the mask is a function of its key and of the pair.
attention::DropoutKey a_dropout_key(double rate = 0.3) {
  attention::DropoutKey key;
  key.rate = rate;
  key.seed = 7;
  key.step = 123;
  key.layer = 2;
  key.sample0 = 5;
  return key;
}

class DropoutTest : public SeededTest {};

TEST_F(DropoutTest, TheMaskIsAFunctionOfItsKeyAndDropsAboutTheRate) {
  const auto key = a_dropout_key();
  auto pos = torch::arange(300, torch::kLong);
  auto z = attention::dropout_factors(key, key.stream(0, 1), pos, pos, torch::kFloat, torch::kCPU);
  const double dropped = (z == 0).to(torch::kDouble).mean().item<double>();
  EXPECT_NEAR(dropped, 0.3, 0.01);  // 90,000 pairs: the standard error is 0.0015
  auto kept = z.masked_select(z != 0);
  EXPECT_TRUE(AllClose(kept, torch::full_like(kept, 1 / 0.7), 1e-6)) << "kept pairs are scaled by 1/(1-rate)";
  // The same key and pair give the same factor, whichever tile asks: a sub-tile at an offset.
  auto part = attention::dropout_factors(key, key.stream(0, 1), pos.narrow(0, 40, 17), pos.narrow(0, 100, 9),
                                         torch::kFloat, torch::kCPU);
  EXPECT_TRUE(AllClose(part, z.narrow(0, 40, 17).narrow(1, 100, 9), 0.0));
  // Every part of the key changes the mask.
  auto differs = [&](const attention::DropoutKey& other, int64_t b, int64_t h) {
    auto w = attention::dropout_factors(other, other.stream(b, h), pos, pos, torch::kFloat, torch::kCPU);
    return (w != z).to(torch::kDouble).mean().item<double>();
  };
  for (auto change : {&attention::DropoutKey::seed, &attention::DropoutKey::step, &attention::DropoutKey::layer}) {
    auto other = key;
    other.*change += 1;
    EXPECT_GT(differs(other, 0, 1), 0.3);  // two independent masks disagree on 2 * 0.3 * 0.7 of the pairs
  }
  EXPECT_GT(differs(key, 1, 1), 0.3) << "batch row";
  EXPECT_GT(differs(key, 0, 2), 0.3) << "head";
  auto moved = key;
  moved.sample0 += 1;
  EXPECT_EQ(differs(moved, 0, 1), differs(key, 1, 1)) << "sample0 + b is the sample";
  EXPECT_EQ(moved.stream(0, 1), key.stream(1, 1));
}

// The tile core under dropout on tiles at offsets and with explicit positions (as dilated and
// block_sparse give them), with and without an lse gradient.
TEST_F(DropoutTest, TileCoreMatchesOracleAtOffsetsAndExplicitPositions) {
  const auto key = a_dropout_key(0.5);
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  const int64_t Tq = 20, Tk = 30, q_pos0 = 25, k_pos0 = 0;
  auto q = torch::randn({2, 3, Tq, 8}, opts), k = torch::randn({2, 3, Tk, 8}, opts), v = torch::randn({2, 3, Tk, 8}, opts);
  for (bool explicit_positions : {false, true}) {
    attention::TileSpec spec;
    spec.causal = true;
    spec.q_pos0 = q_pos0;
    spec.k_pos0 = k_pos0;
    spec.q_block = 8;
    spec.k_block = 16;
    spec.dropout = &key;
    spec.head0 = 1;
    spec.head_step = 2;
    // Positions for the hash: by default q_pos0 + i, k_pos0 + j; explicit ones are any others.
    auto hq = torch::arange(q_pos0, q_pos0 + Tq), hk = torch::arange(k_pos0, k_pos0 + Tk);
    if (explicit_positions) {
      hq = hq * 3 + 1;
      hk = torch::randperm(100).narrow(0, 0, Tk);
      spec.drop_q_pos = hq;
      spec.drop_k_pos = hk;
    }
    torch::Tensor out, lse;
    attention::tiled_forward(q, k, v, spec, out, lse);
    std::vector<torch::Tensor> z;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t h = 0; h < 3; ++h)
        z.push_back(attention::dropout_factors(key, key.stream(b, 1 + 2 * h), hq, hk, torch::kDouble, torch::kCPU));
    auto factors = torch::stack(z).view({2, 3, Tq, Tk});
    auto qo = (q * std::sqrt(8.0)).transpose(1, 2).requires_grad_();
    auto ko = k.transpose(1, 2).requires_grad_(), vo = v.transpose(1, 2).requires_grad_();
    auto allowed = torch::arange(k_pos0, k_pos0 + Tk).unsqueeze(0) <= torch::arange(q_pos0, q_pos0 + Tq).unsqueeze(1);
    auto want = masked_attention(qo, ko, vo, allowed, factors);
    SCOPED_TRACE(::testing::Message() << "explicit positions: " << explicit_positions);
    EXPECT_TRUE(AllClose(out, want.out.transpose(1, 2), kFloat64Tol)) << "out";
    EXPECT_TRUE(AllClose(lse, want.lse.transpose(1, 2), kFloat64Tol)) << "lse";
    auto dout = torch::randn_like(out), dlse = torch::randn_like(lse);
    auto dq = torch::zeros_like(q), dk = torch::zeros_like(k), dv = torch::zeros_like(v);
    attention::tiled_backward(q, k, v, out, lse, dout, dlse, spec, dq, dk, dv);
    auto g = torch::autograd::grad({want.out, want.lse}, {qo, ko, vo}, {dout.transpose(1, 2), dlse.transpose(1, 2)});
    EXPECT_TRUE(AllClose(dq, g[0].transpose(1, 2) * std::sqrt(8.0), kFloat64Tol)) << "dq";
    EXPECT_TRUE(AllClose(dk, g[1].transpose(1, 2), kFloat64Tol)) << "dk";
    EXPECT_TRUE(AllClose(dv, g[2].transpose(1, 2), kFloat64Tol)) << "dv";
  }
}

// The device path (tensor operations, what a CUDA run uses) draws the CPU loop's mask bit for bit:
// the hash's unsigned words as int64 tensors, on positions far apart and at large offsets.
TEST_F(DropoutTest, TheDevicePathDrawsTheCpuMaskBitForBit) {
  const auto key = a_dropout_key(0.37);
  auto q = torch::cat({torch::arange(0, 300, torch::kLong), torch::randint(1LL << 40, {50}, torch::kLong)});
  auto k = torch::cat({torch::arange(0, 200, torch::kLong), torch::randint(1LL << 40, {60}, torch::kLong)});
  for (auto dtype : {torch::kFloat, torch::kDouble, torch::kBFloat16}) {
    for (int64_t head : {0, 3}) {
      const auto stream = key.stream(1, head);
      auto cpu = attention::dropout_factors(key, stream, q, k, dtype, torch::kCPU);
      auto ops = attention::dropout_factors_by_tensor_ops(key, stream, q, k, dtype, torch::kCPU);
      EXPECT_EQ(ops.scalar_type(), dtype);
      EXPECT_TRUE(torch::equal(cpu, ops)) << c10::toString(dtype) << " head " << head;
    }
  }
}

class MergeTest : public SeededTest {};

// Attention over all keys equals the lse-merge of attention over two disjoint key sets,
// including a side where some queries see no key at all.
TEST_F(MergeTest, MergeOfDisjointKeySetsEqualsWhole) {
  const int64_t B = 2, T = 19, H = 3, D = 8;
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto q = torch::randn({B, T, H, D}, opts), k = torch::randn({B, T, H, D}, opts), v = torch::randn({B, T, H, D}, opts);
  auto all = causal_allowed(T);
  auto first = all.clone();
  first.narrow(1, 7, T - 7).fill_(false);  // keys 0..6
  auto second = all.logical_and(first.logical_not());  // keys 7.., empty for queries < 7
  auto whole = masked_attention(q, k, v, all);
  auto merged = attention::merge(masked_attention(q, k, v, first), masked_attention(q, k, v, second));
  EXPECT_TRUE(AllClose(merged.out, whole.out, 1e-12));
  EXPECT_TRUE(AllClose(merged.lse, whole.lse, 1e-12));
}

TEST_F(MergeTest, BothSidesEmptyGivesZeroAndMinusInfinity) {
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  const double inf = std::numeric_limits<double>::infinity();
  attention::AttentionOutput a{torch::zeros({1, 2, 1, 4}, opts), torch::full({1, 2, 1}, -inf, opts)};
  auto m = attention::merge(a, a);
  EXPECT_TRUE(AllClose(m.out, torch::zeros_like(m.out), 0.0));
  EXPECT_TRUE(torch::isinf(m.lse).all().item<bool>());
}

}  // namespace
}  // namespace longnet::testing
