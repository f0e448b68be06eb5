// The model's layers against hand computations: the attention layer (fused QKV, GQA, biases,
// rotary / xPos, Sub-LN) with the oracle attention, the MLPs, each norm placement of a block,
// and the initialisation formulas of model/init.h.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "attention/length_scale.h"
#include "model/block.h"
#include "model/init.h"
#include "model/lm.h"
#include "tests/attention/oracle.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

using model::MlpKind;
using model::NormPlacement;
using model::NormType;
using model::PositionKind;

// LayerNorm / RMSNorm over the last dim, written out.
torch::Tensor layer_norm_by_hand(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto mu = x.mean(-1, true);
  auto var = (x - mu).square().mean(-1, true);
  auto y = (x - mu) / torch::sqrt(var + 1e-5) * w;
  return b.defined() ? y + b : y;
}
torch::Tensor rms_norm_by_hand(const torch::Tensor& x, const torch::Tensor& w) {
  return x / torch::sqrt(x.square().mean(-1, true) + 1e-5) * w;
}
torch::Tensor norm_by_hand(model::NormImpl& n, NormType type, const torch::Tensor& x) {
  return type == NormType::kRmsNorm ? rms_norm_by_hand(x, n.weight) : layer_norm_by_hand(x, n.weight, n.bias);
}

// Rotary (rotate-half pairs j, j + D/2) at position t, times xPos's zeta_j^(+-(t - T/2)/base).
torch::Tensor rotate_by_hand(const torch::Tensor& x, bool xpos, bool keys, double theta = 10000.0, double base = 512.0) {
  const int64_t T = x.size(1), D = x.size(-1);  // x: [B, T, H, D]
  auto y = torch::zeros_like(x);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < D / 2; ++j) {
      const double angle = t * std::pow(theta, -2.0 * j / D);
      double scale = 1.0;
      if (xpos) {
        const double zeta = (2.0 * j + 0.4 * D) / (1.4 * D);
        scale = std::pow(zeta, (t - T / 2) / base * (keys ? -1.0 : 1.0));
      }
      auto a = x.select(1, t).select(-1, j), b = x.select(1, t).select(-1, j + D / 2);
      y.select(1, t).select(-1, j).copy_((a * std::cos(angle) - b * std::sin(angle)) * scale);
      y.select(1, t).select(-1, j + D / 2).copy_((b * std::cos(angle) + a * std::sin(angle)) * scale);
    }
  }
  return y;
}

struct LayerCase {
  int64_t H, G;
  bool bias, subln;
  PositionKind pos;
  NormType norm_type = NormType::kLayerNorm;
  int64_t length_scale = 0;  // attention.length_scale
};

// The whole layer by hand: x W^T + b split into q, k, v; rotated; k, v heads repeated for
// their groups; oracle attention; [Sub-LN]; output projection.
torch::Tensor attention_by_hand(model::MultiHeadAttentionImpl& layer, const LayerCase& c, const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2), D = C / c.H;
  auto y = torch::matmul(x, layer.qkv->weight.t());
  if (c.bias) y = y + layer.qkv->bias;
  auto q = y.narrow(-1, 0, c.H * D).reshape({B, T, c.H, D});
  auto k = y.narrow(-1, c.H * D, c.G * D).reshape({B, T, c.G, D});
  auto v = y.narrow(-1, (c.H + c.G) * D, c.G * D).reshape({B, T, c.G, D});
  if (c.pos != PositionKind::kNone) {
    q = rotate_by_hand(q, c.pos == PositionKind::kXpos, false);
    k = rotate_by_hand(k, c.pos == PositionKind::kXpos, true);
  }
  if (c.length_scale > 0)  // row t sees t + 1 keys: its scores times max(1, ln(t + 1) / ln L)
    for (int64_t t = 0; t < T; ++t)
      q.select(1, t).mul_(std::max(1.0, std::log(t + 1.0) / std::log(static_cast<double>(c.length_scale))));
  std::vector<torch::Tensor> ks, vs;
  for (int64_t h = 0; h < c.H; ++h) {
    ks.push_back(k.select(2, h / (c.H / c.G)));
    vs.push_back(v.select(2, h / (c.H / c.G)));
  }
  auto a = masked_attention(q, torch::stack(ks, 2), torch::stack(vs, 2), causal_allowed(T)).out.reshape({B, T, C});
  if (c.subln) a = norm_by_hand(*layer.inner_norm, c.norm_type, a);
  auto out = torch::matmul(a, layer.out->weight.t());
  return c.bias ? out + layer.out->bias : out;
}

