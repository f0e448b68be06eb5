// Activation checkpointing and the token-chunked head, loss and MLP: same gradients, less memory,
// and nothing in a training step that grows faster than T.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "common/targets.h"
#include "model/chunked_loss.h"
#include "model/lm.h"
#include "model/precision.h"
#include "model/recompute.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

using Mode = model::CheckpointPolicy::Mode;

model::ModelOptions small(int64_t n_layers, double dropout) {
  model::ModelOptions o;
  o.vocab_size = 64;
  o.n_layers = n_layers;
  o.d_model = 32;
  o.n_heads = 4;
  o.dropout = dropout;
  o.max_seq_len = 2048;
  o.attention.block_size = 32;
  return o;
}

// Gradients of every parameter after one loss.backward() from a fixed seed.
std::vector<torch::Tensor> gradients(const model::ModelOptions& o, const model::CheckpointPolicy& policy,
                                     const torch::Tensor& x, model::Precision precision = model::Precision::kFloat32) {
  torch::manual_seed(7);
  model::LanguageModel m(o);
  model::apply_activation_checkpointing(*m, policy);
  m->set_precision(precision);
  model::set_attention_dropout(*m, /*seed=*/3, /*step=*/11, /*sample0=*/0);
  m->train();
  m->loss(x.narrow(1, 0, x.size(1) - 1), x.narrow(1, 1, x.size(1) - 1)).backward();
  std::vector<torch::Tensor> g;
  for (const auto& p : m->parameters()) g.push_back(p.grad().clone());
  return g;
}

class RecomputeTest : public SeededTest {};

TEST_F(RecomputeTest, GradientsWithAndWithoutCheckpointingAreBitwiseEqualWithDropout) {
  auto o = small(3, 0.2);
  auto x = torch::randint(64, {2, 65}, torch::kLong);
  const auto plain = gradients(o, {}, x);
  model::CheckpointPolicy blocks{Mode::kBlocks, 1}, every2{Mode::kEveryK, 2};
  // A chunked MLP draws its dropout masks chunk by chunk: compare it with itself unchecked.
  for (int64_t mlp_chunk : {int64_t{0}, int64_t{24}}) {
    auto oc = o;
    oc.mlp_chunk = mlp_chunk;
    const auto reference = mlp_chunk == 0 ? plain : gradients(oc, {}, x);
    for (const auto& policy : {blocks, every2}) {
      const auto got = gradients(oc, policy, x);
      ASSERT_EQ(got.size(), reference.size());
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(torch::equal(got[i], reference[i])) << "parameter " << i << " every_k=" << policy.every_k
                                                         << " mlp_chunk=" << mlp_chunk;
    }
  }
  // And the dropout masks matter: another seed gives other gradients.
  torch::manual_seed(8);
  model::LanguageModel m(o);
  m->loss(x.narrow(1, 0, 64), x.narrow(1, 1, 64)).backward();
  EXPECT_FALSE(torch::equal(m->parameters()[1].grad(), plain[1]));
}

