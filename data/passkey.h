#pragma once
// Synthetic passkey documents (Mohtashami & Jaggi 2023, "Landmark Attention"; the probe LongLoRA
// and most long-context papers since report): a task line, filler sentences, the key sentence
// "The pass key is K. Remember it. K is the pass key." at a chosen depth in the filler, more
// filler, the question "What is the pass key? The pass key is" and the answer " K", K a 5-digit
// number. `longnet eval --passkey` scores them; data.passkey_fraction mixes them into training.
//
// Each piece is tokenized on its own with the model's tokenizer and the pieces' ids joined, so a
// document of L tokens is exactly L tokens and the key sits where it was put; the key's tokens
// in its sentence are the answer's. The filler is its
// sentence's ids repeated and cut at the token where the length is reached.
#include <cstdint>
#include <string>
#include <vector>

#include "data/tokenizer.h"

namespace longnet::data {

struct PasskeyDocument {
  std::vector<int> tokens;   // the document: `length` tokens ending with the answer
  int64_t answer_begin = 0;  // tokens[answer_begin, length) are the answer " K"
  int64_t key_begin = 0;     // the key sentence's first token
  int64_t key_at = 0;        // the key's first appearance: as many tokens as the answer, random,
                             //   so not predictable
  int64_t filler_before = 0; // filler tokens between the task line and the key sentence
  int64_t filler = 0;        // filler tokens in all
  int key = 0;
};

class PasskeyBuilder {
 public:
  explicit PasskeyBuilder(const Tokenizer& tokenizer);
  // length: the document's tokens; depth in [0, 1]: the share of the filler before the key
  // sentence (rounded to a token); key in [10000, 99999]. Throws std::invalid_argument when
  // `length` cannot hold the fixed pieces and one filler token (min_length()).
  PasskeyDocument build(int64_t length, double depth, int key) const;
  int64_t min_length() const;  // enough for any key
  int separator() const;        // the tokenizer's end-of-document token, which separates documents

 private:
  std::vector<int> key_sentence(const std::vector<int>& key) const;

  const Tokenizer& tokenizer_;
  std::vector<int> task_, filler_, question_, key_parts_[3];
};

// Trial `trial` of cell (length_index, depth_index) under `seed`: a key uniform in [10000, 99999].
int passkey_key(uint64_t seed, int64_t length_index, int64_t depth_index, int64_t trial);
// The key a 64-bit hash picks: 10000 + hash mod 90000.
int passkey_of_hash(uint64_t hash);

}  // namespace longnet::data