class AttentionLayerTest : public SeededTest {};

TEST_F(AttentionLayerTest, DenseLayerMatchesTheOracleWithProjectionsByHand) {
  const std::vector<LayerCase> cases = {
      {4, 4, false, false, PositionKind::kRope},  {4, 2, true, false, PositionKind::kRope},
      {4, 1, false, true, PositionKind::kXpos},   {2, 2, true, true, PositionKind::kNone, NormType::kRmsNorm},
      {4, 2, false, false, PositionKind::kXpos},  {4, 2, false, true, PositionKind::kRope, NormType::kLayerNorm, 3},
  };
  for (const auto& c : cases) {
    attention::AttentionOptions dense;
    dense.block_size = 4;  // several tiles, so the tiled core is exercised
    dense.length_scale = c.length_scale;
    model::MultiHeadAttention layer(model::MultiHeadAttentionOptions(16, c.H)
                                        .n_kv_heads(c.G)
                                        .bias(c.bias)
                                        .subln(c.subln)
                                        .norm_type(c.norm_type)
                                        .pos(c.pos)
                                        .max_seq_len(32)
                                        .attention(dense));
    layer->to(torch::kDouble);
    {
      torch::NoGradGuard g;  // non-trivial biases and norm weights
      for (auto& p : layer->parameters()) p.add_(torch::randn_like(p) * 0.1);
    }
    auto x = torch::randn({2, 11, 16}, torch::kDouble).requires_grad_();
    SCOPED_TRACE(::testing::Message() << "H=" << c.H << " G=" << c.G << " bias=" << c.bias << " subln=" << c.subln
                                      << " pos=" << model::name_of(c.pos)
                                      << " length_scale=" << c.length_scale);
    auto got = layer(x), want = attention_by_hand(*layer, c, x);
    EXPECT_TRUE(AllClose(got, want, kFloat64Tol));
    auto g = torch::randn_like(got);
    auto params = layer->parameters();
    params.push_back(x);
    auto g1 = torch::autograd::grad({got}, params, {g}), g2 = torch::autograd::grad({want}, params, {g});
    for (size_t i = 0; i < g1.size(); ++i) EXPECT_TRUE(AllClose(g1[i], g2[i], kFloat64Tol)) << "gradient " << i;
    EXPECT_EQ(layer->qkv->weight.size(0), (c.H + 2 * c.G) * (16 / c.H));  // the KV projection shrinks with G
  }
}

// attention.length_scale's n: the keys a dense mask gives each row, counted from its document's
// first token; and the factor max(1, ln n / ln L).
TEST_F(AttentionLayerTest, LengthScaleCountsTheKeysEachRowSees) {
  const attention::DocumentStarts starts = {{0, 3}, {0}};
  const auto at = [](std::vector<int64_t> v) { return torch::tensor(v, torch::kLong); };
  const auto positions = torch::arange(5, torch::kLong);
  EXPECT_TRUE(torch::equal(attention::keys_seen(positions, 5, true, &starts),
                           torch::stack({at({1, 2, 3, 1, 2}), at({1, 2, 3, 4, 5})})));
  EXPECT_TRUE(torch::equal(attention::keys_seen(positions, 5, false, &starts),
                           torch::stack({at({3, 3, 3, 2, 2}), at({5, 5, 5, 5, 5})})));
  // A rank's rows of one sequence, or decoding's next rows.
  EXPECT_TRUE(torch::equal(attention::keys_seen(at({4, 5, 9}), 10, true, nullptr), at({5, 6, 10}).unsqueeze(0)));
  EXPECT_TRUE(torch::equal(attention::keys_seen(at({4, 5, 9}), 10, false, nullptr), at({10, 10, 10}).unsqueeze(0)));
  const auto f = attention::length_scale_factors(at({1, 2, 4, 16, 64}), 4);
  EXPECT_TRUE(torch::allclose(f, torch::tensor({1.0, 1.0, 1.0, 2.0, 3.0}, torch::kDouble)));
}

