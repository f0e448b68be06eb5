#include "train/optimizer.h"

#include <torch/torch.h>

#include <cmath>

namespace longnet::train {

std::unique_ptr<torch::optim::AdamW> make_optimizer(model::LanguageModel& model, const TrainOptions& o) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& p : model->parameters()) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto base = torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(o.weight_decay)));
  groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(base.weight_decay(0.0)));
  return std::make_unique<torch::optim::AdamW>(std::move(groups), base);
}

double learning_rate(const TrainOptions& o, int64_t step) {
  const int64_t decay_steps = o.lr_decay_steps > 0 ? o.lr_decay_steps : o.steps;
  if (step < o.warmup_steps) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup_steps + 1);
  if (step >= decay_steps) return o.min_lr;
  const double ratio = static_cast<double>(step - o.warmup_steps) / static_cast<double>(std::max<int64_t>(1, decay_steps - o.warmup_steps));
  const double coeff = 0.5 * (1.0 + std::cos(M_PI * ratio));
  return o.min_lr + coeff * (o.lr - o.min_lr);
}

void set_learning_rate(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups())
    static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

}  // namespace longnet::train
