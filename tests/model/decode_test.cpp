// The language model decoded with its KV cache (LanguageModelImpl::extend) against its own full
// forward pass, for every attention kind, in float32: MAGNETO's Sub-LN, grouped-query attention
// (4 query heads over 2 key/value heads), rope and xPos, and prompts shorter and longer than a
// dilated segment and a block_sparse block. The kernels' caches are checked against the
// masked oracle in tests/attention/decode_test.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>
#include <string>

#include "common/errors.h"
#include "model/lm.h"
#include "tests/support/support.h"

namespace longnet::testing {
namespace {

struct Kind {
  std::string name;
  std::function<void(attention::AttentionOptions&)> set;
};

// Segments of 4 and 8 and blocks of 4: the prompts of 3 and 10 tokens fall inside one and
// across several.
std::vector<Kind> kinds() {
  return {
      {"dense", [](attention::AttentionOptions& a) { a.kind = "dense"; }},
      {"ring", [](attention::AttentionOptions& a) { a.kind = "ring"; }},
      {"dilated", [](attention::AttentionOptions& a) {
         a.kind = "dilated";
         a.dilated.segment_lengths = {4, 8, 24};
         a.dilated.dilation_rates = {1, 2, 4};
       }},
      {"dilated_keys", [](attention::AttentionOptions& a) {
         a.kind = "dilated";
         a.dilated.segment_lengths = {4, 8, 24};
         a.dilated.dilation_rates = {1, 2, 4};
         a.dilated.dilate = attention::Dilate::kKeys;
       }},
      {"dilated_every_offset", [](attention::AttentionOptions& a) {
         a.kind = "dilated";
         a.dilated.segment_lengths = {4, 8, 24};
         a.dilated.dilation_rates = {1, 2, 4};
         a.dilated.dilate = attention::Dilate::kEveryOffset;
       }},
      {"dilated_distance", [](attention::AttentionOptions& a) {
         a.kind = "dilated";
         a.dilated.segment_lengths = {4, 8, 24};
         a.dilated.dilation_rates = {1, 2, 4};
         a.dilated.dilate = attention::Dilate::kDistance;
       }},
      {"dilated_head_groups", [](attention::AttentionOptions& a) {
         a.kind = "dilated";
         a.dilated.segment_lengths = {4, 8};
         a.dilated.dilation_rates = {1, 2};
         a.dilated.mix = attention::Mix::kHeadGroups;
       }},
      {"block_sparse_local", [](attention::AttentionOptions& a) {
         a.kind = "block_sparse";
         a.block_sparse.local_blocks = 1;
       }},
      {"block_sparse_mixed", [](attention::AttentionOptions& a) {
         a.kind = "block_sparse";
         a.block_sparse.local_blocks = 0;
         a.block_sparse.stride = 3;
         a.block_sparse.global_blocks = 1;
         a.block_sparse.random_blocks = 1;
         a.block_sparse.seed = 5;
       }},
  };
}

model::ModelOptions tiny(const Kind& kind, model::PositionKind pos, model::NormPlacement norm) {
  model::ModelOptions o;
  o.vocab_size = 40;
  o.n_layers = 2;
  o.d_model = 32;
  o.n_heads = 4;
  o.n_kv_heads = 2;
  o.norm = norm;
  o.pos = pos;
  o.max_seq_len = 24;
  o.attention.block_size = 4;
  kind.set(o.attention);
  return o;
}

class ModelDecodeTest : public SeededTest {};

TEST_F(ModelDecodeTest, IncrementalLogitsEqualTheFullForwardAtEveryPosition) {
  using model::NormPlacement;
  using model::PositionKind;
  for (const auto& kind : kinds())
    for (auto pos : {PositionKind::kRope, PositionKind::kXpos, PositionKind::kNone})
      for (auto norm : {NormPlacement::kSubLn, NormPlacement::kPre, NormPlacement::kDeepNorm}) {
        if (norm != NormPlacement::kSubLn && pos != PositionKind::kRope) continue;  // the norms once each
        for (int64_t length_scale : {0, 5}) {
          if (length_scale > 0 && (norm != NormPlacement::kSubLn || pos != PositionKind::kRope)) continue;  // once
          auto o = tiny(kind, pos, norm);
          o.attention.length_scale = length_scale;  // rows past 5 keys scale q by their position
          torch::manual_seed(7);
          model::LanguageModel m(o);
          m->eval();
          const int64_t B = 2, T = o.max_seq_len;
          auto tokens = torch::randint(o.vocab_size, {B, T}, torch::kLong);
          torch::Tensor full;
          {
            torch::NoGradGuard no_grad;
            full = m->forward(tokens);
          }
          for (int64_t prompt : {3, 10}) {
            SCOPED_TRACE(kind.name + " pos=" + model::name_of(pos) + " norm=" + model::name_of(norm) +
                         " length_scale=" + std::to_string(length_scale) + " prompt=" + std::to_string(prompt));
            auto state = m->start_decoding(B);
            std::vector<torch::Tensor> logits = {m->extend(state, tokens.narrow(1, 0, prompt), /*all_positions=*/true)};
            for (int64_t t = prompt; t < T; ++t) logits.push_back(m->extend(state, tokens.narrow(1, t, 1)));
            ASSERT_EQ(state.length(), T);
            const auto got = torch::cat(logits, 1);
            ASSERT_EQ(got.sizes(), full.sizes());
            EXPECT_LT((got - full).abs().max().item<double>(), 1e-5);
            EXPECT_GT(full.abs().max().item<double>(), 1e-2) << "logits too small for the comparison to mean much";
          }
        }
      }
}

TEST_F(ModelDecodeTest, OnlyTheLastLogitsUnlessAskedAndCausalModelsOnly) {
  auto o = tiny(kinds()[0], model::PositionKind::kRope, model::NormPlacement::kPre);
  model::LanguageModel m(o);
  m->eval();
  auto state = m->start_decoding(1);
  EXPECT_EQ(m->extend(state, torch::tensor({{1, 2, 3}}, torch::kLong)).sizes(), (std::vector<int64_t>{1, 1, 40}));
  EXPECT_GT(state.bytes(), 0);
  o.attention.causal = false;
  model::LanguageModel bidirectional(o);
  try {
    bidirectional->start_decoding(1);
    FAIL() << "a non-causal model started decoding";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("attention.causal: false"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace longnet::testing
