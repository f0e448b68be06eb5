// End-to-end training on a tiny model: metrics, checkpoints, resume, and refusals.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "common/atomic_file.h"
#include "common/errors.h"
#include "model/lm.h"
#include "tests/support/support.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/optimizer.h"
#include "train/distributed.h"
#include "train/pipeline.h"
#include "train/trainer.h"

namespace longnet::testing {
namespace {

namespace fs = std::filesystem;

class TrainerTest : public SeededTest {
 protected:
  void SetUp() override {
    SeededTest::SetUp();
    write_text(dir.path() / "corpus.txt", sample_text(150));
    config_path = dir.str("tiny.yaml");
    write_text(config_path, "data:\n  path: " + dir.str("corpus.txt") + "\n  seq_len: 24\n  batch_size: 4\n  cache_dir: " +
                                dir.str("cache") + "\ntokenizer:\n  path: " + dir.str("char.model") +
                                "\n  type: char\nmodel:\n  n_layers: 2\n  d_model: 32\n  n_heads: 2\n"
                                "attention:\n  block_size: 16\n"
                                "train:\n  steps: 12\n  lr: 3.0e-3\n  warmup_steps: 2\n  lr_decay_steps: 12\n"
                                "  log_every: 1\n  eval_every: 4\n  eval_batches: 2\n  ckpt_every: 4\n  keep_last: 2\n"
                                "  threads: 1\n");
  }

  // Trains with the tiny config and the given overrides; returns the run's out_dir.
  train::TrainSummary run(const std::string& out, std::vector<std::string> sets = {}) {
    sets.push_back("train.out_dir=" + dir.str(out));
    auto p = train::prepare(config_path, sets, train::Stage::kShards);
    return train::train_model(p.config, *p.shards);
  }

  // The same with the gradients and loss of step `at` made NaN (the tests-only hook).
  train::TrainSummary run_with_nan(const std::string& out, int64_t at, std::vector<std::string> sets = {}) {
    sets.push_back("train.out_dir=" + dir.str(out));
    auto p = train::prepare(config_path, sets, train::Stage::kShards);
    p.config.train.nonfinite_at_step = at;
    return train::train_model(p.config, *p.shards);
  }

  nlohmann::json state_of(const std::string& out, const std::string& step) {
    return nlohmann::json::parse(data::read_file(dir.path() / out / "checkpoints" / step / "state.json"));
  }