TEST_F(AttentionLayerTest, XposScoresDependOnDistanceOnlyAndDecayWithIt) {
  // One vector at every position: q_m . k_n must be a function of m - n, and xPos's equals
  // rope's times zeta_j^((m - n) / base) when only pair j is non-zero.
  const int64_t T = 9, D = 8, j = 1;
  auto x = torch::zeros({1, 1, T, D}, torch::kDouble);
  x.select(-1, j).fill_(1.0);
  model::Rotary rope(model::RotaryOptions(D, T)), xpos(model::RotaryOptions(D, T).xpos(true).xpos_scale_base(4.0));
  auto s_rope = torch::matmul(rope(x), rope(x, true).transpose(-1, -2))[0][0];
  auto s_xpos = torch::matmul(xpos(x), xpos(x, true).transpose(-1, -2))[0][0];
  const double zeta = (2.0 * j + 0.4 * D) / (1.4 * D);
  for (int64_t m = 0; m < T; ++m)
    for (int64_t n = 0; n < T; ++n) {
      if (m + 1 < T && n + 1 < T) {
        EXPECT_NEAR(s_xpos[m][n].item<double>(), s_xpos[m + 1][n + 1].item<double>(), 1e-12);
      }
      EXPECT_NEAR(s_xpos[m][n].item<double>(), s_rope[m][n].item<double>() * std::pow(zeta, (m - n) / 4.0), 1e-12);
    }
}

class MlpTest : public SeededTest {};

TEST_F(MlpTest, GeluAndSwigluMatchHandComputation) {
  for (auto kind : {MlpKind::kGelu, MlpKind::kSwiGlu})
    for (bool subln : {false, true}) {
      model::Mlp mlp(model::MlpOptions(8, 12).kind(kind).bias(true).subln(subln));
      mlp->to(torch::kDouble);
      auto x = torch::randn({2, 5, 8}, torch::kDouble);
      auto h = torch::matmul(x, mlp->fc1->weight.t()) + mlp->fc1->bias;
      if (kind == MlpKind::kSwiGlu) {
        auto a = h.narrow(-1, 0, 12), b = h.narrow(-1, 12, 12);
        h = a / (1 + torch::exp(-a)) * b;  // SiLU(a) * b
      } else {
        h = 0.5 * h * (1 + torch::erf(h / std::sqrt(2.0)));
      }
      if (subln) h = layer_norm_by_hand(h, mlp->inner_norm->weight, mlp->inner_norm->bias);
      auto want = torch::matmul(h, mlp->fc2->weight.t()) + mlp->fc2->bias;
      EXPECT_TRUE(AllClose(mlp(x), want, 1e-12)) << model::name_of(kind) << " subln=" << subln;
    }
}

model::ModelOptions block_options(NormPlacement norm, NormType type) {
  model::ModelOptions o;
  o.vocab_size = 20;
  o.n_layers = 3;
  o.d_model = 4;
  o.n_heads = 2;
  o.d_ff = 6;
  o.max_seq_len = 8;
  o.norm = norm;
  o.norm_type = type;
  o.pos = PositionKind::kNone;
  return o;
}

class BlockTest : public SeededTest {};

TEST_F(BlockTest, ForwardMatchesHandComputationForEveryNormPlacement) {
  for (auto norm : {NormPlacement::kPre, NormPlacement::kPost, NormPlacement::kSubLn, NormPlacement::kDeepNorm})
    for (auto type : {NormType::kLayerNorm, NormType::kRmsNorm}) {
      model::Block block(block_options(norm, type));
      block->to(torch::kDouble);
      {
        torch::NoGradGuard g;
        for (auto& p : block->parameters()) p.add_(torch::randn_like(p) * 0.1);
      }
      auto x = torch::randn({1, 3, 4}, torch::kDouble);
      auto attn = [&](const torch::Tensor& t) { return block->attn(t); };  // checked above by hand
      auto mlp = [&](const torch::Tensor& t) { return block->mlp(t); };
      auto n1 = [&](const torch::Tensor& t) { return norm_by_hand(*block->norm1, type, t); };
      auto n2 = [&](const torch::Tensor& t) { return norm_by_hand(*block->norm2, type, t); };
      torch::Tensor want;
      if (norm == NormPlacement::kPre || norm == NormPlacement::kSubLn) {
        auto h = x + attn(n1(x));
        want = h + mlp(n2(h));
      } else {
        const double alpha = norm == NormPlacement::kDeepNorm ? std::pow(2.0 * 3, 0.25) : 1.0;  // (2N)^(1/4)
        auto h = n1(alpha * x + attn(x));
        want = n2(alpha * h + mlp(h));
      }
      EXPECT_TRUE(AllClose(block(x), want, 1e-12)) << model::name_of(norm) << " " << model::name_of(type);
      EXPECT_EQ(static_cast<bool>(block->attn->inner_norm), norm == NormPlacement::kSubLn);
      EXPECT_EQ(static_cast<bool>(block->mlp->inner_norm), norm == NormPlacement::kSubLn);
    }
}

class InitTest : public SeededTest {};

