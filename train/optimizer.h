#pragma once
// AdamW with decoupled weight decay on matrices only, and the warmup + cosine schedule.
#include <torch/optim/adamw.h>

#include <memory>

#include "model/lm.h"
#include "train/options.h"

namespace longnet::train {

// Two parameter groups: weights with dim >= 2 decay, norms and biases do not (as nanoGPT).
std::unique_ptr<torch::optim::AdamW> make_optimizer(model::LanguageModel& model, const TrainOptions& options);

// Learning rate for optimizer step `step` (0-based): linear warmup over warmup_steps, then
// cosine decay from lr to min_lr at lr_decay_steps (train.steps when 0), then min_lr.
double learning_rate(const TrainOptions& options, int64_t step);

void set_learning_rate(torch::optim::AdamW& optimizer, double lr);

}  // namespace longnet::train