  std::vector<nlohmann::json> metrics(const std::string& out) {
    std::vector<nlohmann::json> rows;
    std::ifstream in(dir.path() / out / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    return rows;
  }

  TempDir dir;
  std::string config_path;
};

TEST_F(TrainerTest, LossFallsAndMetricsHaveTheDocumentedFields) {
  auto s = run("a", {"train.steps=40", "train.lr_decay_steps=40", "train.eval_every=10"});
  auto rows = metrics("a");
  ASSERT_EQ(rows.size(), 40u);
  for (const auto& r : rows)
    for (const char* key : {"step", "loss", "lr", "tokens_per_s"}) EXPECT_TRUE(r.contains(key)) << key << " in " << r.dump();
  EXPECT_TRUE(rows[9].contains("val_loss"));
  EXPECT_FALSE(rows[8].contains("val_loss"));
  EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>() - 0.5);
  EXPECT_EQ(s.final_step, 40);
}

// train.stop_at_val_loss ends the run at the first evaluation at or below the target, with a
// checkpoint there; up to it, the run is the one without the target (same schedule).
TEST_F(TrainerTest, StopAtValLossEndsAtTheFirstEvaluationThatReachesIt) {
  run("full", {"train.steps=40", "train.lr_decay_steps=0", "train.eval_every=4", "train.ckpt_every=0"});
  const auto full = metrics("full");
  double target = 0;
  for (const auto& r : full)
    if (r["step"] == 20) target = r["val_loss"].get<double>();
  int64_t first = 0;
  for (const auto& r : full)
    if (r.contains("val_loss") && r["val_loss"].get<double>() <= target) {
      first = r["step"].get<int64_t>();
      break;
    }
  ASSERT_GT(first, 0);
  ASSERT_LT(first, 40);
  std::ostringstream at;
  at.precision(17);
  at << target;
  auto s = run("stopped", {"train.steps=40", "train.lr_decay_steps=0", "train.eval_every=4", "train.ckpt_every=0",
                           "train.stop_at_val_loss=" + at.str()});
  EXPECT_EQ(s.final_step, first);
  const auto stopped = metrics("stopped");
  ASSERT_EQ(stopped.size(), static_cast<size_t>(first));
  EXPECT_EQ(stopped.back()["val_loss"], full[first - 1]["val_loss"]);
  char name[32];
  std::snprintf(name, sizeof name, "step_%08lld", static_cast<long long>(first));
  EXPECT_TRUE(fs::exists(dir.path() / "stopped" / "checkpoints" / name)) << name;
}

// Every kernel trains: a short run lowers the loss.
TEST_F(TrainerTest, EveryAttentionKindLowersTheLoss) {
  const std::vector<std::vector<std::string>> kinds = {
      {"attention.kind=dense"},
      {"attention.kind=dilated", "attention.segment_lengths=[8, 16, 24]", "attention.dilation_rates=[1, 2, 4]"},
      {"attention.kind=dilated", "attention.segment_lengths=[8, 24]", "attention.dilation_rates=[1, 2]",
       "attention.mix=head_groups"},
      {"attention.kind=block_sparse", "attention.block_size=8", "attention.local_blocks=1", "attention.global_blocks=1"},
  };
  for (size_t i = 0; i < kinds.size(); ++i) {
    auto sets = kinds[i];
    sets.insert(sets.end(), {"train.steps=30", "train.lr_decay_steps=30", "train.eval_every=0", "train.ckpt_every=0"});
    run("kind" + std::to_string(i), sets);
    auto rows = metrics("kind" + std::to_string(i));
    ASSERT_EQ(rows.size(), 30u);
    EXPECT_LT(rows.back()["loss"].get<double>(), rows.front()["loss"].get<double>() - 0.5) << kinds[i][0];
  }
}

TEST_F(TrainerTest, CheckpointsAreWholeAndOnlyTheLastNAreKept) {
  run("b");
  const fs::path ck = dir.path() / "b" / "checkpoints";
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(ck)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"latest", "step_00000008", "step_00000012"}));
  EXPECT_EQ(*train::latest_checkpoint(ck.string()), (ck / "step_00000012").string());
  for (const char* f : {"model.pt", "optimizer.pt", "rng.pt", "config.yaml", "state.json", "manifest.json"})
    EXPECT_TRUE(fs::exists(ck / "step_00000012" / f)) << f;
  EXPECT_NE(data::read_file(ck / "step_00000012" / "config.yaml").find("vocab_size:"), std::string::npos);
}

// DESIGN.md: resuming at step N and running to M gives the same losses as running straight
// to M; on CPU with the same thread count, to the bit.
TEST_F(TrainerTest, ResumeReproducesTheStraightRunBitwise) {
  run("straight");
  run("resumed", {"train.steps=4"});
  auto first = metrics("resumed");
  ASSERT_EQ(first.size(), 4u);
  auto s = run("resumed");
  EXPECT_EQ(s.start_step, 4);
  auto a = metrics("straight"), b = metrics("resumed");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i]["step"], b[i]["step"]);
    EXPECT_EQ(a[i]["loss"].get<double>(), b[i]["loss"].get<double>()) << "step " << a[i]["step"];
    if (a[i].contains("val_loss")) {
      EXPECT_EQ(a[i]["val_loss"].get<double>(), b[i]["val_loss"].get<double>());
    }
  }
  // And the final weights are identical.
  const auto ma = data::read_file(dir.path() / "straight/checkpoints/step_00000012/model.pt");
  const auto mb = data::read_file(dir.path() / "resumed/checkpoints/step_00000012/model.pt");
  EXPECT_TRUE(ma == mb);
}

// A run that stopped after its last checkpoint left metrics beyond it; resuming drops them.
TEST_F(TrainerTest, ResumeDropsMetricsPastTheCheckpoint) {
  run("c", {"train.steps=6", "train.ckpt_every=4", "train.keep_last=5"});
  fs::remove_all(dir.path() / "c/checkpoints/step_00000006");
  data::write_file_atomic(dir.path() / "c/checkpoints/latest", "step_00000004\n");
  auto s = run("c", {"train.steps=6", "train.ckpt_every=4"});
  EXPECT_EQ(s.start_step, 4);
  auto rows = metrics("c");
  ASSERT_EQ(rows.size(), 6u);
  for (size_t i = 0; i < rows.size(); ++i) EXPECT_EQ(rows[i]["step"].get<int64_t>(), static_cast<int64_t>(i + 1));
}

