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

// `options` (a config's or a checkpoint's model) with what its tokenizer decides: the id that
// separates documents (model.document_mask), the tokenizer's end-of-document token.
model::ModelOptions model_options(model::ModelOptions options, const data::Tokenizer& tokenizer);

// train_tokenizer_if_missing: false makes a missing tokenizer an error (eval); the config's
// model options come through model_options.
Prepared prepare(const std::string& config_path, const std::vector<std::string>& sets, Stage until,
                 bool train_tokenizer_if_missing = true);

}  // namespace longnet::train
