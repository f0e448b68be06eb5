// The language model: shapes, tied head, initialisation, and that it learns.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "common/errors.h"
#include "model/lm.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

model::ModelOptions tiny() {
  model::ModelOptions o;
  o.vocab_size = 50;
  o.n_layers = 2;
  o.d_model = 32;
  o.n_heads = 4;
  o.max_seq_len = 32;
  o.attention.block_size = 8;
  return o;
}

class LanguageModelTest : public SeededTest {};

TEST_F(LanguageModelTest, LogitsHaveShapeBTVAndTheHeadIsTheEmbedding) {
  model::LanguageModel m(tiny());
  auto x = torch::randint(50, {3, 20}, torch::kLong);
  EXPECT_EQ(m->forward(x).sizes(), (std::vector<int64_t>{3, 20, 50}));
  // Tied: no separate head parameter exists.
  for (const auto& p : m->named_parameters()) EXPECT_EQ(p.key().find("head"), std::string::npos);
  EXPECT_EQ(m->num_parameters(), 50 * 32 + 2 * (2 * 32 + 32 * 96 + 32 * 32 + 2 * 32 * 128) + 32);
}

TEST_F(LanguageModelTest, CausalModelIgnoresTheFuture) {
  model::LanguageModel m(tiny());
  auto x = torch::randint(50, {1, 16}, torch::kLong);
  auto y = x.clone();
  y.index_put_({0, 12}, (x[0][12].item<int64_t>() + 1) % 50);
  auto a = m->forward(x), b = m->forward(y);
  EXPECT_TRUE(AllClose(a.narrow(1, 0, 12), b.narrow(1, 0, 12), 1e-6));
  EXPECT_FALSE(AllClose(a.narrow(1, 12, 1), b.narrow(1, 12, 1), 1e-6));
}

TEST_F(LanguageModelTest, ResidualProjectionsAreScaledAtInit) {
  auto o = tiny();
  o.d_model = 256;
  o.n_heads = 4;
  o.n_layers = 8;
  model::LanguageModel m(o);
  // Looked up by name, so that a rename fails here instead of leaving the test without a check.
  const auto params = m->named_parameters();
  ASSERT_TRUE(params.contains("blocks.0.mlp.fc2.weight"));
  ASSERT_TRUE(params.contains("blocks.0.mlp.fc1.weight"));
  EXPECT_NEAR(params["blocks.0.mlp.fc2.weight"].std().item<double>(), 0.02 / std::sqrt(16.0), 0.05 * 0.02 / 4);
  EXPECT_NEAR(params["blocks.0.mlp.fc1.weight"].std().item<double>(), 0.02, 0.05 * 0.02);
}

TEST_F(LanguageModelTest, InitialLossIsNearLogVocabAndTrainingLowersIt) {
  model::LanguageModel m(tiny());
  auto x = torch::randint(50, {4, 17}, torch::kLong);
  auto tokens = x.narrow(1, 0, 16), targets = x.narrow(1, 1, 16);
  const double initial = m->loss(tokens, targets).item<double>();
  EXPECT_NEAR(initial, std::log(50.0), 0.3);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-2));
  double last = initial;
  for (int i = 0; i < 30; ++i) {
    opt.zero_grad();
    auto l = m->loss(tokens, targets);
    l.backward();
    opt.step();
    last = l.item<double>();
  }
  EXPECT_LT(last, initial - 1.0);
}

// model.document_mask: a packed row's logits are those of each of its documents run alone
// (each later one from its separator on); without the mask a later document's are not.
// With attention.length_scale a row's keys count from its document's first token, so that too
// is what the document alone gives.
TEST_F(LanguageModelTest, DocumentMaskRunsEachDocumentOfARowAlone) {
  for (int64_t length_scale : {0, 4}) {
    SCOPED_TRACE("length_scale=" + std::to_string(length_scale));
    auto o = tiny();
    o.document_mask = true;
    o.document_separator = 1;
    o.attention.length_scale = length_scale;
    model::LanguageModel masked(o);
    auto x = torch::randint(2, 50, {2, 24}, torch::kLong);  // no separator yet
    for (const auto& [row, p] : std::vector<std::pair<int64_t, int64_t>>{{0, 7}, {0, 8}, {0, 15}, {1, 20}})
      x.index_put_({row, p}, 1);
    const auto logits = masked->forward(x);
    const std::vector<std::vector<int64_t>> docs = {{0, 7, 8, 15, 24}, {0, 20, 24}};
    for (int64_t b = 0; b < 2; ++b)
      for (size_t i = 0; i + 1 < docs[b].size(); ++i) {
        const int64_t begin = docs[b][i], n = docs[b][i + 1] - begin;
        EXPECT_TRUE(AllClose(logits.narrow(0, b, 1).narrow(1, begin, n),
                             masked->forward(x.narrow(0, b, 1).narrow(1, begin, n)), 1e-5))
            << "row " << b << ", document at " << begin;
      }
    auto plain_options = o;
    plain_options.document_mask = false;
    model::LanguageModel plain(plain_options);
    torch::NoGradGuard no_grad;
    for (const auto& p : masked->named_parameters()) plain->named_parameters()[p.key()].copy_(p.value());
    EXPECT_TRUE(AllClose(plain->forward(x).narrow(1, 0, 7), logits.narrow(1, 0, 7), 1e-5)) << "the first document";
    EXPECT_FALSE(AllClose(plain->forward(x).narrow(1, 15, 9), logits.narrow(1, 15, 9), 1e-3)) << "a later one";
  }
}

// What document_mask refuses: a model without the separator's id, incremental decoding of
// tokens that hold it, and sequence parallelism.
TEST_F(LanguageModelTest, DocumentMaskRefusesWhatItCannotKeepApart) {
  auto o = tiny();
  o.document_mask = true;
  model::LanguageModel unknown(o);
  EXPECT_THROW(unknown->forward(torch::randint(2, 50, {1, 8}, torch::kLong)), ConfigError);
  o.document_separator = 1;
  model::LanguageModel m(o);
  m->eval();
  auto state = m->start_decoding(1);
  EXPECT_NO_THROW(m->extend(state, torch::randint(2, 50, {1, 4}, torch::kLong)));
  EXPECT_THROW(m->extend(state, torch::ones({1, 1}, torch::kLong)), ConfigError);
  EXPECT_THROW(model::enable_sequence_parallel(*m, nullptr), ConfigError);
}

}  // namespace
}  // namespace longnet::testing
