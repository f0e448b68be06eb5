// The evaluations beyond the whole split: the loss at several context lengths (against the
// loss computed by hand, and across ranks against one process) and passkey retrieval's scoring
// (an oracle that reads the key passes every trial, a random scorer none).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <regex>

#include "attention/sequence_parallel.h"
#include "data/passkey.h"
#include "model/lm.h"
#include "tests/support/support.h"
#include "train/distributed.h"
#include "train/evaluator.h"

namespace longnet::testing {
namespace {

model::ModelOptions tiny(int64_t vocab) {
  model::ModelOptions o;
  o.vocab_size = vocab;
  o.n_layers = 2;
  o.d_model = 16;
  o.n_heads = 2;
  o.max_seq_len = 64;
  o.loss_chunk = 16;  // the chunked head, as at long lengths
  o.attention.block_size = 8;
  return o;
}

// A shard of `n` seeded random tokens below `vocab`.
std::unique_ptr<data::TokenShard> random_shard(const TempDir& dir, int64_t n, int64_t vocab) {
  torch::manual_seed(99);
  auto t = torch::randint(vocab, {n}, torch::kInt);
  std::vector<int32_t> tokens(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + n);
  data::TokenShard::write(dir.str("val.bin"), tokens, vocab);
  return std::make_unique<data::TokenShard>(dir.str("val.bin"));
}

class EvaluatorTest : public SeededTest {
 protected:
  TempDir dir;
};

// Every length scores the last `scored` targets of the window of L tokens that ends where the
// longest length's block ends: from the full logits, by hand.
TEST_F(EvaluatorTest, LossAtLengthsIsTheLossOfTheSameTokensComputedByHand) {
  const int64_t vocab = 50, scored = 5;
  auto shard = random_shard(dir, 150, vocab);
  model::LanguageModel m(tiny(vocab));
  const std::vector<int64_t> lengths = {8, 20, 32};
  const auto got = train::evaluate_lengths(m, *shard, lengths, scored, /*batch_size=*/2, /*bytes_per_token=*/2.0);
  ASSERT_EQ(got.size(), 3u);
  const int64_t blocks = (150 - 1) / 32;  // 4
  torch::NoGradGuard no_grad;
  m->eval();
  for (size_t i = 0; i < lengths.size(); ++i) {
    const int64_t L = lengths[i];
    double sum = 0;
    for (int64_t b = 0; b < blocks; ++b) {
      auto w = shard->slice(1 + (b + 1) * 32 - L - 1, L + 1).unsqueeze(0);
      auto logp = torch::log_softmax(m->forward(w.narrow(1, 0, L)).to(torch::kDouble), -1);  // [1, L, V]
      auto nll = -logp.gather(2, w.narrow(1, 1, L).unsqueeze(-1)).squeeze(-1);            // [1, L]
      sum += nll.narrow(1, L - scored, scored).sum().item<double>();
    }
    EXPECT_EQ(got[i].length, L);
    EXPECT_EQ(got[i].tokens, blocks * scored);
    EXPECT_NEAR(got[i].loss, sum / static_cast<double>(blocks * scored), 1e-5) << "length " << L;
    EXPECT_NEAR(got[i].ppl, std::exp(got[i].loss), 1e-9);
    EXPECT_NEAR(got[i].bits_per_byte, got[i].loss / std::log(2.0) / 2.0, 1e-12);
  }
}

class PasskeyScoringTest : public SeededTest {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    tok = std::make_unique<data::Tokenizer>(passkey_tokenizer(dir.path(), 60, 300));
  }
  TempDir dir;
  std::unique_ptr<data::Tokenizer> tok;
};

// The oracle reads the key from its input (the model's only way to know it), so it must find
// it at every depth and length: every next token is the input's own, and after the input the
// answer's last token.
TEST_F(PasskeyScoringTest, AnOracleThatReadsTheKeyPassesEveryTrialAndRandomScoresNone) {
  data::PasskeyBuilder builder(*tok);
  const int64_t V = tok->vocab_size();
  auto oracle = [&](const torch::Tensor& tokens, const torch::Tensor& positions) {
    std::vector<torch::Tensor> rows;
    for (int64_t r = 0; r < tokens.size(0); ++r) {
      auto row = tokens[r];
      std::vector<int> ids(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.size(0));
      std::smatch match;
      const auto text = tok->decode(ids);
      EXPECT_TRUE(std::regex_search(text, match, std::regex("The pass key is ([0-9]{5})"))) << text;
      const auto answer = tok->encode(std::string(" ").append(match[1].str()));
      auto next = torch::cat({row.narrow(0, 1, row.size(0) - 1), torch::tensor({static_cast<int64_t>(answer.back())})});
      rows.push_back(torch::one_hot(next.index_select(0, positions), V).to(torch::kFloat));
    }
    return torch::stack(rows);
  };
  const std::vector<int64_t> lengths = {builder.min_length() + 10, 400};
  const std::vector<double> depths = {0, 0.5, 1};
  const auto cells = train::evaluate_passkey_with(oracle, builder, lengths, depths, /*trials=*/5, /*seed=*/1, /*batch_size=*/2);
  ASSERT_EQ(cells.size(), 6u);
  for (const auto& c : cells) {
    EXPECT_EQ(c.trials, 5);
    EXPECT_EQ(c.passed, 5) << "length " << c.length << " depth " << c.depth;
    EXPECT_EQ(c.tokens_right, c.answer_tokens);
    EXPECT_EQ(c.first_right, 5);
    EXPECT_GE(c.answer_tokens, 5);
  }
  auto random = [&](const torch::Tensor& tokens, const torch::Tensor& positions) {
    return torch::randn({tokens.size(0), positions.size(0), V});
  };
  int64_t passed = 0, first_right = 0;
  for (const auto& c : train::evaluate_passkey_with(random, builder, lengths, depths, 5, 1, 2)) {
    passed += c.passed;
    first_right += c.first_right;
  }
  EXPECT_EQ(passed, 0);
  EXPECT_LE(first_right, 2) << "of 30 trials, each first token one of " << V;
  // An oracle that is one digit off fails: every answer token counts.
  auto off_by_one = [&](const torch::Tensor& tokens, const torch::Tensor& positions) {
    auto logits = oracle(tokens, positions);
    auto last = logits.select(1, positions.size(0) - 1);
    last.copy_(last.roll(1, -1));
    return logits;
  };
  passed = 0;
  for (const auto& c : train::evaluate_passkey_with(off_by_one, builder, lengths, depths, 5, 1, 2)) {
    passed += c.passed;
    // ... though every answer token but its last is right, and so the first where there are two.
    EXPECT_EQ(c.tokens_right, c.answer_tokens - c.trials);
    EXPECT_EQ(c.first_right, c.answer_tokens > c.trials ? c.trials : 0);
  }
  EXPECT_EQ(passed, 0);
}

// Sequence-parallel evaluation at several lengths equals one process: two real ranks.
TEST(DistributedEvalTest, LossAtLengthsAcrossRanksEqualsOneProcess) {
  TempDir dir;
  const auto status = run_ranks(2, "EvalWorker.DISABLED_LengthsAcrossRanks", {"LONGNET_TEST_DIR=" + dir.str()});
  EXPECT_EQ(status, std::vector<int>({0, 0}));
}

TEST(EvalWorker, DISABLED_LengthsAcrossRanks) {
  const auto env = train::distributed_env();
  const char* dir_env = std::getenv("LONGNET_TEST_DIR");
  ASSERT_TRUE(dir_env);
  const auto dir = std::filesystem::path(dir_env) / ("rank" + std::to_string(env.rank));
  std::filesystem::create_directories(dir);
  const auto shard_path = (dir / "val.bin").string();
  torch::manual_seed(99);
  auto t = torch::randint(50, {150}, torch::kInt);
  std::vector<int32_t> tokens(t.data_ptr<int32_t>(), t.data_ptr<int32_t>() + 150);
  data::TokenShard::write(shard_path, tokens, 50);
  data::TokenShard shard(shard_path);
  auto options = tiny(50);
  options.attention.length_scale = 4;  // each rank's rows scale q by their positions in the whole window
  torch::manual_seed(5);
  model::LanguageModel one(options);
  torch::manual_seed(5);
  model::LanguageModel across(options);
  const std::vector<int64_t> lengths = {8, 20, 32};
  const auto want = train::evaluate_lengths(one, shard, lengths, 6, 2, 1.0);
  auto groups = train::init_process_groups(env, std::chrono::seconds(60), env.world_size);
  auto sp = std::make_shared<attention::SequenceParallel>(groups.sequence, /*zigzag=*/true);
  model::enable_sequence_parallel(*across, sp);
  const auto got = train::evaluate_lengths(across, shard, lengths, 6, 2, 1.0, sp);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i].loss, want[i].loss, 1e-5) << "length " << lengths[i];
}

}  // namespace
}  // namespace longnet::testing
