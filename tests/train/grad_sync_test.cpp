// Bucketed gradient all-reduce (train/grad_sync.h) in 2 real processes: the synchronised
// gradients are the sums of each rank's own, with gradient accumulation and with nested
// backward passes (activation checkpointing of blocks, MLP token chunks: a parameter's gradient
// is accumulated several times per backward), and from the second step buckets go out during
// backward.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>

#include "model/lm.h"
#include "model/recompute.h"
#include "tests/support/support.h"
#include "train/distributed.h"
#include "train/grad_sync.h"

namespace longnet::testing {
namespace {

TEST(GradSyncTest, BucketsSumEveryRanksGradientsDuringBackward) {
  const auto status = run_ranks(2, "GradSyncWorker.DISABLED_SumsGradients");
  EXPECT_EQ(status, (std::vector<int>{0, 0}));
}

TEST(GradSyncWorker, DISABLED_SumsGradients) {
  ASSERT_TRUE(std::getenv("RANK")) << "run through GradSyncTest";
  const auto env = train::distributed_env();
  auto group = train::init_process_group(env, std::chrono::seconds(60));
  model::ModelOptions o;
  o.vocab_size = 50;
  o.n_layers = 3;
  o.d_model = 32;
  o.n_heads = 2;
  o.d_ff = 64;
  o.max_seq_len = 16;
  o.mlp_chunk = 4;  // 15 tokens: 4 chunks, each recomputed in backward
  torch::manual_seed(1);
  model::LanguageModel synced(o);
  torch::manual_seed(1);
  model::LanguageModel plain(o);  // the same weights
  model::CheckpointPolicy blocks;
  blocks.mode = model::CheckpointPolicy::Mode::kBlocks;
  model::apply_activation_checkpointing(*synced, blocks);
  model::apply_activation_checkpointing(*plain, blocks);
  const auto params = synced->parameters();
  train::GradientSync sync(params, group, /*bucket_bytes=*/16 * 1024);
  ASSERT_GE(sync.buckets(), 3);
  // Two micro-batches per step, different on each rank.
  torch::manual_seed(100 + env.rank);
  std::vector<torch::Tensor> tokens = {torch::randint(50, {2, 16}), torch::randint(50, {2, 16})};
  for (int step = 0; step < 3; ++step) {
    sync.zero();
    for (auto& p : plain->parameters()) p.mutable_grad() = torch::Tensor();
    for (size_t m = 0; m < tokens.size(); ++m) {
      if (m + 1 == tokens.size()) sync.arm();
      auto x = tokens[m].narrow(1, 0, 15), y = tokens[m].narrow(1, 1, 15);
      synced->loss(x, y).backward();
      plain->loss(x, y).backward();
    }
    sync.finish();
    if (step == 0) EXPECT_EQ(sync.launched_during_backward(), 0);  // the first step learns
    else EXPECT_GE(sync.launched_during_backward(), 1) << "no bucket went out before backward ended";
    const auto plain_params = plain->parameters();
    for (size_t k = 0; k < params.size(); ++k) {
      std::vector<torch::Tensor> want = {plain_params[k].grad().clone()};
      group->allreduce(want)->wait();
      EXPECT_TRUE(AllClose(params[k].grad(), want[0], 1e-6)) << "parameter " << k << " step " << step;
    }
  }
}

}  // namespace
}  // namespace longnet::testing
