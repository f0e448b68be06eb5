#include "data/passkey.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "common/hash.h"

namespace longnet::data {
namespace {

const char* const kTask =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will quiz you "
    "about the important information there.\n";
const char* const kFiller = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. ";
const char* const kQuestion = "What is the pass key? The pass key is";

// The key sentence "The pass key is K. Remember it. K is the pass key. " around the key's
// tokens, which are the answer's (" K") each time it appears: the model copies exactly what it
// must answer.
const char* const kKeyParts[3] = {"The pass key is", ". Remember it.", " is the pass key. "};

// A 5-digit key after a space is at most 6 tokens: every character is a piece or a byte.
constexpr int64_t kMaxKeyTokens = 6;

}  // namespace

PasskeyBuilder::PasskeyBuilder(const Tokenizer& tokenizer)
    : tokenizer_(tokenizer), task_(tokenizer.encode(kTask)), filler_(tokenizer.encode(kFiller)),
      question_(tokenizer.encode(kQuestion)) {
  for (int i = 0; i < 3; ++i) key_parts_[i] = tokenizer.encode(kKeyParts[i]);
}

std::vector<int> PasskeyBuilder::key_sentence(const std::vector<int>& key) const {
  std::vector<int> s = key_parts_[0];
  s.insert(s.end(), key.begin(), key.end());
  s.insert(s.end(), key_parts_[1].begin(), key_parts_[1].end());
  s.insert(s.end(), key.begin(), key.end());
  s.insert(s.end(), key_parts_[2].begin(), key_parts_[2].end());
  return s;
}

int PasskeyBuilder::separator() const { return tokenizer_.eos_id(); }

int64_t PasskeyBuilder::min_length() const {
  int64_t fixed = static_cast<int64_t>(task_.size() + question_.size());
  for (const auto& part : key_parts_) fixed += static_cast<int64_t>(part.size());
  return fixed + 3 * kMaxKeyTokens + 1;  // the key twice in its sentence, once as the answer; a filler token
}

PasskeyDocument PasskeyBuilder::build(int64_t length, double depth, int key) const {
  if (!(depth >= 0.0 && depth <= 1.0)) throw std::invalid_argument("depth " + std::to_string(depth) + " is outside [0, 1]");
  const auto answer = tokenizer_.encode(" " + std::to_string(key));
  const auto sentence = key_sentence(answer);
  const int64_t fixed = static_cast<int64_t>(task_.size() + sentence.size() + question_.size() + answer.size());
  const int64_t filler = length - fixed;
  if (filler < 1)
    throw std::invalid_argument("a passkey document of " + std::to_string(length) + " tokens cannot hold its " +
                                std::to_string(fixed) + " tokens of task, key, question and answer (at least " +
                                std::to_string(min_length()) + " tokens with this tokenizer)");
  PasskeyDocument d;
  d.key = key;
  d.filler = filler;
  d.filler_before = std::clamp<int64_t>(std::llround(depth * static_cast<double>(filler)), 0, filler);
  d.tokens.reserve(static_cast<size_t>(length));
  auto add_filler = [&](int64_t from, int64_t to) {  // filler tokens [from, to) of the endless repetition
    for (int64_t i = from; i < to; ++i) d.tokens.push_back(filler_[static_cast<size_t>(i) % filler_.size()]);
  };
  d.tokens.insert(d.tokens.end(), task_.begin(), task_.end());
  add_filler(0, d.filler_before);
  d.key_begin = static_cast<int64_t>(d.tokens.size());
  d.key_at = d.key_begin + static_cast<int64_t>(key_parts_[0].size());
  d.tokens.insert(d.tokens.end(), sentence.begin(), sentence.end());
  add_filler(d.filler_before, filler);
  d.tokens.insert(d.tokens.end(), question_.begin(), question_.end());
  d.answer_begin = static_cast<int64_t>(d.tokens.size());
  d.tokens.insert(d.tokens.end(), answer.begin(), answer.end());
  return d;
}

int passkey_key(uint64_t seed, int64_t length_index, int64_t depth_index, int64_t trial) {
  const uint64_t h = mix64(seed ^ mix64(static_cast<uint64_t>(length_index) ^
                                        mix64(static_cast<uint64_t>(depth_index) ^ mix64(static_cast<uint64_t>(trial)))));
  return passkey_of_hash(h);
}

int passkey_of_hash(uint64_t hash) { return 10000 + static_cast<int>(hash % 90000); }

}  // namespace longnet::data
