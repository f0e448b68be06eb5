#include "train/pipeline.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "common/errors.h"
#include "train/config.h"

namespace longnet::train {

Prepared prepare(const std::string& config_path, const std::vector<std::string>& sets, Stage until,
                 bool train_tokenizer_if_missing) {
  Prepared p;
  p.config = load_config(config_path, sets);
  const auto corpus = data::load_corpus(p.config.data);
  if (!std::filesystem::exists(p.config.tokenizer.path)) {
    if (!train_tokenizer_if_missing)
      throw DataError("tokenizer.path: '" + p.config.tokenizer.path + "' does not exist (run `longnet train " + config_path + "` first)");
    data::train_tokenizer(p.config.tokenizer, corpus);
  }
  p.tokenizer.emplace(p.config.tokenizer.path);
  resolve_vocab(p.config, p.tokenizer->vocab_size(), p.config.tokenizer.path);
  if (until == Stage::kShards) {
    p.shards.emplace(data::prepare_shards(p.config.data, corpus, *p.tokenizer));
    spdlog::info("data: {} train tokens, {} validation tokens ({:.2f} bytes/token), cache {}", p.shards->train.size(),
                 p.shards->val.size(), static_cast<double>(p.shards->val_bytes) / std::max<int64_t>(1, p.shards->val.size()),
                 p.shards->dir);
  }
  return p;
}

}  // namespace longnet::train
