#pragma once
// Training windows drawn from (seed, step, micro-step, rank) alone, so a resumed run sees the
// same batches as a straight run without saving any sampler state; and the sequential
// windows that cover a validation split exactly once.
#include <torch/types.h>

#include <utility>

#include "common/targets.h"
#include "data/passkey.h"
#include "data/shards.h"

namespace longnet::data {

struct Batch {
  torch::Tensor tokens;   // [B, T] int64
  torch::Tensor targets;  // [B, T] int64: tokens shifted left by one; kNoTarget where the next
                          // token is random by construction (a passkey's first appearance)
};

class WindowSampler {
 public:
  // Throws DataError when the shard holds fewer than seq_len + 1 tokens.
  WindowSampler(const TokenShard& shard, int64_t seq_len, int64_t batch_size, uint64_t seed);
  Batch batch(int64_t step, int64_t micro = 0, int64_t rank = 0) const;
  // data.passkey_fraction: each window is, with this probability (drawn like its offset, from
  // the seed and its place in the run), passkey documents instead, end to end: first one of
  // log-uniform length from the shortest possible to the whole window (the reach), then
  // documents of log-uniform lengths from the shortest to `short_length` until the window is
  // full (many retrievals per window, from which a small model learns to copy), each of these
  // begun by the end-of-document token that separates the corpus's documents; each with a
  // key uniform in [10000, 99999] and a depth uniform in [0, 1], but for the first document's
  // depth, u^2 (u uniform): the first document holds the only keys far from their question,
  // and a key near its start is its farthest. The targets of each key's
  // first appearance are kNoTarget: a random key cannot be predicted, and its loss would be
  // gradient noise as large as the answers' signal. `builder` outlives the
  // sampler. Throws ConfigError when seq_len cannot hold a document.
  // reach_length: the first document is at least this long (log-uniform from there to the
  // window), so that more windows hold a key far from its question; 0: from the shortest.
  void mix_passkeys(const PasskeyBuilder* builder, double fraction, int64_t short_length, int64_t reach_length = 0);

 private:
  const TokenShard& shard_;
  int64_t seq_len_, batch_size_;
  uint64_t seed_;
  // [seq_len + 1] tokens, and whether each token is random by construction (not a target).
  std::pair<torch::Tensor, torch::Tensor> passkey_window(uint64_t key) const;
  const PasskeyBuilder* passkeys_ = nullptr;
  double passkey_fraction_ = 0;
  int64_t passkey_short_length_ = 0;
  int64_t passkey_reach_length_ = 0;
};

// The windows [i*T, i*T + T] (targets one further) that cover every token of a split once;
// the last one may be shorter. count() windows, window(i) -> [1, t] tokens and targets.
class SequentialWindows {
 public:
  SequentialWindows(const TokenShard& shard, int64_t seq_len);
  int64_t count() const;
  // Windows [first, first + n) stacked; all must have the full length except possibly the last.
  Batch windows(int64_t first, int64_t n) const;
  int64_t full_windows() const { return (shard_.size() - 1) / seq_len_; }

 private:
  const TokenShard& shard_;
  int64_t seq_len_;
};

}  // namespace longnet::data
