#pragma once
// What every subcommand does first: config -> corpus -> tokenizer (trained when missing)
// -> token shards (built when not cached).
#include <optional>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/shards.h"
#include "data/tokenizer.h"
#include "train/options.h"

namespace longnet::train {

struct Prepared {
  RunConfig config;  // model.vocab_size resolved from the tokenizer
  std::optional<data::Tokenizer> tokenizer;
  std::optional<data::Shards> shards;
};

enum class Stage { kTokenizer, kShards };

// train_tokenizer_if_missing: false makes a missing tokenizer an error (eval).
Prepared prepare(const std::string& config_path, const std::vector<std::string>& sets, Stage until,
                 bool train_tokenizer_if_missing = true);

}  // namespace longnet::train
