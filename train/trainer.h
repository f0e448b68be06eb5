#pragma once
// The training loop (DESIGN.md, "The path of one training step"): sample, forward, backward,
// clip, AdamW, schedule, log, evaluate, checkpoint. Resumes from <out_dir>/checkpoints/latest.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

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
//
// With a process group of W ranks the run is data parallel: rank r's micro-batch m is the
// window set (step, m * W + r), so W ranks with grad_accum A see exactly the batches of one
// process with grad_accum A * W; gradients are summed over the ranks in one flat all-reduce
// (with the loss) and the loss is the mean over every token of the global batch. Rank 0 alone
// evaluates, logs and writes metrics and checkpoints (after a barrier: no checkpoint of a step
// that a rank did not finish); the checkpoints are those of a single-process run.
TrainSummary train_model(const RunConfig& config, const data::Shards& shards,
                         const c10::intrusive_ptr<c10d::ProcessGroup>& group = {});

}  // namespace longnet::train
