#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>

#include "common/errors.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/pipeline.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/distributed.h"
#include "train/evaluator.h"
#include "train/runtime.h"

namespace longnet::tools {

int cmd_eval(int argc, char** argv) {
  Command cmd("eval", "Evaluate a checkpoint of CONFIG on the whole validation split.",
              R"(In windows of data.seq_len tokens: loss (nats/token), perplexity, bits per byte of the
validation text, tokens and tokens/s. Evaluate at another context length with
--set data.seq_len=T (up to the model's max_seq_len).)");
  cmd.add_config();
  cmd.add_sets();
  std::string checkpoint;
  int64_t bucket = 0;
  bool json = false, by_position = false;
  cmd.app().add_option("--checkpoint", checkpoint, "the checkpoint folder (default: <train.out_dir>/checkpoints/latest)");
  cmd.app().add_flag("--json", json, "print one JSON object on stdout");
  auto* by = cmd.app().add_flag("--by-position", by_position,
                                "also the loss by position in the window, over buckets 0-N, N-2N, 2N-4N, ... up to "
                                "data.seq_len: a model that uses its context predicts later tokens better");
  cmd.app()
      .add_option("--bucket", bucket, "the first bucket's width (default: min(1024, data.seq_len / 8))")
      ->check(kPositive)
      ->needs(by);
  if (!cmd.parse(argc, argv)) return 0;
  auto p = train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards, /*train_tokenizer_if_missing=*/false);
  std::string ckpt;
  if (!checkpoint.empty()) {
    ckpt = checkpoint;
  } else {
    const auto latest = train::latest_checkpoint(p.config.train.out_dir + "/checkpoints");
    if (!latest)
      throw CheckpointError(p.config.train.out_dir + "/checkpoints: no checkpoint (train first: longnet train " +
                            cmd.config() + ", or pass --checkpoint DIR)");
    ckpt = *latest;
  }
  // The model is rebuilt from the checkpoint's own resolved config; data comes from CONFIG.
  const auto saved = train::parse_config(train::checkpoint_config(ckpt), ckpt + "/config.yaml");
  if (saved.model.vocab_size != p.config.model.vocab_size)
    throw CheckpointError(ckpt + ": model vocabulary " + std::to_string(saved.model.vocab_size) + " differs from the " +
                          std::to_string(p.config.model.vocab_size) + " pieces of tokenizer '" + p.config.tokenizer.path + "'");
  train::configure_runtime(p.config.train);
  model::LanguageModel model(saved.model);
  model->to(train::training_device(p.config.train, train::distributed_env().local_rank));
  train::load_checkpoint(ckpt, model, nullptr);
  model->set_precision(p.config.train.precision);  // CONFIG's: --set train.precision=float32 scores in full precision
  std::vector<int64_t> edges;
  if (by_position) edges = train::position_edges(p.config.data.seq_len, bucket);
  if (p.config.data.seq_len > saved.model.max_seq_len)
    throw ConfigError("longnet eval: data.seq_len " + std::to_string(p.config.data.seq_len) + " exceeds the model.max_seq_len " +
                      std::to_string(saved.model.max_seq_len) + " of " + ckpt + " (its position tables end there)");
  const auto r = train::evaluate_split(model, p.shards->val, p.config.data.seq_len, p.config.data.batch_size,
                                       p.shards->val_bytes, edges);
  if (json) {
    const nlohmann::json j = {{"checkpoint", ckpt}, {"loss", r.loss}, {"ppl", r.ppl}, {"bits_per_byte", r.bits_per_byte},
                              {"tokens", r.tokens}, {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds},
                              {"seq_len", p.config.data.seq_len},
                              {"precision", model::name_of(p.config.train.precision)}};
    nlohmann::json out = j;
    if (!edges.empty()) {
      out["by_position"] = nlohmann::json::array();
      for (const auto& b : r.by_position)
        out["by_position"].push_back({{"begin", b.begin}, {"end", b.end}, {"loss", b.loss}, {"tokens", b.tokens}});
    }
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("checkpoint     %s\nval loss       %.4f nats/token\nperplexity     %.3f\nbits per byte  %.4f\n"
                "tokens         %lld\ntokens/s       %.0f\n",
                ckpt.c_str(), r.loss, r.ppl, r.bits_per_byte, static_cast<long long>(r.tokens), r.tokens_per_s);
    if (!edges.empty()) {
      std::printf("\n%-17s %10s %12s %10s\n", "positions", "loss", "perplexity", "tokens");
      for (const auto& b : r.by_position) {
        const std::string range = std::to_string(b.begin) + "-" + std::to_string(b.end);
        std::printf("%-17s %10.4f %12.3f %10lld\n", range.c_str(), b.loss, std::exp(b.loss), static_cast<long long>(b.tokens));
      }
    }
  }
  return 0;
}

}  // namespace longnet::tools
