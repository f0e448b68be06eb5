#pragma once
// The raw corpus (text and JSONL files) and its train/validation split.
#include <cstdint>
#include <string>
#include <vector>

#include "data/options.h"

namespace longnet::data {

struct Document {
  std::string name;  // path relative to data.path (the file name for a single file), ":line" added for JSONL
  std::string text;
};

struct Corpus {
  std::vector<Document> train, val;
  std::string fingerprint;  // hash of names, contents and the split rule

  int64_t train_bytes() const;
  int64_t val_bytes() const;
};

// Reads data.path. A single text file is split by bytes: the last val_fraction is validation
// (as nanoGPT splits tinyshakespeare). Otherwise whole documents are held out: the files of a
// folder (a .txt file is one document, a .jsonl file one per line, data.format says which are
// read) or the lines of one JSONL file; a document is validation when a hash of its name
// (relative path, ":line" for JSONL) falls below val_fraction, so the split does not change when
// other documents are added. Throws DataError naming the path (and line) when it is missing,
// empty, holds no file of its format, has a bad JSONL line (unless data.skip_bad_lines) or too
// few documents for both splits.
Corpus load_corpus(const DataOptions& options);

}  // namespace longnet::data
