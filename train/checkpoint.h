#pragma once
// Checkpoints: one directory per step under <out_dir>/checkpoints/, written to a temporary
// name, fsynced and renamed; `latest` names the newest whole one (DESIGN.md, "Checkpoints").
#include <torch/optim/adamw.h>

#include <optional>
#include <string>
#include <vector>

#include "model/lm.h"
#include "train/options.h"

namespace longnet::train {

constexpr int kCheckpointFormat = 1;

struct TrainState {
  int64_t step = 0;         // optimizer steps completed; also the data position
  int64_t tokens_seen = 0;  // training tokens consumed
  double lr_scale = 1.0;    // the schedule's learning rate times this (lowered by each rollback)
  int64_t skipped = 0;      // updates skipped for a non-finite loss or gradient (train.on_nonfinite)
};

// Writes checkpoint `step` under dir (= <out_dir>/checkpoints), moves `latest` to it and
// removes all but the newest keep_last. Returns the checkpoint's path.
std::string save_checkpoint(const std::string& dir, const RunConfig& config, model::LanguageModel& model,
                            torch::optim::AdamW& optimizer, const TrainState& state, int64_t keep_last);

// The checkpoint `latest` points at under dir, or nullopt when there is none. When that one is
// not whole (checkpoint_problem), the newest whole step_* folder instead, with a warning;
// throws CheckpointError when there is none.
std::optional<std::string> latest_checkpoint(const std::string& dir);

// The checkpoint a command reads: `flag` (its --checkpoint) when given, else the latest under
// <train.out_dir>/checkpoints; throws CheckpointError naming the folder when there is none.
std::string resolve_checkpoint(const RunConfig& config, const std::string& flag, const std::string& command);

// Why checkpoint `path` is not whole ("" when it is): its manifest missing or unreadable, a
// file missing, or a file whose size or checksum differs from the manifest's; names the file.
std::string checkpoint_problem(const std::string& path);

// The resolved config stored in a checkpoint (YAML text). Throws CheckpointError.
std::string checkpoint_config(const std::string& path);

// The model and attention sections as YAML, less what only says how the work is cut
// (model.loss_chunk, model.mlp_chunk): they decide parameter shapes and the computation, so a
// checkpoint resumes only under the same signature.
std::string model_signature(const RunConfig& config);

// The config the commands that rebuild a model from checkpoint `path` (eval, generate, export)
// build it with: the checkpoint's own, with the attention.* keys among `sets` (--set) applied,
// since a kernel has no weights: a model trained with one pattern can be run with another. A
// model.* key of `sets` applies when it leaves the model_signature as it is (how the work is
// cut), and is a ConfigError naming it otherwise (the weights fix the model). Other sections of
// `sets` are CONFIG's, not the model's: ignored here.
RunConfig saved_config(const std::string& path, const std::vector<std::string>& sets);

// Restores model (and optimizer and RNG when given) from checkpoint `path`. Checks the format,
// every file's size and checksum against the manifest, and every parameter's name and shape; throws
// CheckpointError naming the file and what differs.
TrainState load_checkpoint(const std::string& path, model::LanguageModel& model,
                           torch::optim::AdamW* optimizer);

}  // namespace longnet::train
