#pragma once
// The raw text corpus and its train/validation split.
#include <cstdint>
#include <string>
#include <vector>

#include "data/options.h"

namespace longnet::data {

struct Document {
  std::string name;  // path relative to data.path (the file name for a single file)
  std::string text;
};

struct Corpus {
  std::vector<Document> train, val;
  std::string fingerprint;  // hash of names, contents and the split rule

  int64_t train_bytes() const;
  int64_t val_bytes() const;
};

// Reads data.path. A single file is split by bytes: the last val_fraction is validation
// (as nanoGPT splits tinyshakespeare). A folder holds out whole documents: a document is
// validation when a hash of its relative path falls below val_fraction, so the split does not
// change when other documents are added. Throws DataError naming the path when it is missing,
// empty or holds no .txt file.
Corpus load_corpus(const DataOptions& options);

}  // namespace longnet::data