// Each scaled weight's std against its formula (model/init.h), on layers large enough that
// the sample std is within 1% of the true one.
TEST_F(InitTest, WeightStdsMatchTheFormulasOfEachNormPlacement) {
  const int64_t C = 512, H = 8, G = 2, F = 2048, N = 6;
  const double D = C / H;
  for (auto norm : {NormPlacement::kPre, NormPlacement::kPost, NormPlacement::kSubLn, NormPlacement::kDeepNorm}) {
    model::ModelOptions o = block_options(norm, NormType::kLayerNorm);
    o.d_model = C;
    o.n_heads = H;
    o.n_kv_heads = G;
    o.d_ff = F;
    o.n_layers = N;
    model::LanguageModel lm(o);
    auto& b = *lm->blocks[1]->as<model::Block>();
    std::map<std::string, double> want;
    if (norm == NormPlacement::kPre) {
      const double proj = 0.02 / std::sqrt(2.0 * N);
      want = {{"q", 0.02}, {"k", 0.02}, {"v", 0.02}, {"out", proj}, {"fc1", 0.02}, {"fc2", proj}};
    } else {
      // Xavier-uniform: gain * sqrt(2 / (fan_in + fan_out)); Linear default: 1 / sqrt(3 fan_in).
      const double depth = norm == NormPlacement::kSubLn ? std::sqrt(std::log(2.0 * N))
                           : norm == NormPlacement::kDeepNorm ? std::pow(8.0 * N, -0.25) : 1.0;
      const double g = 1.0 / std::sqrt(2.0);
      want = {{"q", g * std::sqrt(2.0 / (C + C))},
              {"k", g * std::sqrt(2.0 / (C + G * D))},
              {"v", depth * g * std::sqrt(2.0 / (C + G * D))},
              {"out", depth * std::sqrt(2.0 / (C + C))},
              {"fc1", depth / std::sqrt(3.0 * C)},
              {"fc2", depth / std::sqrt(3.0 * F)}};
    }
    const std::map<std::string, torch::Tensor> got = {
        {"q", b.attn->q_weight()}, {"k", b.attn->k_weight()},     {"v", b.attn->v_weight()},
        {"out", b.attn->out->weight}, {"fc1", b.mlp->fc1->weight}, {"fc2", b.mlp->fc2->weight}};
    for (const auto& [name, w] : got) {
      const double s = w.std().item<double>();
      EXPECT_NEAR(s / want[name], 1.0, 0.05) << model::name_of(norm) << " " << name << ": std " << s << ", formula "
                                             << want[name];
    }
    EXPECT_NEAR(lm->embed->weight.std().item<double>(), 0.02, 0.001);
    EXPECT_EQ(static_cast<bool>(lm->norm), norm == NormPlacement::kPre || norm == NormPlacement::kSubLn);
  }
}

// Every option trains: a tiny model lowers its loss on a fixed batch.
TEST_F(InitTest, EveryModelOptionLearns) {
  struct Variant {
    NormPlacement norm;
    NormType type;
    MlpKind mlp;
    PositionKind pos;
    int64_t kv;
  };
  for (const auto& v : {Variant{NormPlacement::kPost, NormType::kLayerNorm, MlpKind::kGelu, PositionKind::kRope, 0},
                        Variant{NormPlacement::kSubLn, NormType::kRmsNorm, MlpKind::kSwiGlu, PositionKind::kXpos, 2},
                        Variant{NormPlacement::kDeepNorm, NormType::kLayerNorm, MlpKind::kSwiGlu, PositionKind::kNone, 1}}) {
    model::ModelOptions o = block_options(v.norm, v.type);
    o.vocab_size = 50;
    o.d_model = 32;
    o.n_heads = 4;
    o.n_kv_heads = v.kv;
    o.d_ff = 0;
    o.mlp = v.mlp;
    o.pos = v.pos;
    o.max_seq_len = 32;
    model::LanguageModel m(o);
    auto x = torch::randint(50, {4, 17}, torch::kLong);
    auto tokens = x.narrow(1, 0, 16), targets = x.narrow(1, 1, 16);
    torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(3e-3));
    const double initial = m->loss(tokens, targets).item<double>();
    double last = initial;
    for (int i = 0; i < 40; ++i) {
      opt.zero_grad();
      auto l = m->loss(tokens, targets);
      l.backward();
      opt.step();
      last = l.item<double>();
    }
    EXPECT_LT(last, initial - 1.0) << model::name_of(v.norm) << " " << model::name_of(v.mlp) << " " << model::name_of(v.pos);
  }
}

}  // namespace
}  // namespace longnet::testing