// Attention dropout keeps no generator state: a recomputed block draws its kernels' masks again
// from the same key, whichever kernel.
TEST_F(RecomputeTest, AttentionDropoutIsDrawnAgainInRecomputeForEveryKernel) {
  auto x = torch::randint(64, {2, 65}, torch::kLong);
  for (const std::string kind : {"dense", "dilated", "block_sparse", "ring"}) {
    auto o = small(3, 0.0);
    o.attention.kind = kind;
    o.attention.block_size = 16;
    o.attention.dilated.segment_lengths = {16, 64};
    o.attention.dilated.dilation_rates = {1, 2};
    auto without = gradients(o, {}, x);
    o.attention.dropout = 0.2;
    const auto plain = gradients(o, {}, x);
    const auto got = gradients(o, {Mode::kBlocks, 1}, x);
    ASSERT_EQ(got.size(), plain.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_TRUE(torch::equal(got[i], plain[i])) << kind << " parameter " << i;
    EXPECT_FALSE(torch::equal(without[1], plain[1])) << kind << ": the masks matter";
  }
}

// Tensor bytes at the peak of one forward + backward.
int64_t step_peak(const model::ModelOptions& o, const model::CheckpointPolicy& policy, int64_t T) {
  model::LanguageModel m(o);
  model::apply_activation_checkpointing(*m, policy);
  auto x = torch::randint(o.vocab_size, {1, T + 1}, torch::kLong);
  TensorMemory::reset_peak();
  m->loss(x.narrow(1, 0, T), x.narrow(1, 1, T)).backward();
  return TensorMemory::peak_bytes();
}

TEST_F(RecomputeTest, PeakMemoryOfAnEightLayerStepFallsWithCheckpointing) {
  auto o = small(8, 0.0);
  const int64_t T = 1024;
  const int64_t none = step_peak(o, {}, T), every2 = step_peak(o, {Mode::kEveryK, 2}, T),
                blocks = step_peak(o, {Mode::kBlocks, 1}, T);
  // Without: 8 blocks' activations. Every block: 8 block inputs and one block's activations;
  // every other block: about half of them kept.
  EXPECT_LT(blocks, none / 3) << "none " << none << " blocks " << blocks;
  EXPECT_LT(blocks, every2);
  EXPECT_LT(every2, none * 3 / 4) << "none " << none << " every_k 2 " << every2;
}

TEST_F(RecomputeTest, NothingInAStepGrowsFasterThanT) {
  auto o = small(2, 0.0);
  o.vocab_size = 2048;  // a T x V logits tensor would dominate
  o.loss_chunk = 128;
  o.mlp_chunk = 128;
  const model::CheckpointPolicy blocks{Mode::kBlocks, 1};
  const int64_t p1 = step_peak(o, blocks, 512), p4 = step_peak(o, blocks, 2048);
  // Linear growth is 4x; a T x T or T x V term would make it far more.
  EXPECT_LT(static_cast<double>(p4) / p1, 4.4) << p1 << " -> " << p4;
  auto whole = o;
  whole.loss_chunk = 0;
  EXPECT_GT(step_peak(whole, blocks, 2048), p4 + 2048 * 2048 * 4);  // the logits it no longer holds
}

// train.precision: bfloat16 (model/precision.h). A recomputed block, a chunked MLP and the
// chunked head compute in backward what their forward did under autocast: the gradients are
// bitwise those of the plain model in bfloat16, which differ from float32's by bfloat16's
// rounding, not more.
TEST_F(RecomputeTest, BFloat16GradientsAreTheSameWithCheckpointingAndChunks) {
  const auto bf16 = model::Precision::kBFloat16;
  auto o = small(3, 0.0);
  o.attention.dropout = 0.1;
  auto x = torch::randint(64, {2, 65}, torch::kLong);
  const auto plain = gradients(o, {}, x, bf16);
  const auto fp32 = gradients(o, {}, x);
  double worst = 0;
  bool any_differs = false;
  for (size_t i = 0; i < plain.size(); ++i) {
    worst = std::max(worst, ((plain[i] - fp32[i]).norm() / fp32[i].norm()).item<double>());
    any_differs = any_differs || !torch::equal(plain[i], fp32[i]);
    EXPECT_EQ(plain[i].scalar_type(), torch::kFloat) << "gradients stay float32";
  }
  EXPECT_TRUE(any_differs) << "bfloat16 ran in float32";
  EXPECT_LT(worst, 0.05) << "relative gradient difference to float32";
  model::CheckpointPolicy blocks{Mode::kBlocks, 1};
  auto chunked = o;
  chunked.mlp_chunk = 24;
  const auto mlp_reference = gradients(chunked, {}, x, bf16);
  const auto got = gradients(chunked, blocks, x, bf16);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(torch::equal(got[i], mlp_reference[i])) << "parameter " << i << " (blocks, mlp_chunk)";
  const auto blocks_only = gradients(o, blocks, x, bf16);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_TRUE(torch::equal(blocks_only[i], plain[i])) << "parameter " << i << " (blocks)";
  // The chunked head and loss recompute the logits in backward, and round each chunk's share
  // of the head's gradient to bfloat16 before summing: against the whole head, within that
  // rounding (bfloat16 keeps 8 bits: 4e-3 relative).
  auto head = o;
  head.loss_chunk = 16;
  const auto chunked_head = gradients(head, {}, x, bf16);
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_LT(((chunked_head[i] - plain[i]).norm() / plain[i].norm()).item<double>(), 1e-2)
        << "parameter " << i << " (loss_chunk)";
}

class ChunkedLossTest : public SeededTest {};

TEST_F(ChunkedLossTest, MatchesCrossEntropyAndItsGradients) {
  auto h = torch::randn({37, 8}, torch::kDouble).requires_grad_();
  auto w = torch::randn({50, 8}, torch::kDouble).requires_grad_();
  auto t = torch::randint(50, {37}, torch::kLong);
  for (int64_t chunk : {1, 7, 37, 100}) {
    auto got = model::chunked_cross_entropy_sum(h, w, t, chunk);
    auto want = torch::nn::functional::cross_entropy(torch::matmul(h, w.t()), t,
                                                     torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    EXPECT_TRUE(AllClose(got, want, 1e-10)) << "chunk " << chunk;
    auto g1 = torch::autograd::grad({got * 1.7}, {h, w}), g2 = torch::autograd::grad({want * 1.7}, {h, w});
    EXPECT_TRUE(AllClose(g1[0], g2[0], 1e-10)) << "dh, chunk " << chunk;
    EXPECT_TRUE(AllClose(g1[1], g2[1], 1e-10)) << "dW, chunk " << chunk;
    auto per_token = model::chunked_token_losses(h, w, t, chunk);
    EXPECT_TRUE(AllClose(per_token.sum(), want, 1e-10));
  }
}

// A target of kNoTarget adds nothing and has no gradient: against cross-entropy over the other
// rows alone, chunked and whole, and through the model's loss_sum both ways.
TEST_F(ChunkedLossTest, PositionsWithoutATargetAddNothingAndHaveNoGradient) {
  auto h = torch::randn({37, 8}, torch::kDouble).requires_grad_();
  auto w = torch::randn({50, 8}, torch::kDouble).requires_grad_();
  auto t = torch::randint(50, {37}, torch::kLong);
  t.index_put_({torch::arange(0, 37, 3)}, kNoTarget);
  const auto kept = (t != kNoTarget).nonzero().squeeze(1);
  ASSERT_EQ(kept.numel(), 24);
  auto want = torch::nn::functional::cross_entropy(torch::matmul(h.index_select(0, kept), w.t()), t.index_select(0, kept),
                                                   torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  auto g2 = torch::autograd::grad({want}, {h, w}, {}, true);
  for (int64_t chunk : {1, 7, 37, 100}) {
    auto got = model::chunked_cross_entropy_sum(h, w, t, chunk);
    EXPECT_TRUE(AllClose(got, want, 1e-10)) << "chunk " << chunk;
    auto g1 = torch::autograd::grad({got}, {h, w});
    EXPECT_TRUE(AllClose(g1[0], g2[0], 1e-10)) << "dh, chunk " << chunk;
    EXPECT_TRUE(AllClose(g1[1], g2[1], 1e-10)) << "dW, chunk " << chunk;
    EXPECT_EQ(g1[0].index_select(0, torch::arange(0, 37, 3)).abs().max().item<double>(), 0.0);
    auto per_token = model::chunked_token_losses(h, w, t, chunk);
    EXPECT_EQ(per_token.index_select(0, torch::arange(0, 37, 3)).abs().max().item<double>(), 0.0);
    EXPECT_TRUE(AllClose(per_token.sum(), want, 1e-10));
  }
  // The model: the whole head (loss_chunk 0, torch's cross_entropy) and the chunked one give
  // the sum of the unmasked targets' token losses.
  auto o = small(1, 0.0);
  o.loss_chunk = 0;
  torch::manual_seed(3);
  model::LanguageModel whole(o);
  o.loss_chunk = 5;
  torch::manual_seed(3);
  model::LanguageModel chunked(o);
  auto x = torch::randint(64, {2, 16}, torch::kLong), y = torch::randint(64, {2, 16}, torch::kLong);
  const auto plain = whole->token_losses(x, y);
  auto masked = y.clone();
  masked.index_put_({0, torch::indexing::Slice(3, 9)}, kNoTarget);
  const double expected = plain.sum().item<double>() - plain[0].narrow(0, 3, 6).sum().item<double>();
  EXPECT_NEAR(whole->loss_sum(x, masked).item<double>(), expected, 1e-4);
  EXPECT_NEAR(chunked->loss_sum(x, masked).item<double>(), expected, 1e-4);
  const auto by_token = whole->token_losses(x, masked);
  EXPECT_EQ(by_token[0].narrow(0, 3, 6).abs().max().item<double>(), 0.0);
  EXPECT_NEAR(by_token.sum().item<double>(), expected, 1e-4);
}

TEST_F(ChunkedLossTest, ChunkedMlpMatchesTheWholeOne) {
  model::Mlp whole(model::MlpOptions(8, 16).bias(true)), chunked(model::MlpOptions(8, 16).bias(true).chunk_tokens(3));
  whole->to(torch::kDouble);
  chunked->to(torch::kDouble);
  {
    torch::NoGradGuard g;
    for (size_t i = 0; i < whole->parameters().size(); ++i) chunked->parameters()[i].copy_(whole->parameters()[i]);
  }
  auto x = torch::randn({2, 10, 8}, torch::kDouble).requires_grad_();
  auto a = whole(x), b = chunked(x);
  EXPECT_TRUE(AllClose(a, b, 1e-12));
  // backward(), not autograd::grad: the recomputation hands parameters their .grad directly.
  a.sum().backward();
  auto dx = x.grad().clone();
  x.mutable_grad().reset();
  b.sum().backward();
  EXPECT_TRUE(AllClose(x.grad(), dx, 1e-12));
  EXPECT_TRUE(AllClose(chunked->fc1->weight.grad(), whole->fc1->weight.grad(), 1e-12));
  EXPECT_TRUE(AllClose(chunked->fc2->bias.grad(), whole->fc2->bias.grad(), 1e-12));
}

// The warning of train.precision: bfloat16 on a CPU that emulates it follows the CPU's own flags
// as Linux lists them (/proc/cpuinfo), read independently of LibTorch's cpuinfo.
TEST(PrecisionTest, NativeBFloat16FollowsTheCpuFlagsLinuxLists) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  if (!cpuinfo) GTEST_SKIP() << "no /proc/cpuinfo";
  std::string line;
  bool listed = false, native = false;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    listed = true;
    std::istringstream words(line.substr(line.find(':') + 1));
    for (std::string w; words >> w;) native = native || w == "avx512_bf16" || w == "amx_bf16";
    break;
  }
  if (!listed) GTEST_SKIP() << "/proc/cpuinfo lists no flags";
  EXPECT_EQ(model::cpu_has_native_bfloat16(), native);
}

}  // namespace
}  // namespace longnet::testing