TEST_F(TrainerTest, CheckpointOfAnotherModelIsRefusedAndNothingIsOverwritten) {
  run("d", {"train.steps=4"});
  const auto before = data::read_file(dir.path() / "d/metrics.jsonl");
  try {
    run("d", {"model.d_model=48", "train.steps=8"});
    FAIL() << "expected a CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("step_00000004"), std::string::npos) << e.what();
  }
  EXPECT_EQ(data::read_file(dir.path() / "d/metrics.jsonl"), before);
  EXPECT_EQ(*train::latest_checkpoint(dir.str("d/checkpoints")), dir.str("d/checkpoints/step_00000004"));
}

TEST_F(TrainerTest, TruncatedCheckpointIsRefusedWithTheFileNamed) {
  run("e", {"train.steps=4"});
  const fs::path model = dir.path() / "e/checkpoints/step_00000004/model.pt";
  fs::resize_file(model, fs::file_size(model) / 2);
  try {
    run("e", {"train.steps=8"});
    FAIL() << "expected a CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("model.pt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

// A `latest` that names no checkpoint folder here (a missing step, a name longer than the file
// system allows, a path that leads elsewhere) falls back to the newest whole one, as a corrupt
// one does.
TEST_F(TrainerTest, ALatestNamingNoCheckpointFallsBackToTheNewestWholeOne) {
  run("n", {"train.steps=8", "train.keep_last=5"});
  const fs::path ck = dir.path() / "n/checkpoints";
  for (const std::string& name : std::vector<std::string>{"step_00000099", "step_" + std::string(300, '9'),
                                                         "../n/checkpoints/step_00000004"}) {
    data::write_file_atomic(ck / "latest", name + "\n");
    EXPECT_EQ(*train::latest_checkpoint(ck.string()), (ck / "step_00000008").string()) << name;
  }
}

// One flipped byte in the newest checkpoint (same size): named, and the run resumes from the
// newest whole one; with none left, the run refuses rather than start over.
TEST_F(TrainerTest, ACorruptLatestCheckpointFallsBackToTheNewestWholeOne) {
  run("g", {"train.steps=8", "train.keep_last=5"});
  const fs::path ck = dir.path() / "g/checkpoints";
  auto flip = [](const fs::path& file) {
    std::string bytes = data::read_file(file);
    bytes[bytes.size() / 2] ^= 0x01;
    write_text(file, bytes);
  };
  flip(ck / "step_00000008/model.pt");
  EXPECT_NE(train::checkpoint_problem((ck / "step_00000008").string()).find("model.pt: corrupt"), std::string::npos);
  EXPECT_EQ(train::checkpoint_problem((ck / "step_00000004").string()), "");
  EXPECT_EQ(*train::latest_checkpoint(ck.string()), (ck / "step_00000004").string());
  EXPECT_EQ(run("g", {"train.steps=12", "train.keep_last=5"}).start_step, 4);

  flip(ck / "step_00000012/optimizer.pt");
  flip(ck / "step_00000008/optimizer.pt");
  flip(ck / "step_00000004/optimizer.pt");
  try {
    train::latest_checkpoint(ck.string());
    FAIL() << "expected a CheckpointError";
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("step_00000012/optimizer.pt: corrupt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no other whole checkpoint"), std::string::npos) << e.what();
  }
}

// train.on_nonfinite, with step 6's gradients made NaN: stop makes no update and no later
// checkpoint; skip drops that update and counts it; rollback reloads step 4 and lowers the
// learning rate; none writes a checkpoint of non-finite weights.
TEST_F(TrainerTest, ANonFiniteStepStopsSkipsOrRollsBack) {
  try {
    run_with_nan("stop", 6);
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training diverged at step 6: loss nan"), std::string::npos) << e.what();
  }
  EXPECT_EQ(*train::latest_checkpoint(dir.str("stop/checkpoints")), dir.str("stop/checkpoints/step_00000004"));

  const auto plain = run("plain");
  const auto skip = run_with_nan("skip", 6, {"train.on_nonfinite=skip"});
  EXPECT_EQ(skip.final_step, 12);
  EXPECT_TRUE(std::isfinite(skip.last_loss));
  EXPECT_NE(skip.last_loss, plain.last_loss);  // one update fewer
  EXPECT_EQ(state_of("skip", "step_00000012")["skipped"], 1);
  EXPECT_EQ(metrics("skip").back()["skipped"], 1);
  EXPECT_TRUE(metrics("skip")[5]["loss"].is_null());  // NaN is null in JSON
  try {
    run_with_nan("skip0", 6, {"train.on_nonfinite=skip", "train.max_skips=0"});
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 steps in a row were not finite (more than train.max_skips = 0)"),
              std::string::npos)
        << e.what();
  }

  const auto back = run_with_nan("back", 6, {"train.on_nonfinite=rollback"});
  EXPECT_EQ(back.final_step, 12);
  EXPECT_TRUE(std::isfinite(back.last_loss));
  EXPECT_EQ(state_of("back", "step_00000012")["lr_scale"], 0.5);
  std::vector<nlohmann::json> rows;
  std::vector<int64_t> steps;
  int64_t rollbacks = 0;
  for (const auto& r : metrics("back")) {
    if (r.contains("rollback_from")) {
      ++rollbacks;
      EXPECT_EQ(r["step"], 4);
      EXPECT_EQ(r["rollback_from"], 6);
      continue;
    }
    rows.push_back(r);
    steps.push_back(r["step"].get<int64_t>());
  }
  EXPECT_EQ(rollbacks, 1);
  EXPECT_EQ(steps, std::vector<int64_t>({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));  // steps 5 and 6 once each
  // The first four steps are the plain run's; the lower learning rate shows after.
  const auto plain_rows = metrics("plain");
  EXPECT_EQ(rows[3]["loss"], plain_rows[3]["loss"]);
  EXPECT_DOUBLE_EQ(rows[4]["lr"].get<double>(), 0.5 * plain_rows[4]["lr"].get<double>());
  try {
    run_with_nan("back0", 2, {"train.on_nonfinite=rollback"});
    FAIL() << "expected the run to stop";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds no checkpoint"), std::string::npos) << e.what();
  }
}

TEST_F(TrainerTest, CheckpointShapeMismatchNamesTheParameter) {
  run("f", {"train.steps=4"});
  auto p = train::prepare(config_path, {"model.d_model=48"}, train::Stage::kTokenizer);
  model::LanguageModel other(p.config.model);
  try {
    train::load_checkpoint(dir.str("f/checkpoints/step_00000004"), other, nullptr);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("embed.weight"), std::string::npos) << e.what();
  }
}

