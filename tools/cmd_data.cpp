#include <spdlog/spdlog.h>

#include <cstdio>
#include <filesystem>

#include "common/errors.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/config.h"
#include "train/pipeline.h"

namespace longnet::tools {

int cmd_tokenizer(int argc, char** argv) {
  const auto args = parse_args("tokenizer", argc, argv, {}, {"force"});
  if (args.help) {
    std::puts(R"(usage: longnet tokenizer CONFIG.yaml [--force] [--set key.path=value ...]

Trains the SentencePiece tokenizer described by CONFIG's tokenizer section (type bpe, unigram
or char; vocab_size) on the training split of data.path and writes it to tokenizer.path.
An existing tokenizer is kept unless --force is given.)");
    return 0;
  }
  if (args.positional.size() != 1) throw ConfigError("longnet tokenizer: expected one CONFIG.yaml argument");
  if (args.flags.count("force")) {
    // Validate first, and keep the old tokenizer until the new one is written.
    const auto config = train::load_config(args.positional[0], args.sets);
    const std::string old = config.tokenizer.path + ".old";
    const bool had = std::filesystem::exists(config.tokenizer.path);
    if (had) std::filesystem::rename(config.tokenizer.path, old);
    try {
      train::prepare(args.positional[0], args.sets, train::Stage::kTokenizer);
    } catch (...) {
      if (had) std::filesystem::rename(old, config.tokenizer.path);
      throw;
    }
    if (had) std::filesystem::remove(old);
    return 0;
  }
  auto p = train::prepare(args.positional[0], args.sets, train::Stage::kTokenizer);
  spdlog::info("tokenizer {}: {} pieces", p.config.tokenizer.path, p.tokenizer->vocab_size());
  return 0;
}

int cmd_prepare(int argc, char** argv) {
  const auto args = parse_args("prepare", argc, argv, {}, {});
  if (args.help) {
    std::puts(R"(usage: longnet prepare CONFIG.yaml [--set key.path=value ...]

Tokenizes the corpus (data.path) into token shards under data.cache_dir, keyed by a hash of
the corpus and the tokenizer, so that training starts at once next time. Trains the tokenizer
first when tokenizer.path does not exist.)");
    return 0;
  }
  if (args.positional.size() != 1) throw ConfigError("longnet prepare: expected one CONFIG.yaml argument");
  auto p = train::prepare(args.positional[0], args.sets, train::Stage::kShards);
  std::printf("%s\n", p.shards->dir.c_str());
  return 0;
}

}  // namespace longnet::tools
