#pragma once
// The training loop (DESIGN.md, "The path of one training step"): sample, forward, backward,
// clip, AdamW, schedule, log, evaluate, checkpoint. Resumes from <out_dir>/checkpoints/latest.
#include <string>

#include "data/shards.h"
#include "train/options.h"

namespace longnet::train {

struct TrainSummary {
  int64_t start_step = 0;   // > 0 when resumed
  int64_t final_step = 0;
  double last_loss = 0;
  double last_val_loss = 0;
  double seconds = 0;
};

// config must have model.vocab_size resolved. Throws CheckpointError before writing anything
// when out_dir holds a checkpoint of another model.
TrainSummary train_model(const RunConfig& config, const data::Shards& shards);

}  // namespace longnet::train