TEST(ScheduleTest, WarmsUpThenDecaysToMinLr) {
  train::TrainOptions o;
  o.lr = 1.0;
  o.min_lr = 0.1;
  o.warmup_steps = 10;
  o.steps = 110;
  EXPECT_NEAR(train::learning_rate(o, 0), 1.0 / 11, 1e-12);
  EXPECT_NEAR(train::learning_rate(o, 10), 1.0, 1e-12);
  EXPECT_NEAR(train::learning_rate(o, 60), 0.55, 1e-12);
  EXPECT_NEAR(train::learning_rate(o, 110), 0.1, 1e-12);
  EXPECT_NEAR(train::learning_rate(o, 500), 0.1, 1e-12);
}


// Trainer tests that run real processes (label `distributed`, from the suite's name).
class DistributedTrainerTest : public TrainerTest {};

// Runs `world` ranks of the tiny config (real processes over Gloo) with the given overrides
// into out; true when every rank exited 0.
bool run_distributed(const TempDir& dir, const std::string& config_path, int world, const std::string& out,
                     const std::vector<std::string>& sets) {
  std::string text;
  for (const auto& s : sets) text += s + ";";
  text += "train.out_dir=" + dir.str(out);
  const auto status = run_ranks(world, "DistributedWorker.DISABLED_Train",
                                {"LONGNET_TEST_CONFIG=" + config_path, "LONGNET_TEST_SETS=" + text});
  return status == std::vector<int>(static_cast<size_t>(world), 0);
}

// The losses, gradient norms, evaluations and token counts of two runs' metrics agree to 1e-5,
// relative for values above 1 (float32 sums in another order after 20 steps).
void expect_same_metrics(const std::vector<nlohmann::json>& a, const std::vector<nlohmann::json>& b) {
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_NEAR(a[i]["loss"].get<double>(), b[i]["loss"].get<double>(), 1e-5) << "step " << a[i]["step"];
    const double norm = a[i]["grad_norm"].get<double>();
    EXPECT_NEAR(norm, b[i]["grad_norm"].get<double>(), 1e-5 * std::max(1.0, norm)) << "step " << a[i]["step"];
    EXPECT_EQ(a[i].contains("val_loss"), b[i].contains("val_loss"));
    if (a[i].contains("val_loss")) {
      EXPECT_NEAR(a[i]["val_loss"].get<double>(), b[i]["val_loss"].get<double>(), 1e-5) << "step " << a[i]["step"];
    }
    EXPECT_EQ(a[i]["tokens_seen"], b[i]["tokens_seen"]);
  }
}

