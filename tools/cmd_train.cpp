#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <optional>

#include "common/errors.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/pipeline.h"
#include "train/runtime.h"
#include "train/trainer.h"

namespace longnet::tools {

int cmd_train(int argc, char** argv) {
  Command cmd("train", "Train the model of CONFIG.", R"(Missing pieces are made first: the SentencePiece tokenizer (tokenizer.path) and the token
shards (cached under data.cache_dir by content hash). Writes <train.out_dir>/metrics.jsonl and
checkpoints under <train.out_dir>/checkpoints. Running it again on the same out_dir resumes
from checkpoints/latest.

Under `longnet launch --nproc N` or torchrun (RANK, WORLD_SIZE, ... set) the ranks train in
N / P data-parallel replicas of P = distributed.sequence_parallel ranks: each replica takes its
share of every step's batches, the P ranks of a replica each hold their share of every window
(attention runs across them), gradients are summed over all ranks, and rank 0 writes the same
metrics and checkpoints a single process would (they resume under any N and P).)");
  cmd.add_config();
  cmd.add_sets();
  if (!cmd.parse(argc, argv)) return 0;
  const auto env = train::distributed_env();
  if (!env.active()) {
    const auto config = train::load_config(cmd.config(), cmd.sets());
    train::training_device(config.train, env.local_rank);  // a missing GPU is named before any work
    train::check_sequence_ranks(config, 1);
    auto prepared = train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards);
    const auto summary = train::train_model(prepared.config, *prepared.shards);
    spdlog::info("done: step {} | loss {:.4f} | val_loss {:.4f} | {:.1f}s", summary.final_step, summary.last_loss,
                 summary.last_val_loss, summary.seconds);
    return 0;
  }
  // Under launch / torchrun. Rank 0 trains the tokenizer and builds the token shards; the
  // others wait for it and then find them in the cache.
  const auto config = train::load_config(cmd.config(), cmd.sets());
  train::training_device(config.train, env.local_rank);
  if (env.rank != 0) spdlog::set_level(spdlog::level::warn);
  const auto groups = train::init_process_groups(env, std::chrono::seconds(config.distributed.timeout_s),
                                                 config.distributed.sequence_parallel, config.train.device == "cuda");
  const auto& group = groups.world;
  std::optional<train::Prepared> prepared;
  if (env.rank == 0) prepared.emplace(train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards));
  group->barrier()->wait();
  if (env.rank != 0) prepared.emplace(train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards, false));
  spdlog::info("{} ranks: {} data-parallel replicas of {} sequence ranks", env.world_size, groups.replicas(),
               groups.sequence_size());
  const auto summary = train::train_model(prepared->config, *prepared->shards, groups);
  spdlog::info("done: step {} | loss {:.4f} | val_loss {:.4f} | {:.1f}s", summary.final_step, summary.last_loss,
               summary.last_val_loss, summary.seconds);
  return 0;
}

}  // namespace longnet::tools
