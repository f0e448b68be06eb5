#pragma once
// Typed options of the trainer (YAML section `train:`) and the whole resolved run config.
#include <cstdint>
#include <string>
#include <vector>

#include "data/options.h"
#include "model/options.h"

namespace longnet::train {

// train.on_nonfinite: what a step whose loss or gradient norm is NaN or infinite does: stop
// the run (no update is made), skip the update (train.max_skips in a row at most), or roll back
// to the last whole checkpoint with the learning rate times train.rollback_lr_factor.
enum class OnNonfinite { kStop, kSkip, kRollback };
inline const std::vector<std::string>& choices(OnNonfinite) {
  static const std::vector<std::string> names = {"stop", "skip", "rollback"};
  return names;
}
inline const std::string& name_of(OnNonfinite v) { return choices(v).at(static_cast<size_t>(v)); }
inline bool parse(const std::string& name, OnNonfinite& out) {
  for (size_t i = 0; i < choices(out).size(); ++i)
    if (choices(out)[i] == name) {
      out = static_cast<OnNonfinite>(i);
      return true;
    }
  return false;
}

struct TrainOptions {
  int64_t steps = 1000;          // optimizer steps
  int64_t grad_accum = 1;        // micro-batches per step
  double lr = 3e-4;              // peak learning rate
  double min_lr = 3e-5;          // floor of the cosine decay
  int64_t warmup_steps = 100;    // linear warmup from 0
  int64_t lr_decay_steps = 0;    // cosine reaches min_lr here; 0: train.steps
  double weight_decay = 0.1;     // decoupled (AdamW), on matrices only
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double grad_clip = 1.0;        // max global grad norm; 0: off
  int64_t log_every = 10;
  int64_t eval_every = 250;      // 0: only at the end
  int64_t eval_batches = 20;     // validation batches per evaluation during training
  double stop_at_val_loss = 0;   // stop (with a checkpoint) at the first evaluation at or below; 0: off
  int64_t ckpt_every = 500;      // 0: only at the end
  int64_t keep_last = 3;         // checkpoints kept
  int64_t seed = 1337;
  int64_t threads = 0;           // intra-op threads; 0: all cores
  std::string device = "cpu";    // cpu | cuda (under launch / torchrun: cuda:LOCAL_RANK)
  model::Precision precision = model::Precision::kFloat32;  // float32 | bfloat16 (autocast, model/precision.h)
  model::CheckpointPolicy activation_checkpointing;  // none | blocks | {every_k: N}
  std::string out_dir = "runs/default";
  bool tensorboard = true;  // TensorBoard event files under <out_dir>/tensorboard/
  std::string init_from;    // a `longnet export` folder whose weights start a new run ("" : random init)
  OnNonfinite on_nonfinite = OnNonfinite::kStop;
  int64_t max_skips = 5;              // skip: this many non-finite steps in a row stop the run
  double rollback_lr_factor = 0.5;    // rollback: the learning rate is multiplied by this each time
  // Tests only, not a YAML key (train_fields does not list it, so no config can set it): the
  // step (1-based) whose gradients and loss are made NaN, once; and a rank that sleeps for
  // stall_ms inside the forward and backward of step stall_at_step (set on that rank only).
  int64_t nonfinite_at_step = 0;
  int64_t stall_at_step = 0, stall_ms = 0;
};

// YAML section `distributed:`; used when the process runs under launch / torchrun.
struct DistributedOptions {
  int64_t sequence_parallel = 1;  // ranks sharing each sequence; world / P data-parallel replicas
  int64_t timeout_s = 300;        // a collective waiting longer on a peer fails the run
  int64_t bucket_mb = 25;         // gradient all-reduce bucket size (MB)
};

// The keys of `train:` and `distributed:`, each listed once (see data_fields in data/options.h).
template <typename O, typename F>
void train_fields(O& o, F&& f) {
  f("steps", o.steps);
  f("grad_accum", o.grad_accum);
  f("lr", o.lr);
  f("min_lr", o.min_lr);
  f("warmup_steps", o.warmup_steps);
  f("lr_decay_steps", o.lr_decay_steps);
  f("weight_decay", o.weight_decay);
  f("beta1", o.beta1);
  f("beta2", o.beta2);
  f("eps", o.eps);
  f("grad_clip", o.grad_clip);
  f("log_every", o.log_every);
  f("eval_every", o.eval_every);
  f("eval_batches", o.eval_batches);
  f("stop_at_val_loss", o.stop_at_val_loss);
  f("ckpt_every", o.ckpt_every);
  f("keep_last", o.keep_last);
  f("seed", o.seed);
  f("threads", o.threads);
  f("device", o.device);
  f("precision", o.precision);
  f("activation_checkpointing", o.activation_checkpointing);
  f("out_dir", o.out_dir);
  f("tensorboard", o.tensorboard);
  f("init_from", o.init_from);
  f("on_nonfinite", o.on_nonfinite);
  f("max_skips", o.max_skips);
  f("rollback_lr_factor", o.rollback_lr_factor);
}

template <typename O, typename F>
void distributed_fields(O& o, F&& f) {
  f("sequence_parallel", o.sequence_parallel);
  f("timeout_s", o.timeout_s);
  f("bucket_mb", o.bucket_mb);
}

struct RunConfig {
  std::string source;  // the YAML file it came from, for messages
  data::DataOptions data;
  data::TokenizerOptions tokenizer;
  model::ModelOptions model;  // model.attention holds the `attention:` section
  TrainOptions train;
  DistributedOptions distributed;
};

}  // namespace longnet::train
