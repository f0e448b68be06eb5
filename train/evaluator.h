#pragma once
// Validation: the whole split once (longnet eval), or a fixed sample of windows (during training).
#include <cstdint>

#include "data/shards.h"
#include "model/lm.h"

namespace longnet::train {

struct EvalResult {
  double loss = 0;           // mean cross-entropy per token, nats
  double ppl = 0;            // exp(loss)
  double bits_per_byte = 0;  // total bits / UTF-8 bytes of the split's text (0 if unknown)
  int64_t tokens = 0;        // tokens predicted
  double tokens_per_s = 0;
  double seconds = 0;
};

// Every token of the split predicted once, in windows of seq_len (the last may be shorter).
EvalResult evaluate_split(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                          int64_t batch_size, int64_t split_bytes);

// Mean loss over n_batches fixed random windows of the split (the same windows every call).
double sample_loss(model::LanguageModel& model, const data::TokenShard& shard, int64_t seq_len,
                   int64_t batch_size, int64_t n_batches, uint64_t seed);

}  // namespace longnet::train
