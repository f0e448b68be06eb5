#include "train/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "common/errors.h"
#include "train/config.h"

namespace longnet::train {
namespace {

// Each split must hold one window of data.seq_len + 1 tokens; say what to change, with the numbers.
void check_split_sizes(const RunConfig& c, const data::Shards& shards, const data::Corpus& corpus) {
  const int64_t need = c.data.seq_len + 1;
  const int64_t train = shards.train.size(), val = shards.val.size();
  if (train >= need && val >= need) return;
  const bool one_file = corpus.train.size() == 1 && corpus.val.size() == 1 && corpus.train[0].name == corpus.val[0].name;
  const std::string sizes = "'" + c.data.path + "' gives " + std::to_string(train) + " training and " + std::to_string(val) +
                            " validation tokens, and a window needs data.seq_len + 1 = " + std::to_string(need);
  if (train < need || train + val < 2 * need)
    throw DataError("data.path: " + sizes + " in each split: use a larger corpus or a shorter data.seq_len");
  // The corpus is large enough, the held-out share is not: the fraction that would hold out
  // about twice a window (documents are held out whole, so a folder may need more).
  const auto g = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3g", x);
    return std::string(buf);
  };
  const double enough = std::min(0.5, 2.0 * static_cast<double>(need) / static_cast<double>(train + val));
  throw DataError("data.val_fraction: " + sizes + "; raise data.val_fraction from " + g(c.data.val_fraction) + " to about " +
                  g(enough) + (one_file ? "" : " (a folder holds out whole documents: more documents make the split steadier)") +
                  ", or shorten data.seq_len");
}

}  // namespace

model::ModelOptions model_options(model::ModelOptions options, const data::Tokenizer& tokenizer) {
  options.document_separator = tokenizer.eos_id();
  return options;
}

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
  p.config.model = model_options(p.config.model, *p.tokenizer);
  if (until == Stage::kShards) {
    p.shards.emplace(data::prepare_shards(p.config.data, corpus, *p.tokenizer));
    check_split_sizes(p.config, *p.shards, corpus);
    spdlog::info("data: {} train tokens, {} validation tokens ({:.2f} bytes/token), cache {}", p.shards->train.size(),
                 p.shards->val.size(), static_cast<double>(p.shards->val_bytes) / std::max<int64_t>(1, p.shards->val.size()),
                 p.shards->dir);
  }
  return p;
}

}  // namespace longnet::train
