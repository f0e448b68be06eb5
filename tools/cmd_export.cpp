#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "common/atomic_file.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/export.h"
#include "train/pipeline.h"

namespace longnet::tools {

int cmd_export(int argc, char** argv) {
  Command cmd("export", "Write a checkpoint's weights as safetensors, with its config and tokenizer.",
              "Writes OUT/model.safetensors (every parameter in float32, named as the model names them),\n"
              "OUT/config.json (the checkpoint's resolved model and attention settings) and\n"
              "OUT/tokenizer.model. train.init_from: OUT starts a run from these weights. The checkpoint is\n"
              "the latest under train.out_dir unless --checkpoint names one. docs/usage.md lists the names.");
  cmd.add_config();
  cmd.add_sets();
  std::string checkpoint, out;
  int64_t sample_tokens = 0;
  cmd.app().add_option("--checkpoint", checkpoint, "a step_* folder (default: the latest of train.out_dir)");
  cmd.app().add_option("--out", out, "the folder to write")->required();
  cmd.app()
      .add_option("--sample-tokens", sample_tokens,
                  "also write OUT/sample.safetensors: N random tokens (\"tokens\", int64 [1, N]) and longnet's "
                  "float32 logits for them (\"logits\", [1, N, vocab]), to check another implementation against")
      ->check(kPositive);
  if (!cmd.parse(argc, argv)) return 0;
  auto p = train::prepare(cmd.config(), cmd.sets(), train::Stage::kTokenizer, false);
  const std::string ckpt = train::resolve_checkpoint(p.config, checkpoint, "longnet export");
  const auto saved = train::saved_config(ckpt, cmd.sets());
  model::LanguageModel model(train::model_options(saved.model, *p.tokenizer));
  train::load_checkpoint(ckpt, model, nullptr);
  model->eval();
  train::export_model(saved, model, p.config.tokenizer.path, out);
  if (sample_tokens > 0) {
    const int64_t n = std::min(sample_tokens, saved.model.max_seq_len);
    torch::manual_seed(0);
    auto tokens = torch::randint(saved.model.vocab_size, {1, n}, torch::kLong);
    torch::NoGradGuard no_grad;
    auto logits = model->forward(tokens).to(torch::kFloat32);
    data::write_file_atomic(std::filesystem::path(out) / "sample.safetensors",
                            train::safetensors_bytes({{"tokens", tokens}, {"logits", logits}}));
  }
  std::printf("exported %s to %s\n", ckpt.c_str(), out.c_str());
  return 0;
}

}  // namespace longnet::tools
