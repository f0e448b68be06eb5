#pragma once
// The training loop (DESIGN.md, "The path of one training step"): sample, forward, backward,
// clip, AdamW, schedule, log, evaluate, checkpoint. Resumes from <out_dir>/checkpoints/latest.
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

#include <string>

#include "data/shards.h"
#include "train/distributed.h"
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
// With W ranks in groups of P sequence ranks the run has R = W / P data-parallel replicas:
// replica d's micro-batch m is the window set (step, m * R + d), so R replicas with grad_accum
// A see exactly the batches of one process with grad_accum A * R; the P ranks of a replica each
// take their rows of those windows (attention runs across them, see attention/cross_rank.h).
// Gradients are summed over all ranks (with the loss) and the loss is the mean over every
// token of the global batch. The ranks of replica 0 evaluate; rank 0 alone logs and writes
// metrics and checkpoints (after a barrier: no checkpoint of a step that a rank did not
// finish); the checkpoints are those of a single-process run and resume under any W and P.
TrainSummary train_model(const RunConfig& config, const data::Shards& shards, const ProcessGroups& groups = {});

// Throws ConfigError unless the run's sequence ranks are distributed.sequence_parallel (a
// single process has 1): train_model's first check, callable before the data is prepared.
void check_sequence_ranks(const RunConfig& config, int64_t sequence_ranks);

}  // namespace longnet::train
