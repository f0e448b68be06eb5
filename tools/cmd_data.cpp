#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "common/errors.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "train/config.h"
#include "train/pipeline.h"

namespace longnet::tools {

int cmd_tokenizer(int argc, char** argv) {
  Command cmd("tokenizer", "Train the SentencePiece tokenizer of CONFIG.",
              "Trains the tokenizer described by CONFIG's tokenizer section (type bpe, unigram or char;\n"
              "vocab_size) on the training split of data.path and writes it to tokenizer.path.");
  cmd.add_config();
  cmd.add_sets();
  bool force = false;
  cmd.app().add_flag("--force", force, "train it again even when tokenizer.path exists");
  if (!cmd.parse(argc, argv)) return 0;
  if (force) {
    // Validate first, and keep the old tokenizer until the new one is written.
    const auto config = train::load_config(cmd.config(), cmd.sets());
    const std::string old = config.tokenizer.path + ".old";
    const bool had = std::filesystem::exists(config.tokenizer.path);
    if (had) std::filesystem::rename(config.tokenizer.path, old);
    try {
      train::prepare(cmd.config(), cmd.sets(), train::Stage::kTokenizer);
    } catch (...) {
      if (had) std::filesystem::rename(old, config.tokenizer.path);
      throw;
    }
    if (had) std::filesystem::remove(old);
    return 0;
  }
  auto p = train::prepare(cmd.config(), cmd.sets(), train::Stage::kTokenizer);
  spdlog::info("tokenizer {}: {} pieces", p.config.tokenizer.path, p.tokenizer->vocab_size());
  return 0;
}

int cmd_prepare(int argc, char** argv) {
  Command cmd("prepare", "Tokenize the corpus of CONFIG into cached token shards.",
              "Writes token shards under data.cache_dir, keyed by a hash of the corpus and the tokenizer,\n"
              "so that training starts at once next time; prints their folder. Trains the tokenizer first\n"
              "when tokenizer.path does not exist.");
  cmd.add_config();
  cmd.add_sets();
  if (!cmd.parse(argc, argv)) return 0;
  auto p = train::prepare(cmd.config(), cmd.sets(), train::Stage::kShards);
  std::printf("%s\n", p.shards->dir.c_str());
  return 0;
}

}  // namespace longnet::tools
