// longnet bench train: one full training step (forward, backward, clipping, AdamW) of a config's
// model at long sequence lengths, each length in a fresh child process: step time, tokens/s
// and peak RSS. Random tokens: the data pipeline is not what is measured.
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <sstream>

#include "common/errors.h"
#include "model/recompute.h"
#include "tools/cli.h"
#include "tools/bench_util.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/runtime.h"

namespace longnet::tools {
namespace {

using Clock = std::chrono::steady_clock;

std::string checkpointing_name(const model::CheckpointPolicy& p) {
  switch (p.mode) {
    case model::CheckpointPolicy::Mode::kNone: return "none";
    case model::CheckpointPolicy::Mode::kBlocks: return "blocks";
    case model::CheckpointPolicy::Mode::kEveryK: return "every_k " + std::to_string(p.every_k);
  }
  return "?";
}

// Runs in the child: `steps` training steps at sequence length T, batch 1.
nlohmann::json measure_step(const std::string& path, std::vector<std::string> sets, int64_t T, int64_t steps) {
  sets.push_back("data.seq_len=" + std::to_string(T));
  sets.push_back("data.batch_size=1");
  sets.push_back("model.max_seq_len=" + std::to_string(T));
  auto config = train::load_config(path, sets);
  if (config.model.vocab_size == 0) config.model.vocab_size = config.tokenizer.vocab_size;
  const auto& opt = config.train;
  const int threads = train::configure_runtime(opt);
  torch::manual_seed(static_cast<uint64_t>(opt.seed));
  model::LanguageModel model(config.model);
  model::apply_activation_checkpointing(*model, opt.activation_checkpointing);
  model->set_precision(opt.precision);
  model->train();
  auto optimizer = train::make_optimizer(model, opt);
  auto params = model->parameters();
  auto x = torch::randint(config.model.vocab_size, {1, T + 1}, torch::kLong);
  auto tokens = x.narrow(1, 0, T), targets = x.narrow(1, 1, T);
  double step_s = 0, loss = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const auto t0 = Clock::now();
    optimizer->zero_grad();
    auto l = model->loss(tokens, targets);
    l.backward();
    if (opt.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, opt.grad_clip);
    train::set_learning_rate(*optimizer, train::learning_rate(opt, step));
    optimizer->step();
    loss = l.item<double>();
    step_s = std::chrono::duration<double>(Clock::now() - t0).count();
  }
  return {{"T", T}, {"step_s", step_s}, {"tokens_per_s", static_cast<double>(T) / step_s}, {"peak_rss_mb", peak_rss_mb()},
          {"loss", loss}, {"steps", steps}, {"threads", threads}, {"parameters", model->num_parameters()},
          {"n_layers", config.model.n_layers}, {"d_model", config.model.d_model}, {"n_heads", config.model.n_heads},
          {"attention", config.model.attention.kind}, {"activation_checkpointing", checkpointing_name(opt.activation_checkpointing)}};
}

}  // namespace

int bench_train(int argc, char** argv) {
  Command cmd("bench train", "One training step at long context: time, tokens/s, peak RSS.",
              R"(One full training step (forward, backward, gradient clipping, AdamW) of CONFIG's model
(default configs/long_context.yaml) on one sequence of T random tokens, for each length, each in
a fresh process: step time, tokens/s and peak RSS (the whole process, model and optimizer
included). The config's activation checkpointing, model.loss_chunk and model.mlp_chunk apply.)");
  cmd.add_config(/*optional=*/true);
  cmd.add_sets();
  std::vector<int64_t> lengths = {16384, 65536, 262144, 1048576};
  int64_t steps = 1, one_length = 0;
  std::string threads;
  bool json = false;
  add_list(cmd.app(), "--lengths", lengths, "sequence lengths")->capture_default_str();
  cmd.app()
      .add_option("--steps", steps, "steps per length; the last is reported (1: the first step, allocations included)")
      ->check(kPositive)
      ->capture_default_str();
  cmd.app().add_option("--threads", threads, "intra-op threads (default: train.threads, 0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd.app().add_flag("--json", json, "one JSON object per line instead of the table");
  cmd.app().add_option("--one-length", one_length)->group("");  // a child's one measurement
  if (!cmd.parse(argc, argv)) return 0;
  const std::string path = cmd.config().empty() ? "configs/long_context.yaml" : cmd.config();
  auto sets = cmd.sets();
  if (!threads.empty()) sets.push_back("train.threads=" + threads);
  if (one_length > 0) {  // child mode
    std::printf("%s\n", measure_step(path, sets, one_length, steps).dump().c_str());
    return 0;
  }
  // Validate the config once here, so that a bad one fails before any child runs.
  train::load_config(path, sets);
  if (!json)
    std::printf("%-9s %10s %10s %12s %8s %s\n", "T", "step s", "tokens/s", "peak RSS", "loss", "(model, checkpointing)");
  std::fflush(stdout);
  const std::string exe = self_exe();
  for (int64_t T : lengths) {
    std::ostringstream cmd;
    cmd << "'" << exe << "' bench train '" << path << "' --one-length " << T << " --steps " << steps;
    for (const auto& s : sets) cmd << " --set '" << s << "'";
    int rc = 0;
    const auto j = run_child(cmd.str(), rc);
    if (rc != 0 || !j.is_object()) {
      std::fprintf(stderr, "bench train: T=%lld failed (exit status %d)%s\n", static_cast<long long>(T), rc,
                   oom_hint(rc));
      continue;
    }
    if (json) {
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%-9lld %10.2f %10.0f %9.2f GB %8.3f (%lld layers, d=%lld, %s, %s)\n", static_cast<long long>(T),
                  j["step_s"].get<double>(), j["tokens_per_s"].get<double>(), j["peak_rss_mb"].get<double>() / 1024.0,
                  j["loss"].get<double>(), static_cast<long long>(j["n_layers"].get<int64_t>()),
                  static_cast<long long>(j["d_model"].get<int64_t>()), j["attention"].get<std::string>().c_str(),
                  j["activation_checkpointing"].get<std::string>().c_str());
    }
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace longnet::tools
