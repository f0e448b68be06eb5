#pragma once
// SentencePiece tokenizers: training (bpe, unigram, char) and encoding.
#include <memory>
#include <string>
#include <vector>

#include "data/corpus.h"
#include "data/options.h"
#include "data/spm_api.h"

namespace longnet::data {

class Tokenizer {
 public:
  // Loads a SentencePiece model; throws DataError naming the file when it is missing or invalid.
  explicit Tokenizer(const std::string& path);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  std::vector<int> encode(const std::string& text) const;
  std::string decode(const std::vector<int>& ids) const;
  int64_t vocab_size() const;
  int eos_id() const;  // separates documents in the token stream
  const std::string& path() const { return path_; }
  const std::string& serialized() const { return serialized_; }  // the model's bytes

 private:
  std::string path_, serialized_;
  std::unique_ptr<SpmModel> sp_;
};

// Trains a tokenizer on the training split and writes it atomically to options.path.
// Normalisation is the identity, with no dummy prefix, whitespace kept and "\n" a piece of its
// own, so decode(encode(text)) == text and bits per byte are measured on the real bytes. One
// exception, SentencePiece's own: U+2581 (▁) is its mark for a space, and decodes as a space
// (the bytes counted are still the text's own; tests/fuzz/corpus_fuzz.cpp checks the rest).
// bpe and unigram fall back to bytes for characters outside the vocabulary.
void train_tokenizer(const TokenizerOptions& options, const Corpus& corpus);

}  // namespace longnet::data
