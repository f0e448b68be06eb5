// Sampling filters against hand-computed cases, seeded draws, prompt fitting, and generation,
// with the KV cache and without, against a loop of full forward passes written out here.
#include <gtest/gtest.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>

#include "common/errors.h"
#include "model/sampling.h"
#include "tests/support/support.h"
#include "train/generate.h"

namespace longnet::testing {
namespace {

// The indices filter_logits keeps.
std::vector<int64_t> kept(const std::vector<float>& logits, int64_t top_k, double top_p) {
  const auto f = model::filter_logits(torch::tensor(logits), top_k, top_p);
  std::vector<int64_t> out;
  for (int64_t i = 0; i < f.size(0); ++i)
    if (std::isfinite(f[i].item<float>())) out.push_back(i);
  return out;
}

std::vector<float> log_of(const std::vector<float>& probs) {
  std::vector<float> out;
  for (float p : probs) out.push_back(std::log(p));
  return out;
}

using Ids = std::vector<int64_t>;

TEST(SamplingTest, TopKKeepsTheKMostLikelyAndTheirTies) {
  EXPECT_EQ(kept({1, 3, 2, 3, 0}, 2, 1.0), (Ids{1, 3}));
  EXPECT_EQ(kept({1, 3, 2, 3, 0}, 3, 1.0), (Ids{1, 2, 3}));
  EXPECT_EQ(kept({1, 3, 2, 2, 0}, 2, 1.0), (Ids{1, 2, 3}));  // a tie with the 2nd is kept too
  EXPECT_EQ(kept({1, 3, 2, 3, 0}, 0, 1.0), (Ids{0, 1, 2, 3, 4}));
  EXPECT_EQ(kept({1, 3, 2, 3, 0}, 9, 1.0), (Ids{0, 1, 2, 3, 4}));
}

TEST(SamplingTest, TopPKeepsTheMostLikelyTokensUntilTheirProbabilitiesReachP) {
  // Probabilities 0.15, 0.5, 0.05, 0.3: sorted 0.5 (1), 0.3 (3), 0.15 (0), 0.05 (2); the sums
  // before each are 0, 0.5, 0.8, 0.95.
  const auto logits = log_of({0.15f, 0.5f, 0.05f, 0.3f});
  EXPECT_EQ(kept(logits, 0, 0.45), (Ids{1}));
  EXPECT_EQ(kept(logits, 0, 0.6), (Ids{1, 3}));
  EXPECT_EQ(kept(logits, 0, 0.9), (Ids{0, 1, 3}));
  EXPECT_EQ(kept(logits, 0, 0.99), (Ids{0, 1, 2, 3}));
  EXPECT_EQ(kept(logits, 0, 0.01), (Ids{1}));  // the most likely token always stays
  // top_k first, then top_p over what is left (renormalised: 0.5/0.8, 0.3/0.8).
  EXPECT_EQ(kept(logits, 2, 0.7), (Ids{1, 3}));
  EXPECT_EQ(kept(logits, 2, 0.6), (Ids{1}));
}

TEST(SamplingTest, DrawsFollowTheFilteredDistributionAndTheSeed) {
  const auto logits = torch::tensor(log_of({0.15f, 0.5f, 0.05f, 0.3f}));
  model::SamplingOptions o;
  o.top_k = 2;
  at::Generator gen = at::detail::createCPUGenerator(7);
  std::vector<int> counts(4, 0);
  const int n = 4000;
  for (int i = 0; i < n; ++i) ++counts[model::sample_token(logits, o, gen)];
  EXPECT_EQ(counts[0] + counts[2], 0) << "a filtered token was drawn";
  EXPECT_NEAR(counts[1] / double(n), 0.625, 0.03);
  EXPECT_NEAR(counts[3] / double(n), 0.375, 0.03);
  // Temperature scales the logits: at 0.5 the odds of the two kept square (0.735 : 0.265).
  o.temperature = 0.5;
  counts.assign(4, 0);
  for (int i = 0; i < n; ++i) ++counts[model::sample_token(logits, o, gen)];
  EXPECT_NEAR(counts[1] / double(n), 0.625 * 0.625 / (0.625 * 0.625 + 0.375 * 0.375), 0.03);
  // Greedy at 0; the same seed, the same draws.
  o.temperature = 0;
  EXPECT_EQ(model::sample_token(logits, o, gen), 1);
  o.temperature = 1;
  auto draws = [&](uint64_t seed) {
    at::Generator g = at::detail::createCPUGenerator(seed);
    std::vector<int64_t> out;
    for (int i = 0; i < 50; ++i) out.push_back(model::sample_token(logits, o, g));
    return out;
  };
  EXPECT_EQ(draws(3), draws(3));
  EXPECT_NE(draws(3), draws(4));
}

TEST(GenerateTest, APromptLongerThanTheContextIsAnErrorOrTruncatedFromTheLeft) {
  const std::vector<int> prompt = {1, 2, 3, 4, 5};
  EXPECT_EQ(train::fit_prompt(prompt, 5, false), prompt);
  try {
    train::fit_prompt(prompt, 4, false);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("the prompt is 5 tokens, longer than the model's context of 4"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("--truncate"), std::string::npos);
  }
  EXPECT_EQ(train::fit_prompt(prompt, 3, true), (std::vector<int>{3, 4, 5}));
  EXPECT_THROW(train::fit_prompt({}, 3, false), ConfigError);
}

class GenerateModelTest : public SeededTest {};

TEST_F(GenerateModelTest, GreedyGenerationIsTheArgmaxOfFullForwardPassesOverTheWindow) {
  for (const std::string kind : {"dense", "dilated", "block_sparse"}) {
    model::ModelOptions o;
    o.vocab_size = 24;
    o.n_layers = 2;
    o.d_model = 16;
    o.n_heads = 2;
    o.max_seq_len = 8;
    o.attention.kind = kind;
    o.attention.block_size = 2;
    o.attention.dilated.segment_lengths = {2, 4};
    o.attention.dilated.dilation_rates = {1, 2};
    o.attention.block_sparse.local_blocks = 2;
    torch::manual_seed(3);
    model::LanguageModel m(o);
    m->eval();
    const std::vector<int> prompt = {5, 1, 7};
    train::GenerateOptions g;
    g.max_new_tokens = 20;  // past max_seq_len: the window restarts twice
    g.sampling.temperature = 0;
    // Written out: the window holds at most 8 tokens; when a 9th comes it restarts at the last 4.
    std::vector<int64_t> tokens(prompt.begin(), prompt.end());
    std::vector<int> want;
    size_t start = 0;
    int64_t restarts = 0;
    {
      torch::NoGradGuard no_grad;
      for (int i = 0; i < 20; ++i) {
        if (tokens.size() - start > 8) {
          start = tokens.size() - 4;
          ++restarts;
        }
        const auto n = static_cast<int64_t>(tokens.size() - start);
        auto x = torch::tensor(std::vector<int64_t>(tokens.begin() + static_cast<int64_t>(start), tokens.end())).view({1, n});
        const int next = static_cast<int>(m->forward(x)[0][n - 1].argmax().item<int64_t>());
        tokens.push_back(next);
        want.push_back(next);
      }
    }
    ASSERT_EQ(restarts, 3);
    for (bool cache : {true, false}) {
      g.kv_cache = cache;
      at::Generator gen = at::detail::createCPUGenerator(0);
      train::GenerateStats stats;
      EXPECT_EQ(train::generate(m, prompt, g, gen, {}, &stats), want) << kind << " kv_cache=" << cache;
      EXPECT_EQ(stats.restarts, restarts) << kind;
      EXPECT_EQ(stats.cache_bytes > 0, cache) << kind;
    }
    // It stops after the stop token.
    g.stop_token = want[2];
    at::Generator gen = at::detail::createCPUGenerator(0);
    const auto stopped = train::generate(m, prompt, g, gen);
    ASSERT_LE(stopped.size(), 3u) << kind;
    EXPECT_EQ(stopped.back(), want[2]) << kind;
  }
}

TEST_F(GenerateModelTest, SampledTextIsTheSameWithAndWithoutTheCache) {
  model::ModelOptions o;
  o.vocab_size = 24;
  o.n_layers = 2;
  o.d_model = 16;
  o.n_heads = 4;
  o.n_kv_heads = 2;
  o.max_seq_len = 12;
  o.attention.kind = "dilated";
  o.attention.dilated.segment_lengths = {4, 12};
  o.attention.dilated.dilation_rates = {1, 3};
  torch::manual_seed(4);
  model::LanguageModel m(o);
  train::GenerateOptions g;
  g.max_new_tokens = 30;
  g.sampling.top_k = 5;
  auto run = [&](bool cache) {
    g.kv_cache = cache;
    at::Generator gen = at::detail::createCPUGenerator(9);
    return train::generate(m, {3, 4}, g, gen);
  };
  EXPECT_EQ(run(true), run(false));
}

TEST(GenerateWindowTest, TheWindowRestartsAtTheLastHalfWhenFull) {
  EXPECT_EQ(train::window_start(0, 8, 8), 0);
  EXPECT_EQ(train::window_start(0, 9, 8), 5);
  EXPECT_EQ(train::window_start(5, 13, 8), 5);
  EXPECT_EQ(train::window_start(5, 14, 8), 10);
  EXPECT_EQ(train::window_start(0, 2, 1), 1);  // a context of one token keeps one
}

}  // namespace
}  // namespace longnet::testing
