#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <cstdio>

#include "data/errors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/pipeline.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/evaluator.h"
#include "train/runtime.h"

namespace longnet::tools {

int cmd_eval(int argc, char** argv) {
  const auto args = parse_args("eval", argc, argv, {"checkpoint"}, {"json"});
  if (args.help) {
    std::puts(R"(usage: longnet eval CONFIG.yaml [--checkpoint DIR] [--json] [--set key.path=value ...]

Evaluates a checkpoint (default: <train.out_dir>/checkpoints/latest) on the whole validation
split, in windows of data.seq_len tokens: loss (nats/token), perplexity, bits per byte of the
validation text, tokens and tokens/s. --json prints one JSON object on stdout.)");
    return 0;
  }
  if (args.positional.size() != 1) throw ConfigError("longnet eval: expected one CONFIG.yaml argument (see longnet eval --help)");
  auto p = train::prepare(args.positional[0], args.sets, train::Stage::kShards, /*train_tokenizer_if_missing=*/false);
  std::string ckpt;
  if (args.values.count("checkpoint")) {
    ckpt = args.values.at("checkpoint");
  } else {
    const auto latest = train::latest_checkpoint(p.config.train.out_dir + "/checkpoints");
    if (!latest)
      throw CheckpointError(p.config.train.out_dir + "/checkpoints: no checkpoint (train first: longnet train " +
                            args.positional[0] + ", or pass --checkpoint DIR)");
    ckpt = *latest;
  }
  // The model is rebuilt from the checkpoint's own resolved config; data comes from CONFIG.
  const auto saved = train::parse_config(train::checkpoint_config(ckpt), ckpt + "/config.yaml");
  if (saved.model.vocab_size != p.config.model.vocab_size)
    throw CheckpointError(ckpt + ": model vocabulary " + std::to_string(saved.model.vocab_size) + " differs from the " +
                          std::to_string(p.config.model.vocab_size) + " pieces of tokenizer '" + p.config.tokenizer.path + "'");
  train::configure_runtime(p.config.train);
  model::LanguageModel model(saved.model);
  train::load_checkpoint(ckpt, model, nullptr);
  const auto r = train::evaluate_split(model, p.shards->val, p.config.data.seq_len, p.config.data.batch_size, p.shards->val_bytes);
  if (args.flags.count("json")) {
    const nlohmann::json j = {{"checkpoint", ckpt}, {"loss", r.loss}, {"ppl", r.ppl}, {"bits_per_byte", r.bits_per_byte},
                              {"tokens", r.tokens}, {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds},
                              {"seq_len", p.config.data.seq_len}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("checkpoint     %s\nval loss       %.4f nats/token\nperplexity     %.3f\nbits per byte  %.4f\n"
                "tokens         %lld\ntokens/s       %.0f\n",
                ckpt.c_str(), r.loss, r.ppl, r.bits_per_byte, static_cast<long long>(r.tokens), r.tokens_per_s);
  }
  return 0;
}

}  // namespace longnet::tools
