#pragma once
// Validation: the whole split once (longnet eval), or a fixed sample of windows (during training).
#include <cstdint>
#include <functional>
#include <vector>

#include "data/passkey.h"
#include "data/shards.h"
#include "model/lm.h"

namespace longnet::train {

// Loss over the targets at positions [begin, end) of their window (0: the window's first target).
struct PositionBucket {
  int64_t begin = 0, end = 0;
  double loss = 0;     // mean nats per token
  int64_t tokens = 0;
};

// Bucket edges 0, first, 2 first, 4 first, ... up to seq_len; first = 0 picks
// min(1024, seq_len / 8) (at least 1): 0-1K, 1K-2K, 2K-4K, ... for long contexts.
std::vector<int64_t> position_edges(int64_t seq_len, int64_t first = 0);

struct EvalResult {
  double loss = 0;           // mean cross-entropy per token, nats
  double ppl = 0;            // exp(loss)
  double bits_per_byte = 0;  // total bits / UTF-8 bytes of the split's text (0 if unknown)
  int64_t tokens = 0;        // tokens predicted
  double tokens_per_s = 0;
  double seconds = 0;
  std::vector<PositionBucket> by_position;  // when edges were given
};

// Every token of the split predicted once, in windows of seq_len (the last may be shorter).
// With position edges, also the loss per bucket of position within the window.
EvalResult evaluate_split(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                          int64_t batch_size, int64_t split_bytes, const std::vector<int64_t>& position_edges = {});

// Mean loss over n_batches fixed random windows of the split (the same windows every call).
// With `sp` (a sequence-parallel model), every rank of sp's group calls it and gets the mean
// over the whole windows.
double sample_loss(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                   int64_t batch_size, int64_t n_batches, uint64_t seed,
                   const attention::SequenceParallelPtr& sp = nullptr);

// Perplexity by context length (longnet eval --lengths). The split's tokens are cut into blocks
// of the longest length; at each length L the model sees, for every block, the L tokens ending
// at the block's end and is scored on its last `scored` targets (scored <= the shortest length).
// Every length thus predicts the same tokens, with L - scored to L - 1 tokens of context before
// them. With `sp`, every rank of its group calls it and each window runs across them.
struct LengthResult {
  int64_t length = 0;
  double loss = 0;           // mean nats per scored token
  double ppl = 0;
  double bits_per_byte = 0;  // the split's mean bytes per token times the scored tokens
  int64_t tokens = 0;        // scored tokens (the same at every length)
  double seconds = 0;
};
std::vector<LengthResult> evaluate_lengths(model::LanguageModel& model, const data::TokenShard& shard,
                                           const std::vector<int64_t>& lengths, int64_t scored, int64_t batch_size,
                                           double bytes_per_token, const attention::SequenceParallelPtr& sp = nullptr);

// Passkey retrieval (longnet eval --passkey): for every (length, depth), `trials` documents of
// `length` tokens the model sees (the answer's last token is the target of the last position)
// with keys from data::passkey_key(seed, ...); a trial passes when the argmax at every answer
// position is the answer's next token (teacher forcing: the same as greedy decoding of the
// answer, in one forward pass).
struct PasskeyCell {
  int64_t length = 0;
  double depth = 0;
  int64_t passed = 0, trials = 0;
  int64_t tokens_right = 0, answer_tokens = 0;  // the answer's tokens predicted right, of all trials
  int64_t first_right = 0;  // trials whose first answer token is right: the key found, whatever its copy
  double accuracy() const { return share(passed, trials); }
  // The share of answer tokens right: progress that shows before whole keys pass.
  double token_accuracy() const { return share(tokens_right, answer_tokens); }
  // The share of trials whose first answer token is right. Predicting it needs the key sentence
  // found across the filler (reach); the tokens after it need the key copied in order, a local
  // skill: a model with the reach and a faulty copy has this near 1 and whole keys below it.
  double first_token_accuracy() const { return share(first_right, trials); }

 private:
  static double share(int64_t part, int64_t whole) {
    return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
  }
};
std::vector<PasskeyCell> evaluate_passkey(model::LanguageModel& model, const data::PasskeyBuilder& builder,
                                          const std::vector<int64_t>& lengths, const std::vector<double>& depths,
                                          int64_t trials, uint64_t seed, int64_t batch_size);
// The same with any scorer: logits_at(tokens [B, L], positions [n]) -> [B, n, V] (the model's
// LanguageModelImpl::logits_at; a test's oracle).
using LogitsAt = std::function<torch::Tensor(const torch::Tensor& tokens, const torch::Tensor& positions)>;
std::vector<PasskeyCell> evaluate_passkey_with(const LogitsAt& logits_at, const data::PasskeyBuilder& builder,
                                          const std::vector<int64_t>& lengths, const std::vector<double>& depths,
                                          int64_t trials, uint64_t seed, int64_t batch_size);

}  // namespace longnet::train
