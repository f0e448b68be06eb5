#include "train/trainer.h"

#include <spdlog/spdlog.h>
#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <optional>
#include <thread>

#include "common/errors.h"
#include "data/sampler.h"
#include "model/precision.h"
#include "model/recompute.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/evaluator.h"
#include "train/grad_sync.h"
#include "train/export.h"
#include "train/metrics.h"
#include "train/optimizer.h"
#include "train/runtime.h"

namespace longnet::train {
namespace {

namespace fs = std::filesystem;

std::string format_duration(double seconds) {
  const auto s = static_cast<int64_t>(std::max(0.0, seconds));
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}

// The loss summed over the group.
double all_reduce_loss(c10d::ProcessGroup& group, double loss, const torch::Device& device) {
  std::vector<torch::Tensor> t = {torch::tensor({loss}, torch::TensorOptions().dtype(torch::kDouble).device(device))};
  group.allreduce(t)->wait();
  return t[0].item<double>();
}

}  // namespace

void check_sequence_ranks(const RunConfig& config, int64_t sequence_ranks) {
  const int64_t p = config.distributed.sequence_parallel;
  if (p != sequence_ranks)
    throw ConfigError(fmt::format("{}: distributed.sequence_parallel: {} needs a run of a multiple of {} ranks "
                                  "(longnet launch --nproc {} -- train ..., or torchrun); this one has {} sequence ranks",
                                  config.source, p, p, p, sequence_ranks));
}

TrainSummary train_model(const RunConfig& config, const data::Shards& shards, const ProcessGroups& groups) {
  const auto& opt = config.train;
  const auto& group = groups.world;
  const int64_t rank = groups.rank(), replicas = groups.replicas(), replica = groups.replica();
  const bool lead = rank == 0;
  check_sequence_ranks(config, groups.sequence_size());
  configure_runtime(opt);
  const auto device = training_device(opt, distributed_env().local_rank);
  torch::manual_seed(static_cast<uint64_t>(opt.seed));
  const fs::path out_dir(opt.out_dir);
  const std::string ckpt_dir = (out_dir / "checkpoints").string();

  // Refuse a foreign checkpoint before anything under out_dir is touched.
  const auto latest = latest_checkpoint(ckpt_dir);
  if (latest) {
    const RunConfig saved = parse_config(checkpoint_config(*latest), *latest + "/config.yaml");
    if (model_signature(saved) != model_signature(config))
      throw CheckpointError(*latest + ": written by a model with other model/attention settings than " + config.source +
                            "; use another train.out_dir, or the same model settings to resume");
  }

  model::LanguageModel model(config.model);
  model->to(device);
  model::apply_activation_checkpointing(*model, opt.activation_checkpointing);
  model->set_precision(opt.precision);
  attention::SequenceParallelPtr sp;
  if (groups.sequence) {
    sp = std::make_shared<attention::SequenceParallel>(groups.sequence,
                                                       attention::SequenceParallel::zigzag_split(config.model.attention));
    model::enable_sequence_parallel(*model, sp);
  }
  // Every rank built the same initial weights; dropout masks differ between ranks (rank 0
  // keeps the single-process stream).
  if (rank > 0) torch::manual_seed(static_cast<uint64_t>(opt.seed) + static_cast<uint64_t>(rank));
  auto optimizer = make_optimizer(model, opt);
  TrainState state;
  if (latest) {
    state = load_checkpoint(*latest, model, optimizer.get());
    spdlog::info("resuming from {} (step {})", *latest, state.step);
  } else if (!opt.init_from.empty()) {
    // A new run from exported weights (fine-tuning); a resumed one continues its own.
    init_from_export(opt.init_from, model);
    spdlog::info("initialized the model from {}", opt.init_from);
  }
  // Both splits must hold a window before anything is written (the samplers throw DataError).
  data::WindowSampler sampler(shards.train, config.data.seq_len, config.data.batch_size, static_cast<uint64_t>(opt.seed));
  std::optional<data::Tokenizer> tokenizer;  // data.passkey_fraction's documents are built from it
  std::optional<data::PasskeyBuilder> passkeys;
  if (config.data.passkey_fraction > 0) {
    tokenizer.emplace(config.tokenizer.path);
    passkeys.emplace(*tokenizer);
    sampler.mix_passkeys(&*passkeys, config.data.passkey_fraction, config.data.passkey_short_length,
                         config.data.passkey_reach_length);
  }
  const uint64_t val_seed = static_cast<uint64_t>(opt.seed) ^ 0x5eed5eedULL;
  data::WindowSampler(shards.val, config.data.seq_len, config.data.batch_size, val_seed);
  std::optional<MetricsLog> metrics;
  if (lead) {
    fs::create_directories(out_dir);
    metrics.emplace((out_dir / "metrics.jsonl").string(), latest ? state.step : -1,
                    opt.tensorboard ? (out_dir / "tensorboard").string() : "");
  }
  const int64_t tokens_per_step = config.data.batch_size * config.data.seq_len * opt.grad_accum * replicas;
  spdlog::info("model: {:.2f}M parameters, {} layers, d={}, {} heads, attention={}, {}, {} threads",
               model->num_parameters() / 1e6, config.model.n_layers, config.model.d_model, config.model.n_heads,
               config.model.attention.kind, model::name_of(opt.precision), at::get_num_threads());
  if (opt.precision == model::Precision::kBFloat16 && device.is_cpu() && !model::cpu_has_native_bfloat16())
    spdlog::warn("train.precision is bfloat16, but this CPU has no native bfloat16 (AVX512-BF16 or AMX): its "
                 "products are emulated and a step costs several times what it does with train.precision: float32");

  TrainSummary summary;
  summary.start_step = state.step;
  const auto t_start = std::chrono::steady_clock::now();
  auto t_window = t_start;
  int64_t window_steps = 0;
  double loss = NAN;
  model->train();
  const auto params = model->parameters();
  std::optional<GradientSync> sync;
  if (group) sync.emplace(params, group, config.distributed.bucket_mb << 20);
  // A collective that fails (a peer died, or hung past distributed.timeout_s) ends the run here,
  // before the step's checkpoint, with the ranks that stopped named.
  try {
    int64_t poison_at = opt.nonfinite_at_step;  // tests only (TrainOptions), once
    int64_t skipped_in_a_row = 0;
    // Where this rank is, for the heartbeat's report when a collective times out.
    auto mark = [&](Phase phase) {
      if (groups.heartbeat) groups.heartbeat->at(state.step, phase);
    };
    while (state.step < opt.steps) {
      const int64_t step = state.step;
      mark(Phase::kForwardBackward);
      if (opt.stall_at_step == step + 1) std::this_thread::sleep_for(std::chrono::milliseconds(opt.stall_ms));
      const double lr = learning_rate(opt, step) * state.lr_scale;
      set_learning_rate(*optimizer, lr);
      if (sync) sync->zero();
      else optimizer->zero_grad();
      double step_loss = 0;
      for (int64_t micro = 0; micro < opt.grad_accum; ++micro) {
        if (sync && micro + 1 == opt.grad_accum) sync->arm();  // buckets go out during the last backward
        const int64_t slot = micro * replicas + replica;
        auto batch = sampler.batch(step, slot);
        model::set_attention_dropout(*model, static_cast<uint64_t>(opt.seed), static_cast<uint64_t>(step),
                                     slot * config.data.batch_size);
        batch.tokens = batch.tokens.to(device);
        batch.targets = batch.targets.to(device);
        const double scale = 1.0 / static_cast<double>(batch.targets.numel() * opt.grad_accum * replicas);
        auto l = model::window_loss_sum(*model, sp, batch.tokens, batch.targets) * scale;
        l.backward();
        step_loss += l.item<double>();
      }
      if (sync) {
        mark(Phase::kGradientAllReduce);
        sync->finish();
        step_loss = all_reduce_loss(*group, step_loss, device);
      }
      if (poison_at == step + 1) {
        poison_at = 0;
        step_loss = NAN;
        for (const auto& p : params)
          if (p.grad().defined()) p.grad().fill_(NAN);
      }
      double grad_norm;
      if (opt.grad_clip > 0) {
        grad_norm = torch::nn::utils::clip_grad_norm_(params, opt.grad_clip);
      } else {
        double sq = 0;
        for (const auto& p : params)
          if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
        grad_norm = std::sqrt(sq);
      }
      // train.on_nonfinite. The loss and the norm are the same on every rank (both reduced), so
      // every rank takes the same branch.
      const bool finite = std::isfinite(step_loss) && std::isfinite(grad_norm);
      if (!finite) {
        const std::string what = fmt::format("step {}: loss {}, gradient norm {}", step + 1, step_loss, grad_norm);
        if (opt.on_nonfinite == OnNonfinite::kStop)
          throw Error(fmt::format("training diverged at {} (no update made; lower train.lr or raise train.warmup_steps, "
                                  "or set train.on_nonfinite: skip or rollback)", what));
        if (opt.on_nonfinite == OnNonfinite::kRollback) {
          const auto back = latest_checkpoint(ckpt_dir);
          if (!back)
            throw Error(fmt::format("training diverged at {}: train.on_nonfinite is rollback but {} holds no checkpoint",
                                    what, ckpt_dir));
          const double scale = state.lr_scale * opt.rollback_lr_factor;
          state = load_checkpoint(*back, model, optimizer.get());
          state.lr_scale = scale;
          if (lead) {
            spdlog::warn("{} is not finite: rolled back to {} (step {}), learning rate now x{:.4g}", what, *back,
                         state.step, scale);
            metrics->rewind(state.step);
            metrics->write({{"step", state.step}, {"rollback_from", step + 1}, {"lr_scale", scale}});
          }
          skipped_in_a_row = 0;
          t_window = std::chrono::steady_clock::now();
          window_steps = 0;
          continue;
        }
        ++skipped_in_a_row;
        ++state.skipped;
        if (skipped_in_a_row > opt.max_skips)
          throw Error(fmt::format("training diverged: {} steps in a row were not finite (more than train.max_skips = {}), "
                                  "the last {}", skipped_in_a_row, opt.max_skips, what));
        if (lead) spdlog::warn("{} is not finite: update skipped ({} in a row, {} in all)", what, skipped_in_a_row, state.skipped);
        if (sync) sync->zero();
        else optimizer->zero_grad();
      } else {
        skipped_in_a_row = 0;
        optimizer->step();
      }
      state.step += 1;
      state.tokens_seen += tokens_per_step;
      loss = step_loss;
      ++window_steps;

      const bool last = state.step == opt.steps;
      nlohmann::json record;
      if (state.step % opt.log_every == 0 || last) {
        const auto now = std::chrono::steady_clock::now();
        const double window_s = std::chrono::duration<double>(now - t_window).count();
        const double step_s = window_s / static_cast<double>(window_steps);
        const double tok_s = static_cast<double>(tokens_per_step) / step_s;
        spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.2e} | gnorm {:.3f} | {:.0f} tok/s | {:.1f} ms/step | ETA {}",
                     state.step, opt.steps, loss, lr, grad_norm, tok_s, 1e3 * step_s,
                     format_duration(step_s * static_cast<double>(opt.steps - state.step)));
        record = {{"step", state.step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                  {"tokens_per_s", tok_s}, {"ms_per_step", 1e3 * step_s}, {"tokens_seen", state.tokens_seen}};
        if (state.skipped > 0) record["skipped"] = state.skipped;
        t_window = now;
        window_steps = 0;
      }
      const bool evaluate = (opt.eval_every > 0 && state.step % opt.eval_every == 0) || last;
      double val = NAN;
      if (evaluate) mark(Phase::kEvaluation);
      if (evaluate && (lead || (sp && replica == 0)))  // a sequence-parallel model needs all its ranks
        val = sample_loss(model, shards.val, config.data.seq_len, config.data.batch_size, opt.eval_batches, val_seed,
                          sp);
      if (lead && evaluate) {
        spdlog::info("step {:>6}/{} | val_loss {:.4f} | val_ppl {:.2f}", state.step, opt.steps, val, std::exp(val));
        if (record.is_null()) record = {{"step", state.step}, {"loss", loss}, {"lr", lr}};
        record["val_loss"] = val;
        summary.last_val_loss = val;
        t_window = std::chrono::steady_clock::now();  // keep evaluation out of the tokens/s figure
        window_steps = 0;
      }
      if (lead && !record.is_null()) metrics->write(record);
      // train.stop_at_val_loss: the run ends here, as at its last step (the lead rank decides).
      bool reached = false;
      if (evaluate && opt.stop_at_val_loss > 0 && !last) {
        reached = lead && val <= opt.stop_at_val_loss;
        if (group) reached = all_reduce_loss(*group, reached ? 1.0 : 0.0, device) > 0;
        if (lead && reached)
          spdlog::info("val_loss {:.4f} <= train.stop_at_val_loss {}: stopping at step {}", val, opt.stop_at_val_loss,
                       state.step);
      }
      const bool ends = last || reached;
      if ((opt.ckpt_every > 0 && state.step % opt.ckpt_every == 0) || ends) {
        mark(Phase::kCheckpointBarrier);
        if (group) group->barrier()->wait();  // every rank has finished this step
      }
      if (lead && ((opt.ckpt_every > 0 && state.step % opt.ckpt_every == 0) || ends)) {
        const auto path = save_checkpoint(ckpt_dir, config, model, *optimizer, state, opt.keep_last);
        spdlog::info("saved checkpoint {}", path);
        t_window = std::chrono::steady_clock::now();
        window_steps = 0;
      }
      if (reached) break;
    }
  } catch (const Error&) {
    throw;  // ours: already says what went wrong
  } catch (const std::exception& e) {  // c10::Error, or Gloo's exceptions passed through c10d
    if (!group) throw;
    const auto* c10_error = dynamic_cast<const c10::Error*>(&e);
    std::string what = c10_error ? c10_error->what_without_backtrace() : e.what();
    what = what.substr(0, what.find('\n'));
    const std::string who = groups.heartbeat ? groups.heartbeat->diagnose() : "no heartbeat to tell who stopped";
    throw Error(fmt::format("rank {}: step {} failed across the ranks: {}; {}", rank, state.step + 1, who, what));
  }
  summary.final_step = state.step;
  summary.last_loss = loss;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
  return summary;
}

}  // namespace longnet::train
