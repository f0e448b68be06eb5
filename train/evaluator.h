#pragma once
// Validation: the whole split once (longnet eval), or a fixed sample of windows (during training).
#include <cstdint>
#include <vector>

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

}  // namespace longnet::train