const std::vector<std::string> kTwentySteps = {"train.steps=20", "train.lr_decay_steps=20", "train.ckpt_every=10",
                                               "train.eval_every=10"};

std::vector<std::string> with(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Two data-parallel ranks with grad_accum 1 see the batches of one process with grad_accum 2;
// their losses, evaluations and checkpoints must be that run's. With checkpointed blocks and
// MLP chunks, so that parameters get their gradients in several nested backward passes.
TEST_F(DistributedTrainerTest, DataParallelRanksReproduceOneProcessRun) {
  const auto sets = with(kTwentySteps, {"train.activation_checkpointing=blocks", "model.mlp_chunk=8"});
  run("single", with(sets, {"train.grad_accum=2"}));  // also leaves the tokenizer and shards
  ASSERT_TRUE(run_distributed(dir, config_path, 2, "dp", sets));
  expect_same_metrics(metrics("single"), metrics("dp"));
  // The same checkpoints, and a single process resumes the data-parallel run.
  EXPECT_TRUE(fs::exists(dir.path() / "dp" / "checkpoints" / "step_00000020" / "model.pt"));
  EXPECT_EQ(run("dp", with(sets, {"train.steps=22", "train.lr_decay_steps=22", "train.grad_accum=2"})).start_step, 20);
}

// Two ranks sharing every window (zigzag split, ring attention, xPos at the rows' global
// positions with the whole window's centre) reproduce one process; one process resumes them,
// and they resume a one-process checkpoint.
TEST_F(DistributedTrainerTest, SequenceParallelRanksReproduceOneProcessRun) {
  const auto sets = with(kTwentySteps, {"model.pos=xpos", "train.activation_checkpointing=blocks", "model.mlp_chunk=8"});
  run("single", sets);
  ASSERT_TRUE(run_distributed(dir, config_path, 2, "sp", with(sets, {"distributed.sequence_parallel=2"})));
  expect_same_metrics(metrics("single"), metrics("sp"));
  EXPECT_EQ(run("sp", with(sets, {"train.steps=22", "train.lr_decay_steps=22"})).start_step, 20);
  // ... and the other way: a single-process checkpoint continued by two sequence ranks.
  run("single_then_sp", with(sets, {"train.steps=10", "train.lr_decay_steps=20"}));
  ASSERT_TRUE(run_distributed(dir, config_path, 2, "single_then_sp", with(sets, {"distributed.sequence_parallel=2"})));
  auto a = metrics("single"), b = metrics("single_then_sp");
  expect_same_metrics(a, b);
}

// Four ranks as two data-parallel replicas of two sequence ranks, with LongNet's dilated
// attention across the sequence ranks (segments of 8 and 24 cross the ranks' rows), reproduce
// one process with grad_accum 2.
TEST_F(DistributedTrainerTest, DataAndSequenceParallelTogetherReproduceOneProcessRun) {
  const auto sets = with(kTwentySteps, {"attention.kind=dilated", "attention.segment_lengths=[8, 24]",
                                        "attention.dilation_rates=[1, 2]", "attention.block_size=4"});
  run("single", with(sets, {"train.grad_accum=2"}));
  ASSERT_TRUE(run_distributed(dir, config_path, 4, "dpsp", with(sets, {"distributed.sequence_parallel=2"})));
  expect_same_metrics(metrics("single"), metrics("dpsp"));
}

// A rank that dies in the middle of a run (rank 1 exits after 1.5 s) stops the other within
// distributed.timeout_s, with an error that names it; the broken step writes no checkpoint, and
// the latest one is whole.
TEST_F(DistributedTrainerTest, ADeadRankStopsTheOthersNamingItWithinTheTimeout) {
  run("single", {"train.steps=2"});  // the tokenizer and shards
  const auto t0 = std::chrono::steady_clock::now();
  std::string sets = "train.steps=100000;train.ckpt_every=5;train.eval_every=0;distributed.timeout_s=3;";
  sets += "train.out_dir=" + dir.str("dead");
  const auto status = run_ranks(2, "DistributedWorker.DISABLED_TrainUntilAPeerDies",
                                {"LONGNET_TEST_CONFIG=" + config_path, "LONGNET_TEST_SETS=" + sets,
                                 "LONGNET_TEST_DIE_AFTER_MS=1500"});
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(status, (std::vector<int>{0, 3}));  // rank 0's worker checks the error it got
  EXPECT_LT(seconds, 30.0);
  const auto latest = train::latest_checkpoint(dir.str("dead/checkpoints"));
  ASSERT_TRUE(latest);
  auto p = train::prepare(config_path, {}, train::Stage::kTokenizer);
  model::LanguageModel m(p.config.model);
  EXPECT_GT(train::load_checkpoint(*latest, m, nullptr).step, 0);
}

// A rank that stops making progress while its threads still run (rank 1 sleeps 8 s inside
// step 3): the other stops within distributed.timeout_s and names it and where it is.
TEST_F(DistributedTrainerTest, AHungRankIsNamedWithWhereItIs) {
  run("single", {"train.steps=2"});  // the tokenizer and shards
  std::string sets = "train.steps=20;train.ckpt_every=0;train.eval_every=0;distributed.timeout_s=3;";
  sets += "train.out_dir=" + dir.str("hung");
  const auto status = run_ranks(2, "DistributedWorker.DISABLED_TrainWithAHungRank",
                                {"LONGNET_TEST_CONFIG=" + config_path, "LONGNET_TEST_SETS=" + sets});
  EXPECT_EQ(status, (std::vector<int>{0, 0}));  // rank 0's worker checks the error it got
}

// The tiny config with LONGNET_TEST_SETS (';'-separated overrides), as a rank reads it.
train::Prepared worker_run() {
  const char* config = std::getenv("LONGNET_TEST_CONFIG");
  const char* sets_text = std::getenv("LONGNET_TEST_SETS");
  if (!config || !sets_text) throw std::runtime_error("run through a TrainerTest");
  std::vector<std::string> sets;
  std::stringstream ss(sets_text);
  for (std::string s; std::getline(ss, s, ';');)
    if (!s.empty()) sets.push_back(s);
  return train::prepare(config, sets, train::Stage::kShards, false);
}

// Run by the tests above in each rank.
TEST(DistributedWorker, DISABLED_Train) {
  const auto env = train::distributed_env();
  auto p = worker_run();
  auto groups = train::init_process_groups(env, std::chrono::seconds(60), p.config.distributed.sequence_parallel);
  train::train_model(p.config, *p.shards, groups);
}

TEST(DistributedWorker, DISABLED_TrainUntilAPeerDies) {
  const auto env = train::distributed_env();
  auto p = worker_run();
  auto groups = train::init_process_groups(env, std::chrono::seconds(p.config.distributed.timeout_s), 1);
  if (env.rank == 1) {
    const int ms = std::atoi(std::getenv("LONGNET_TEST_DIE_AFTER_MS"));
    std::thread([ms] {
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      std::_Exit(3);
    }).detach();
  }
  try {
    train::train_model(p.config, *p.shards, groups);
    ADD_FAILURE() << "training returned with a dead peer";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 0: step "), std::string::npos) << what;
    EXPECT_NE(what.find("rank 1 stopped"), std::string::npos) << what;
  }
}

TEST(DistributedWorker, DISABLED_TrainWithAHungRank) {
  const auto env = train::distributed_env();
  auto p = worker_run();
  auto groups = train::init_process_groups(env, std::chrono::seconds(p.config.distributed.timeout_s), 1);
  if (env.rank == 1) {
    p.config.train.stall_at_step = 3;
    p.config.train.stall_ms = 8000;
    try {
      train::train_model(p.config, *p.shards, groups);
    } catch (const std::exception&) {  // its peer gave up on it: what rank 0 reports is the test
    }
    std::_Exit(0);
  }
  try {
    train::train_model(p.config, *p.shards, groups);
    ADD_FAILURE() << "training returned with a hung peer";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("rank 0: step 3 failed across the ranks: every rank is alive; rank 1 is behind: at step 3 in "
                        "forward and backward, while rank 0 is at step 3 in the gradient all-reduce"),
              std::string::npos)
        << what;
  }
}

}  // namespace
}  // namespace longnet::testing
