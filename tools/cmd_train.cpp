#include <spdlog/spdlog.h>

#include <cstdio>

#include "data/errors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/distributed.h"
#include "train/pipeline.h"
#include "train/trainer.h"

namespace longnet::tools {

int cmd_train(int argc, char** argv) {
  const auto args = parse_args("train", argc, argv, {}, {});
  if (args.help) {
    std::puts(R"(usage: longnet train CONFIG.yaml [--set key.path=value ...]

Trains the model described by CONFIG. Missing pieces are made first: the SentencePiece
tokenizer (tokenizer.path) and the token shards (cached under data.cache_dir by content
hash). Writes <train.out_dir>/metrics.jsonl and checkpoints under <train.out_dir>/checkpoints.
Running it again on the same out_dir resumes from checkpoints/latest.)");
    return 0;
  }
  if (args.positional.size() != 1) throw ConfigError("longnet train: expected one CONFIG.yaml argument (see longnet train --help)");
  // N copies of a single-process run would all write the same out_dir: refuse until the
  // trainer splits work over ranks.
  const auto env = train::distributed_env();
  if (env.active())
    throw ConfigError("longnet train: WORLD_SIZE is " + std::to_string(env.world_size) +
                      ", but training over several processes is not implemented yet (sequence and data "
                      "parallelism are an open issue); run it as one process");
  auto prepared = train::prepare(args.positional[0], args.sets, train::Stage::kShards);
  const auto summary = train::train_model(prepared.config, *prepared.shards);
  spdlog::info("done: step {} | loss {:.4f} | val_loss {:.4f} | {:.1f}s", summary.final_step, summary.last_loss,
               summary.last_val_loss, summary.seconds);
  return 0;
}

}  // namespace longnet::tools
